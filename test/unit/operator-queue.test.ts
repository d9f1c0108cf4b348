// Operator runtime: backoff delays, work queue dedupe/dirty/delay/backoff, workers never overlap a key.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff, backoffDelay, runWorkers, WorkQueue } from '../../operator/runtime/index.ts';

const BACKOFF = { baseMs: 100, maxMs: 1000 };

describe('backoffDelay', () => {
  it('doubles from the base up to the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, BACKOFF));
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('adds at most the jitter fraction and never exceeds the cap', () => {
    const opts = { baseMs: 100, maxMs: 1000, jitter: 0.5 };
    expect(backoffDelay(1, opts, () => 0)).toBe(100);
    expect(backoffDelay(1, opts, () => 1)).toBe(150);
    expect(backoffDelay(10, opts, () => 1)).toBe(1000);
  });

  it('survives huge attempt counts', () => {
    expect(backoffDelay(10_000, BACKOFF)).toBe(1000);
  });

  it('Backoff counts attempts and resets', () => {
    const b = new Backoff(BACKOFF);
    expect([b.next(), b.next(), b.next()]).toEqual([100, 200, 400]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(100);
  });
});

describe('WorkQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands out keys in order and once each', async () => {
    const q = new WorkQueue({ backoff: BACKOFF });
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    expect(q.length).toBe(3);
    expect([await q.get(), await q.get(), await q.get()]).toEqual(['a', 'b', 'c']);
  });

  it('re-queues a key added while it is processed, after done()', async () => {
    const q = new WorkQueue({ backoff: BACKOFF });
    q.add('a');
    const key = await q.get();
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0);
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting get()', async () => {
    const q = new WorkQueue({ backoff: BACKOFF });
    const pending = q.get();
    q.add('x');
    expect(await pending).toBe('x');
  });

  it('addAfter keeps the earliest of several delays', () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ backoff: BACKOFF });
    q.addAfter('a', 500);
    q.addAfter('a', 100);
    q.addAfter('a', 800);
    vi.advanceTimersByTime(99);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.length).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(q.length).toBe(1);
  });

  it('addRateLimited backs off per key until forget()', () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ backoff: BACKOFF });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([
      100, 200, 400,
    ]);
    expect(q.addRateLimited('b')).toBe(100);
    expect(q.failures('a')).toBe(3);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(100);
  });

  it('shutdown releases waiters with null and drops delayed keys', async () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ backoff: BACKOFF });
    const waiting = q.get();
    q.addAfter('later', 100);
    q.shutdown();
    expect(await waiting).toBeNull();
    vi.advanceTimersByTime(200);
    expect(q.length).toBe(0);
    q.add('x');
    expect(await q.get()).toBeNull();
  });

  it('reports its depth', () => {
    const depths: number[] = [];
    const q = new WorkQueue({ backoff: BACKOFF, onDepth: (d) => depths.push(d) });
    q.add('a');
    q.add('b');
    void q.get();
    expect(depths).toEqual([1, 2, 1]);
  });
});

describe('runWorkers', () => {
  it('retries a failing key with backoff and never runs one key twice at once', async () => {
    const q = new WorkQueue({ backoff: { baseMs: 5, maxMs: 20 } });
    const running = new Set<string>();
    const calls: string[] = [];
    let overlap = false;
    let failuresLeft = 2;
    const errors: number[] = [];
    const workers = runWorkers(
      q,
      4,
      async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        calls.push(key);
        await new Promise((r) => setTimeout(r, 5));
        running.delete(key);
        if (key === 'flaky' && failuresLeft-- > 0) throw new Error('boom');
        return undefined;
      },
      (_key, _err, retryMs) => errors.push(retryMs),
    );
    for (let i = 0; i < 5; i++) {
      q.add('flaky');
      q.add('steady');
      await new Promise((r) => setTimeout(r, 2));
    }
    await vi.waitFor(() =>
      expect(calls.filter((k) => k === 'flaky').length).toBeGreaterThanOrEqual(3),
    );
    q.shutdown();
    await workers;
    expect(overlap).toBe(false);
    expect(errors).toEqual([5, 10]);
    expect(q.failures('flaky')).toBe(0);
  });

  it('requeues after the delay a handler asks for', async () => {
    const q = new WorkQueue({ backoff: BACKOFF });
    let runs = 0;
    const workers = runWorkers(
      q,
      1,
      async () => {
        runs++;
        return { requeueAfterMs: 10 };
      },
      () => {},
    );
    q.add('poll');
    await vi.waitFor(() => expect(runs).toBeGreaterThanOrEqual(3));
    q.shutdown();
    await workers;
  });
});
