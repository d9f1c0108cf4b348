import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import {
  ClientOutput,
  type OutputHolder,
  READING_MS,
  SAMPLE_MS,
  STALL_MS,
} from '../../src/server/client-output.ts';
import { registerServerMetrics } from '../../src/server/metrics.ts';

const MiB = 1024 * 1024;

/**
 * A connection holding `bytes`, whose eviction is recorded; its socket hands bytes to the kernel
 * while `reading` (one a millisecond of the clock), none otherwise.
 */
type TestHolder = OutputHolder & { bytes: number; evicted: boolean; reading: boolean };

function holder(bytes: number, reading = false): TestHolder {
  let sent = 0;
  let at = performance.now();
  const h: TestHolder = {
    bytes,
    evicted: false,
    reading,
    remote: '127.0.0.1',
    outputBytes: () => h.bytes,
    sentBytes: () => {
      const now = performance.now();
      if (h.reading) sent += now - at;
      at = now;
      return sent;
    },
    evict: () => {
      h.evicted = true;
    },
  };
  return h;
}

function bound(limit: number, floor: number, collect?: () => void) {
  const registry = new Registry();
  const metrics = registerServerMetrics(registry);
  const out = new ClientOutput(limit, floor, metrics, createLogger('silent', {}), collect);
  metrics.measureOutput(() => out.measure());
  const evictions = async () =>
    (await registry.getSingleMetric('kvstore_connections_rejected_total')!.get()).values.find(
      (v) => v.labels.reason === 'output_full',
    )!.value;
  return { out, registry, evictions };
}

/** The check runs at the end of the turn (after the turn's writes). */
const turnEnd = () => new Promise((r) => setImmediate(r));

/** Adds `h` and reports what it holds. */
function hold(out: ClientOutput, ...hs: TestHolder[]): void {
  for (const h of hs) {
    out.add(h);
    out.report(h, h.bytes);
  }
}

