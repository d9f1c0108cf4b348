// Orders test files longest first, so that the workers finish together: the last run's durations when vitest has them, else the ones measured here.

import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Seconds each long file took in `npm run test:local` (2 workers, 2 cores; measured 2026-12-06 on
 * a quiet machine). vitest keeps the last run's durations in node_modules/.vite, but a fresh clone
 * (CI) has none and falls back to the files' sizes: the chaos run and the slow-link files, small
 * files that run for a minute or two, then started last and ran alone while the other worker sat
 * idle. A file not listed counts as short; a stale number only costs wall time, never a result.
 * After adding a long file: its seconds from `npx vitest run <file>`.
 */
export const MEASURED_S: Readonly<Record<string, number>> = {
  'test/integration/console.test.ts': 100,
  'test/integration/backup.test.ts': 100,
  'test/integration/bench-smoke.test.ts': 95,
  'test/integration/cluster.test.ts': 76,
  'test/integration/chaos.test.ts': 75,
  'test/integration/slow-link.test.ts': 72,
  'test/integration/security.test.ts': 72,
  'test/integration/rebalance.test.ts': 71,
  'test/integration/join-cut-off.test.ts': 62,
  'test/integration/bench-scale-data-smoke.test.ts': 56,
  'test/integration/churn.test.ts': 55,
  'test/integration/failure-detector.test.ts': 54,
  'test/integration/crash-recovery.test.ts': 52,
  'test/integration/limits.test.ts': 50,
  'test/integration/cluster-identity.test.ts': 49,
  'test/integration/storage-slow-disk.test.ts': 45,
  'test/integration/lifecycle.test.ts': 45,
  'test/integration/kvctl.test.ts': 45,
  'test/integration/peer-limits.test.ts': 40,
  'test/integration/storage-stall.test.ts': 40,
  'test/integration/peer-hostile.test.ts': 33,
  'test/integration/bench-memory-smoke.test.ts': 30,
  'test/integration/peer-resilience.test.ts': 30,
  'test/integration/maintenance.test.ts': 30,
  'test/integration/compose.test.ts': 30,
  'test/integration/docker-image.test.ts': 30,
  'test/integration/membership-leave.test.ts': 23,
  'test/integration/storage-corruption.test.ts': 23,
  'test/integration/prometheus.test.ts': 22,
  'test/integration/expiry-cluster.test.ts': 20,
  'test/integration/scale-down.test.ts': 20,
  'test/integration/anti-entropy.test.ts': 19,
  'test/integration/power-loss.test.ts': 18,
  'test/integration/startup.test.ts': 18,
  'test/integration/bench-scale-anti-entropy-smoke.test.ts': 15,
  'test/integration/client.test.ts': 15,
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
