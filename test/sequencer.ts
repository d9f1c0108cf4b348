// Orders test files longest first, so that the workers finish together: the last run's durations when vitest has them, else the ones measured here.

import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Seconds each long file took in `npm test` (two workers, beside the Kubernetes files) on
 * 2026-12-06, on 2 cores loaded by other sessions (load average 30 to 44: about 2.5 times a quiet
 * run; only the order matters here). vitest keeps the last run's durations in node_modules/.vite,
 * but a fresh clone (CI) has none and falls back to the files' sizes: the chaos run and the
 * slow-link files, small files that run for a minute or two, then started last and ran alone while
 * the other worker sat idle. A file not listed counts as short; a stale number only costs wall
 * time, never a result. After adding a long file: its seconds from `npx vitest run <file>`.
 */
export const MEASURED_S: Readonly<Record<string, number>> = {
  'test/integration/cluster.test.ts': 386,
  'test/integration/cluster-identity.test.ts': 214,
  'test/integration/security.test.ts': 194,
  'test/integration/docker-image.test.ts': 175,
  'test/integration/backup.test.ts': 167,
  'test/integration/limits.test.ts': 147,
  'test/integration/rebalance.test.ts': 146,
  'test/integration/crash-recovery.test.ts': 129,
  'test/integration/storage-corruption.test.ts': 129,
  'test/integration/bench-scale-data-smoke.test.ts': 121,
  'test/integration/slow-link.test.ts': 119,
  'test/integration/kvctl.test.ts': 116,
  'test/integration/console.test.ts': 112,
  'test/integration/join-cut-off.test.ts': 112,
  'test/integration/peer-resilience.test.ts': 107,
  'test/integration/chaos.test.ts': 107,
  'test/integration/failure-detector.test.ts': 101,
  'test/integration/scale-down.test.ts': 100,
  'test/integration/bench-memory-smoke.test.ts': 85,
  'test/integration/peer-hostile.test.ts': 84,
  'test/integration/maintenance.test.ts': 81,
  'test/integration/anti-entropy.test.ts': 73,
  'test/integration/expiry-cluster.test.ts': 70,
  'test/integration/membership-leave.test.ts': 64,
  'test/integration/power-loss.test.ts': 63,
  'test/integration/churn.test.ts': 61,
  'test/integration/lifecycle.test.ts': 52,
  'test/integration/compose.test.ts': 51,
  'test/integration/bench-scale-rebalance-smoke.test.ts': 43,
  'test/integration/trickle.test.ts': 50,
  'test/integration/clock-step.test.ts': 36,
  'test/integration/storage-hung-reads.test.ts': 35,
  'test/integration/storage-open-signal.test.ts': 30,
  'test/integration/tls-handshakes.test.ts': 30,
  'test/integration/rebalance-full-disk.test.ts': 28,
  'test/integration/startup.test.ts': 34,
  'test/integration/bench-scale-anti-entropy-smoke.test.ts': 31,
  'test/integration/storage-slow-disk.test.ts': 31,
  'test/integration/storage-stall.test.ts': 28,
  'test/integration/bench-smoke.test.ts': 27,
  'test/integration/scripts.test.ts': 26,
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
