// Orders test files longest first, so that the workers finish together: the last run's durations when vitest has them, else the ones measured here.

import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Seconds each long file took in `npm test` (two workers, beside the Kubernetes files) on a fresh
 * clone of ba1ee83 on 2026-12-06, on a quiet machine (the local suites 902 s of 15.1 minutes; only
 * the order matters here). vitest keeps the last run's durations in node_modules/.vite,
 * but a fresh clone (CI) has none and falls back to the files' sizes: the chaos run and the
 * slow-link files, small files that run for a minute or two, then started last and ran alone while
 * the other worker sat idle. A file not listed counts as short; a stale number only costs wall
 * time, never a result. After adding a long file: its seconds from `npx vitest run <file>`.
 */
export const MEASURED_S: Readonly<Record<string, number>> = {
  // 131 s before its stopped member's 60 s became 30 (2026-12-07).
  'test/integration/failure-detector.test.ts': 101,
  'test/integration/cluster.test.ts': 81,
  'test/integration/scale-down.test.ts': 71,
  // 65 s before its restart-of-the-drop test (19 s alone at load 40, 2026-12-07).
  'test/integration/tombstone-horizon.test.ts': 75,
  'test/integration/bench-smoke.test.ts': 58,
  'test/integration/join-cut-off.test.ts': 57,
  'test/integration/chaos.test.ts': 56,
  'test/integration/member-new-address.test.ts': 50,
  // 68 s before its hand-off moved 8 MiB over the slow link instead of 16 (2026-12-07).
  'test/integration/slow-link.test.ts': 50,
  'test/integration/limits.test.ts': 49,
  'test/integration/bench-scale-data-smoke.test.ts': 47,
  'test/integration/console.test.ts': 45,
  'test/integration/cluster-identity.test.ts': 42,
  'test/integration/compose.test.ts': 41,
  'test/integration/rebalance.test.ts': 40,
  'test/integration/security.test.ts': 38,
  'test/integration/docker-image.test.ts': 38,
  'test/integration/bench-memory-smoke.test.ts': 37,
  'test/integration/power-loss.test.ts': 35,
  'test/integration/maintenance.test.ts': 35,
  // 63 s before its writes stopped once the lanes carried one after the outage (2026-12-07).
  'test/integration/link-outage.test.ts': 35,
  'test/integration/peer-resilience.test.ts': 34,
  'test/integration/clock-step.test.ts': 33,
  'test/integration/tls-handshakes.test.ts': 31,
  'test/integration/anti-entropy.test.ts': 30,
  'test/integration/founding-wait.test.ts': 27,
  'test/integration/crash-recovery.test.ts': 27,
  'test/integration/storage-hung-reads.test.ts': 25,
  'test/integration/churn.test.ts': 23,
  'test/integration/backup.test.ts': 22,
  'test/integration/readyz-refusals.test.ts': 22,
  'test/integration/peer-hostile.test.ts': 20,
  'test/integration/membership-leave.test.ts': 20,
  'test/integration/wal-cut-power-loss.test.ts': 18,
  'test/integration/storage-stall.test.ts': 18,
  'test/integration/kvctl.test.ts': 18,
  'test/integration/client-output.test.ts': 17,
  'test/integration/storage-corruption.test.ts': 16,
  'test/integration/rebalance-full-disk.test.ts': 16,
  'test/integration/bench-scale-rebalance-smoke.test.ts': 16,
  'test/integration/trickle.test.ts': 15,
  'test/integration/expiry-cluster.test.ts': 14,
  'test/integration/reply-budget.test.ts': 13,
  'test/integration/gc-power-loss.test.ts': 13,
  'test/integration/storage-open-signal.test.ts': 12,
  'test/integration/bench-scale-anti-entropy-smoke.test.ts': 11,
  'test/integration/shutdown.test.ts': 10,
  'test/integration/prometheus.test.ts': 10,
  // Files added since, unlisted until 2026-12-07 (each then counted as short, and could start
  // last): their seconds alone at load 45 to 60 that day (session 31), halved.
  'test/integration/storage-slow-disk.test.ts': 63,
  'test/integration/write-order.test.ts': 60,
  'test/integration/disk-errors.test.ts': 36,
  'test/integration/hints-full-disk.test.ts': 35,
  'test/integration/ring-fence-reads.test.ts': 24,
  'test/integration/compile-cache.test.ts': 24,
  'test/integration/decommission-power-loss.test.ts': 24,
  'test/integration/bench-write-path-smoke.test.ts': 18,
  'test/integration/client-hostile.test.ts': 13,
  'test/integration/start-signal-hints.test.ts': 11,
  'test/integration/launcher.test.ts': 9,
  'test/integration/failed-write-order.test.ts': 9,
  'test/integration/bench-floor-server.test.ts': 9,
  'test/integration/bench-tree-check-smoke.test.ts': 8,
  'test/integration/storage-open-failure.test.ts': 8,
};

/** Failed files first (vitest's own rule), then the longest first. */
export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const cache = this.ctx.cache;
    const cached = (f: TestSpecification) => cache.getTestSpecificationResult(f);
    const seconds = (f: TestSpecification) => {
      const last = cached(f)?.duration;
      return last !== undefined ? last / 1000 : (MEASURED_S[relative(ROOT, f.moduleId)] ?? 0);
    };
    const failed = (f: TestSpecification) => (cached(f)?.failed ? 1 : 0);
    return [...files].sort((a, b) => failed(b) - failed(a) || seconds(b) - seconds(a));
  }
}
