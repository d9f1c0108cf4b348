// Orders test files longest first, so that the workers finish together: the last run's durations when vitest has them, else the ones measured here.

import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Seconds each long file took in `npm test` (two workers, beside the Kubernetes files): the mean
 * of two runs on fresh clones of main on 2026-12-07 (the local suites 1,063 s and 1,146 s, 197
 * files; only the order matters here). vitest keeps the last run's durations in node_modules/.vite,
 * but a fresh clone (CI) has none and falls back to the files' sizes: the chaos run and the
 * slow-link files, small files that run for a minute or two, then started last and ran alone while
 * the other worker sat idle. A file not listed counts as short; a stale number only costs wall
 * time, never a result. After adding a long file: its seconds from `npx vitest run <file>`.
 */
export const MEASURED_S: Readonly<Record<string, number>> = {
  // 352 s alone (354 s in npm test) before its lost-volume refills streamed fast; 175-191 s alone at
  // load 16-22 after (2026-12-07).
  'test/integration/scale-down.test.ts': 175,
  // 131 s before its stopped member's 60 s became 30 (2026-12-07); 113 s against 104 s side by
  // side at load 13-20 before and after its stopped-member cases shared one pause (2026-12-07).
  'test/integration/failure-detector.test.ts': 93,
  // 91 s before its restart-of-the-drop test (19 s alone at load 40, 2026-12-07); 207-258 s once
  // the unlisted grace held the relisted members' ring 30 s, 98-146 s at --unlisted-grace-ms 0.
  'test/integration/tombstone-horizon.test.ts': 110,
  'test/integration/cluster.test.ts': 74,
  // 76 s against 58 s side by side at load 13-20 before and after its streams carried 500 keys.
  'test/integration/join-cut-off.test.ts': 57,
  'test/integration/chaos.test.ts': 71,
  // 157 s alone before its relisted members left d at once (--unlisted-grace-ms 0), 62-100 s after.
  'test/integration/ring-fence-reads.test.ts': 62,
  'test/integration/peer-resilience.test.ts': 61,
  'test/integration/member-new-address.test.ts': 57,
  'test/integration/bench-smoke.test.ts': 55,
  'test/integration/security.test.ts': 54,
  'test/integration/rebalance.test.ts': 54,
  // 99 s in the run of 2026-12-07; 139 s against 88 s side by side at load 13-21 before and
  // after its lanes case ran 15 s instead of 25 and its read and stream cases moved less data.
  'test/integration/slow-link.test.ts': 63,
  'test/integration/limits.test.ts': 51,
  'test/integration/compose.test.ts': 51,
  'test/integration/clock-step.test.ts': 51,
  'test/integration/bench-scale-data-smoke.test.ts': 50,
  'test/integration/cluster-identity.test.ts': 49,
  'test/integration/bench-memory-smoke.test.ts': 47,
  'test/integration/console.test.ts': 45,
  'test/integration/power-loss.test.ts': 40,
  'test/integration/maintenance.test.ts': 39,
  'test/integration/link-outage.test.ts': 38,
  'test/integration/docker-image.test.ts': 38,
  'test/integration/crash-recovery.test.ts': 36,
  'test/integration/founding-wait.test.ts': 35,
  // 47 s before its two hung members and its stopped and slow members ran side by side (2026-12-07).
  'test/integration/peer-sending.test.ts': 31,
  'test/integration/anti-entropy.test.ts': 31,
  'test/integration/tls-handshakes.test.ts': 30,
  'test/integration/storage-hung-reads.test.ts': 25,
  'test/integration/membership-leave.test.ts': 21,
  'test/integration/churn.test.ts': 20,
  'test/integration/wal-cut-power-loss.test.ts': 19,
  'test/integration/reply-budget.test.ts': 19,
  'test/integration/storage-stall.test.ts': 18,
  'test/integration/rebalance-full-disk.test.ts': 18,
  'test/integration/client-output.test.ts': 18,
  'test/integration/write-order.test.ts': 17,
  'test/integration/gc-power-loss.test.ts': 17,
  'test/integration/disk-errors.test.ts': 17,
  'test/integration/client-idle.test.ts': 17,
  'test/integration/bench-scale-rebalance-smoke.test.ts': 17,
  'test/integration/trickle.test.ts': 16,
  'test/integration/backup.test.ts': 16,
  'test/integration/hints-full-disk.test.ts': 15,
  'test/integration/kvctl.test.ts': 14,
  'test/integration/storage-slow-disk.test.ts': 13,
  'test/integration/storage-open-signal.test.ts': 13,
  'test/integration/expiry-cluster.test.ts': 13,
  'test/integration/storage-corruption.test.ts': 12,
  'test/integration/stale-placement.test.ts': 12,
  'test/integration/lifecycle.test.ts': 12,
  'test/integration/bench-scale-anti-entropy-smoke.test.ts': 12,
  'test/integration/readyz-refusals.test.ts': 11,
  'test/integration/prometheus.test.ts': 10,
  'test/integration/peer-hostile.test.ts': 10,
  'test/integration/shutdown.test.ts': 9,
  'test/integration/scripts.test.ts': 9,
  'test/integration/scan-budget.test.ts': 9,
  'test/integration/startup.test.ts': 8,
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
