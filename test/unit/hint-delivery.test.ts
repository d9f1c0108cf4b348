// Hint delivery: each member on its own, every request given time for its bytes, batches that shrink after timeouts.

import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  dropHints,
  Hints,
  recentRecord,
  registerRebalanceMetrics,
} from '../../src/rebalance/index.ts';
import type { ApplyHow, Replicas, WireEntry } from '../../src/replica/index.ts';
import { encodeRecord, HintStore, Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

interface Call {
  readonly target: string;
  readonly entries: number;
  readonly bytes: number;
  readonly timeoutMs: number | undefined;
}

/** Hints over a real HintStore, with `apply` standing in for the replicas. */
function deliverer(
  apply: (target: string, entries: WireEntry[], how: ApplyHow) => Promise<void>,
  droppedBefore?: () => number,
  freshWithinMs?: number,
): {
  hints: Hints;
  store: HintStore;
  calls: Call[];
  registry: Registry;
} {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  const store = new HintStore(storage, 100_000);
  const calls: Call[] = [];
  const registry = new Registry();
  const replicas = {
    apply: (target: string, entries: WireEntry[], _records: unknown, how: ApplyHow = {}) => {
      let bytes = 0;
      for (const [k, r] of entries) bytes += k.length + r.length;
      calls.push({ target, entries: entries.length, bytes, timeoutMs: how.timeoutMs });
      return apply(target, entries, how);
    },
  } as unknown as Replicas;
  const hints = new Hints({
    store,
    replicas,
    isUp: () => true,
    isMember: () => true,
    intervalMs: 60_000,
    timeoutMs: 2000,
    metrics: registerRebalanceMetrics(registry, store),
    logger: createLogger('silent', {}),
    ...(droppedBefore ? { droppedBefore } : {}),
    ...(freshWithinMs === undefined ? {} : { freshWithinMs }),
  });
  return { hints, store, calls, registry };
}

/** `n` hints of `size`-byte records for `target`. */
function hintsFor(target: string, n: number, size: number) {
  return Array.from({ length: n }, (_, i) => ({
    target,
    key: Buffer.from(`k${i}`),
    raw: Buffer.alloc(size, i),
  }));
}

/** A record of version `wall` from n1, encoded. */
const record = (wall: number) =>
  encodeRecord({
    value: Buffer.from('v'),
    version: { wall, logical: 0, node: 'n1' },
    tombstone: false,
  });

/**
 * A deliverer of a node that dropped its records at `floor.at` (0: never), keeping hints of records
 * within `freshWithinMs`; `sent` collects the keys it delivered.
 */
function dropping(floor: { at: number }, freshWithinMs?: number) {
  const sent: string[] = [];
  const d = deliverer(
    async (_target, entries) => {
      for (const [k] of entries) sent.push(k.toString());
    },
    () => floor.at,
    freshWithinMs,
  );
  return { ...d, sent };
}

describe('hint delivery', () => {
  it('counts hints delivered once they are removed: no scrape shows them delivered and still stored', async () => {
    const { hints, store, registry } = deliverer(async () => {});
    await store.add(hintsFor('n2', 3, 10));
    const value = async (name: string) =>
      (await registry.getSingleMetric(name)!.get()).values.reduce((n, v) => n + v.value, 0);
    const seen: number[][] = [];
    const remove = store.remove.bind(store);
    store.remove = async (h) => {
      seen.push([
        await value('kvstore_hints_delivered_total'),
        await value('kvstore_hints_stored'),
      ]);
      await remove(h);
      seen.push([
        await value('kvstore_hints_delivered_total'),
        await value('kvstore_hints_stored'),
      ]);
    };
    expect(await hints.deliverNow()).toBe(3);
    // Before 2026-12-07 the first read was [3, 3] (cluster.test read 53 stored after 53 delivered).
    expect(seen).toEqual([
      [0, 3],
      [0, 0],
    ]);
    expect(await value('kvstore_hints_delivered_total')).toBe(3);
  });

  it('drops, undelivered, hints of records older than the drop of a ring this node was taken out of', async () => {
    const floor = { at: 0 };
    const { hints, store, sent } = dropping(floor);
    const now = Date.now();
    await store.add([
      { target: 'a', key: Buffer.from('old'), raw: record(now - 60_000) },
      { target: 'a', key: Buffer.from('new'), raw: record(now + 1000) },
      { target: 'b', key: Buffer.from('old-b'), raw: record(now - 60_000) },
    ]);
    floor.at = now;
    expect(await hints.deliverNow()).toBe(1);
    expect(sent).toEqual(['new']);
    expect(store.count).toBe(0);
    // And a drop deletes every hint there is, whatever its record.
    await store.add(hintsFor('c', 1500, 10));
    expect(await dropHints(store)).toBe(1500);
    expect(store.count).toBe(0);
  });

  it('keeps and delivers, across the drop, hints of records too recent to be under a collected tombstone', async () => {
    // A write this node acknowledged alone (--write-quorum 1) while cut off: the hint is its only
    // copy elsewhere once the records are dropped.
    const floor = { at: 0 };
    const { hints, store, sent } = dropping(floor, 60_000);
    const now = Date.now();
    const add = () =>
      store.add([
        { target: 'a', key: Buffer.from('old'), raw: record(now - 120_000) },
        { target: 'a', key: Buffer.from('recent'), raw: record(now - 1000) },
        ...hintsFor('b', 1500, 10),
      ]);
    await add();
    // The drop keeps the recent one (and pages past it), deletes the rest.
    expect(await dropHints(store, (h) => recentRecord(h.raw, 60_000))).toBe(1501);
    expect(store.count).toBe(1);
    await add();
    floor.at = now;
    expect(await hints.deliverNow()).toBe(2);
    expect(sent.sort()).toEqual(['recent', 'recent']);
    expect(store.count).toBe(0);
  });

  it('delivers to each member on its own: one that does not answer holds back no other', async () => {
    const stuck = Promise.withResolvers<void>();
    defer(() => stuck.resolve());
    const { hints, store } = deliverer((target) =>
      target === 'a-stuck' ? stuck.promise : Promise.resolve(),
    );
    await store.add([...hintsFor('a-stuck', 3, 100), ...hintsFor('b-fine', 3, 100)]);
    const pass = hints.deliverNow();
    // Before, members were served one after the other: b-fine waited for a-stuck's request.
    await until(
      () => store.list('b-fine', 10).length === 0,
      2000,
      'b-fine to get its hints while a-stuck does not answer',
    );
    expect(store.list('a-stuck', 10)).toHaveLength(3);
    stuck.resolve();
    expect(await pass).toBe(6);
  });

  it('gives each request time for its bytes, and halves a batch that took too long', async () => {
    let fail = 2;
    const { hints, store, calls } = deliverer(() =>
      fail-- > 0
        ? Promise.reject(new KvError('KV_ERR_PEER_TIMEOUT', 'peer: apply timed out'))
        : Promise.resolve(),
    );
    // 64 hints of 128 KiB: 8 MiB.
    await store.add(hintsFor('n2', 64, 128 * 1024));
    expect(await hints.deliverNow()).toBe(0);
    expect(await hints.deliverNow()).toBe(0);
    expect(await hints.deliverNow()).toBe(64);
    const counts = calls.map((c) => c.entries);
    // 4 MiB, then 2 MiB, then 1 MiB (delivered), growing back to 2 and 4 MiB.
    expect(counts).toEqual([31, 15, 7, 15, 31, 11]);
    for (const c of calls) {
      // The peer timeout plus the bytes at 512 KiB/s: 10 s for 4 MiB (before: 2 s for any).
      expect(c.timeoutMs).toBe(2000 + Math.ceil((c.bytes * 1000) / (512 * 1024)));
    }
    expect(calls[0]!.timeoutMs).toBeGreaterThan(9000);
  });

  it('counts hints its own store refuses, and says so once in 10 s, not once a batch', async () => {
    // A store whose disk is full: every add is refused.
    const store = {
      add: () => Promise.reject(new KvError('KV_ERR_STORAGE', 'storage: not writable: disk full')),
      bytes: 0,
      count: () => 0,
    } as unknown as HintStore;
    const registry = new Registry();
    const log = captureLog('info');
    const hints = new Hints({
      store,
      replicas: {} as Replicas,
      isUp: () => true,
      isMember: () => true,
      intervalMs: 60_000,
      timeoutMs: 2000,
      metrics: registerRebalanceMetrics(registry, store),
      logger: log.logger,
    });
    // 50 writes that missed a replica, each in an event-loop turn of its own: 50 batches.
    for (let i = 0; i < 50; i++) {
      hints.add('n2', Buffer.from(`k${i}`), Buffer.alloc(10));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
    await hints.stop();
    const dropped = (await registry.getSingleMetric('kvstore_hints_dropped_total')?.get())?.values;
    expect(dropped?.find((v) => v.labels.reason === 'unwritable')?.value).toBe(50);
    // Before: 50 lines, one a batch.
    const lines = log.records().filter((r) => r.msg === 'hints not stored');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.dropped).toBe(1);
  });
});