describe('ClientOutput', () => {
  // The timed checks (every SAMPLE_MS) and the clock they judge by are the test's.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('closes the largest holders, largest first, until the rest is under the limit', async () => {
    const { out, evictions, registry } = bound(64 * MiB, 2 * MiB);
    const hs = [10, 30, 1, 20, 25].map((m) => holder(m * MiB));
    for (const h of hs) out.add(h);
    for (const h of hs) out.report(h, h.bytes);
    await turnEnd();
    // 86 MiB: closing the 30 MiB one leaves 56 MiB.
    expect(hs.map((h) => h.evicted)).toEqual([false, true, false, false, false]);
    expect(await evictions()).toBe(1);
    const gauge = await registry.getSingleMetric('kvstore_client_output_bytes')!.get();
    expect(gauge.values[0]!.value).toBe(56 * MiB);
  });

  it('measures every holder before closing any: a report that overstates closes nothing', async () => {
    const { out, evictions } = bound(64 * MiB, 2 * MiB);
    const a = holder(40 * MiB);
    const b = holder(40 * MiB);
    out.add(a);
    out.add(b);
    out.report(a, a.bytes);
    out.report(b, b.bytes);
    a.bytes = 1 * MiB; // the kernel took most of it, without a report
    await turnEnd();
    expect([a.evicted, b.evicted]).toEqual([false, false]);
    expect(await evictions()).toBe(0);
  });

  it('never closes a holder at or under the floor, however many there are', async () => {
    const { out, evictions } = bound(16 * MiB, 2 * MiB);
    const small = Array.from({ length: 20 }, () => holder(2 * MiB));
    const big = holder(3 * MiB);
    for (const h of [...small, big]) {
      out.add(h);
      out.report(h, h.bytes);
    }
    await turnEnd();
    expect(big.evicted).toBe(true);
    expect(small.some((h) => h.evicted)).toBe(false);
    expect(await evictions()).toBe(1);
    // Still over the limit with only small holders: no check until the sum grows a sixteenth.
    small[0]!.bytes = 2 * MiB - 1;
    out.report(small[0]!, small[0]!.bytes);
    await turnEnd();
    expect(await evictions()).toBe(1);
  });

  it('checks again at the limit once the sum went back under it', async () => {
    const { out, evictions } = bound(16 * MiB, 2 * MiB);
    const small = Array.from({ length: 10 }, () => holder(2 * MiB));
    for (const h of small) {
      out.add(h);
      out.report(h, h.bytes);
    }
    await turnEnd(); // 20 MiB, nothing to close: the next check waits for 21 MiB
    for (const h of small) {
      h.bytes = 0;
      out.report(h, 0);
    }
    const big = holder(21 * MiB); // past the ceiling (20 MiB): closed without a wait
    out.add(big);
    out.report(big, big.bytes);
    await turnEnd();
    expect(big.evicted).toBe(true);
    expect(await evictions()).toBe(1);
  });

  it('forgets a closed holder: its later reports count nothing', async () => {
    const { out, evictions } = bound(16 * MiB, 2 * MiB);
    const a = holder(0);
    out.add(a);
    out.remove(a);
    a.bytes = 100 * MiB;
    out.report(a, a.bytes);
    await turnEnd();
    expect(a.evicted).toBe(false);
    expect(out.measure()).toBe(0);
    expect(await evictions()).toBe(0);
  });

  describe('clients that read', () => {
    /** Runs the timed checks for `ms`. */
    const pass = (ms: number) => vi.advanceTimersByTimeAsync(ms);

    it('closes holders that do not read before a larger one that reads, after telling them apart', async () => {
      const { out, evictions } = bound(64 * MiB, 2 * MiB);
      const reader = holder(40 * MiB, true);
      const others = [holder(16 * MiB), holder(17 * MiB)];
      hold(out, reader, ...others);
      await turnEnd();
      // 73 MiB, under the ceiling (80 MiB), none judged yet: nothing closed while it watches.
      expect(await evictions()).toBe(0);
      await pass(STALL_MS - SAMPLE_MS);
      expect(await evictions()).toBe(0);
      await pass(2 * SAMPLE_MS);
      // The two that sent nothing for STALL_MS are stalled: the larger one goes, 56 MiB left.
      expect([reader.evicted, ...others.map((h) => h.evicted)]).toEqual([false, false, true]);
      expect(await evictions()).toBe(1);
      expect(out.measure()).toBe(56 * MiB);
    });

    it('past the ceiling closes at once, the unjudged before one seen reading', async () => {
      const { out } = bound(64 * MiB, 2 * MiB);
      const reader = holder(40 * MiB, true);
      hold(out, reader);
      await pass(READING_MS + 2 * SAMPLE_MS); // over half the limit: sampled, seen reading
      const others = [holder(20 * MiB), holder(21 * MiB), holder(22 * MiB)];
      hold(out, ...others);
      await turnEnd(); // 103 MiB: past the ceiling, no wait
      expect(reader.evicted).toBe(false);
      expect(others.map((h) => h.evicted)).toEqual([false, true, true]);
      expect(out.measure()).toBe(60 * MiB);
    });

    it('closes the largest reader when only readers hold too much: the bound holds', async () => {
      const { out } = bound(64 * MiB, 2 * MiB);
      const readers = [holder(30 * MiB, true), holder(40 * MiB, true)];
      hold(out, ...readers);
      await turnEnd();
      expect(readers.some((h) => h.evicted)).toBe(false); // 70 MiB: waits to judge them
      await pass(READING_MS + 2 * SAMPLE_MS);
      expect(readers.map((h) => h.evicted)).toEqual([false, true]);
    });

    it('waits STALL_MS at most, however many holders come meanwhile', async () => {
      const { out, evictions } = bound(64 * MiB, 2 * MiB);
      hold(out, holder(30 * MiB), holder(30 * MiB), holder(5 * MiB)); // 65 MiB: over, waiting
      await turnEnd();
      // A newcomer every other check, each unjudged when it comes (6 by STALL_MS: 77.6 MiB,
      // under the ceiling): without the bound on the wait, it would never end.
      for (let t = 0; t <= STALL_MS + 2 * SAMPLE_MS; t += 2 * SAMPLE_MS) {
        if (t < STALL_MS) hold(out, holder(2.1 * MiB));
        await pass(2 * SAMPLE_MS);
      }
      expect(await evictions()).toBeGreaterThanOrEqual(1);
      expect(out.measure()).toBeLessThanOrEqual(64 * MiB);
    });
  });

  describe('the collection after closes', () => {
    beforeEach(() => {
      vi.useRealTimers();
    });
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** Closes one holder past the limit per round, `gapMs` apart; returns when each collected. */
    async function rounds(n: number, gapMs: number, collectMs: number): Promise<number[]> {
      let clock = 0;
      vi.spyOn(performance, 'now').mockImplementation(() => clock);
      const collected: number[] = [];
      const { out } = bound(16 * MiB, 2 * MiB, () => {
        collected.push(clock);
        clock += collectMs; // a full collection stops the node this long
      });
      for (let i = 0; i < n; i++) {
        const h = holder(21 * MiB); // past the ceiling (20 MiB): closed at once
        out.add(h);
        out.report(h, h.bytes);
        await turnEnd();
        expect(h.evicted).toBe(true);
        out.remove(h); // its socket closed
        clock += gapMs;
      }
      return collected;
    }

    it('runs after the closed sockets are gone, at most once a second', async () => {
      expect(await rounds(7, 400, 0)).toEqual([0, 1200, 2400]);
    });

    it('takes at most a twentieth of the time under sustained closes, however long it takes', async () => {
      // A last-resort collection of a 90 MiB heap took 330-590 ms on this machine: once a second,
      // a client that keeps tripping the bound would keep the node stopped half the time.
      const collected = await rounds(20, 1000, 300);
      expect(collected[0]).toBe(0);
      for (let i = 1; i < collected.length; i++)
        expect(collected[i]! - collected[i - 1]!).toBeGreaterThanOrEqual(20 * 300);
      expect(collected.length).toBeGreaterThanOrEqual(2); // it still runs, less often
    });
  });
});
