import { getHeapStatistics } from 'node:v8';
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startHeapTrimmer } from '../../src/node/heap-trim.ts';
import { createLogger } from '../../src/observability/index.ts';

const trims = async (r: Registry) =>
  (await r.getSingleMetric('kvstore_heap_trims_total')?.get())?.values[0]?.value ?? 0;

/** Short-lived objects that grow the young generation and old space; all garbage on return. */
function burst(): void {
  let keep: unknown[] = [];
  for (let i = 0; i < 200; i++) {
    keep.push(Array.from({ length: 5000 }, (_, j) => ({ i, j, s: `v${j}` })));
    if (keep.length > 20) keep = keep.slice(10);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('heap trimmer', () => {
  it('collects after a burst, when idle, and gives the heap back', async () => {
    const registry = new Registry();
    burst();
    const before = getHeapStatistics().total_heap_size;
    const t = startHeapTrimmer({
      intervalMs: 150,
      idleCpuShare: 0.3,
      minSlackBytes: 8 << 20,
      logger: createLogger('silent', {}),
      registry,
    });
    onTestFinished(() => t.stop());
    await expect.poll(() => trims(registry), { timeout: 10_000 }).toBe(1);
    expect(getHeapStatistics().total_heap_size).toBeLessThan(before);
  });

  it('collects once per idle period, and again only after the next burst', async () => {
    const registry = new Registry();
    // Any slack is enough: only the once-per-idle-period rule keeps it from collecting again.
    const t = startHeapTrimmer({
      intervalMs: 100,
      idleCpuShare: 0.3,
      minSlackBytes: 1,
      logger: createLogger('silent', {}),
      registry,
    });
    onTestFinished(() => t.stop());
    await expect.poll(() => trims(registry), { timeout: 10_000 }).toBe(1);
    await sleep(800); // eight idle intervals
    expect(await trims(registry)).toBe(1);
    // Busy for a while (well over the idle share of an interval), then idle again.
    const end = Date.now() + 300;
    while (Date.now() < end) burst();
    await expect.poll(() => trims(registry), { timeout: 10_000 }).toBe(2);
  });

  it('collects once after start whatever the slack, and then only over the slack threshold', async () => {
    const registry = new Registry();
    // No slack could reach this: only the first idle interval after start collects.
    const t = startHeapTrimmer({
      intervalMs: 100,
      idleCpuShare: 0.3,
      minSlackBytes: 2 ** 40,
      logger: createLogger('silent', {}),
      registry,
    });
    onTestFinished(() => t.stop());
    await expect.poll(() => trims(registry), { timeout: 10_000 }).toBe(1);
    const end = Date.now() + 300;
    while (Date.now() < end) burst();
    await sleep(800); // idle again, for eight intervals
    expect(await trims(registry)).toBe(1);
  });
});
