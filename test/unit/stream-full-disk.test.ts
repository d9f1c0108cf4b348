// A stream and a full disk: a sender whose store refuses writes finishes (its cursor kept in
// memory); a receiver whose store refuses the batches is waited for, said once, and reported.

import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { runStream, type StreamProgress } from '../../src/rebalance/stream.ts';
import type { WireEntry } from '../../src/replica/index.ts';
import { readStateDoc, Storage, writeStateDoc } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { testStreamContext } from '../helpers/rebalancer.ts';

afterEach(cleanup);

const N = 600;
const FULL = new KvError(
  'KV_ERR_STORAGE',
  'storage: not writable: disk full (1 bytes free in /d, below --min-free-disk-bytes 2); reads work, writes resume once that is fixed',
);

/**
 * A store holding N records; with `full`, reopened refusing every write (as a full disk's), after
 * `before` ran on it while it took writes.
 */
async function store(full: boolean, before = async (_s: Storage) => {}): Promise<Storage> {
  const path = tempDir();
  const writer = Storage.open({ path, nodeName: 'n1' });
  for (let i = 0; i < N; i++) {
    const version = { wall: Date.now(), logical: i, node: 'n1' };
    await writer.apply(Buffer.from(`k${String(i).padStart(4, '0')}`), {
      version,
      tombstone: false,
      value: Buffer.from(`v${i}`),
    });
  }
  if (!full) {
    defer(() => writer.close());
    return writer;
  }
  await before(writer);
  await writer.close();
  // More free bytes than any disk has: every write is refused as a full disk's.
  const storage = Storage.open({ path, nodeName: 'n1', minFreeBytes: Number.MAX_SAFE_INTEGER });
  defer(() => storage.close());
  return storage;
}

/** Streams every record of `storage` to n2, whose apply is `apply`; returns what it saw. */
async function stream(
  storage: Storage,
  apply: (entries: WireEntry[]) => Promise<void>,
  fresh = true,
) {
  const { logger, records } = captureLog();
  const registry = new Registry();
  const replicas = { apply: (_t: string, entries: WireEntry[]) => apply(entries) };
  const ctx = testStreamContext(storage, replicas, logger, registry);
  const job = { kind: 'rebalance' as const, ringId: 'r1', targets: () => ['n2'], fresh };
  const seen: StreamProgress[] = [];
  const done = await runStream(job, ctx, AbortSignal.timeout(30_000), (p) => seen.push(p));
  const said = (msg: string) => records().filter((l) => String(l.msg).startsWith(msg));
  const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]!;
  return { done, seen, said, value };
}

describe('a stream and a full disk', () => {
  it('a sender whose store refuses writes sends every record and finishes', async () => {
    const storage = await store(true);
    const got = new Set<string>();
    const { done, seen, said } = await stream(storage, async (entries) => {
      for (const [k] of entries) got.add(k.toString());
    });
    // Before: the fresh start's cursor reset threw, and the stream failed (retried every 5 s).
    expect(done).toBe(true);
    expect(got.size).toBe(N);
    expect(seen.at(-1)).toMatchObject({ done: true, scanned: N, sent: N });
    // Said once for the stream (the reset and three cursors were refused), nothing saved.
    expect(said('stream cursor not saved')).toHaveLength(1);
    expect(readStateDoc(storage, 'stream:rebalance')).toBeUndefined();
  }, 30_000);

  it('a receiver whose store refuses the batches is waited for, said once, then goes on', async () => {
    const storage = await store(false);
    let refusals = 4;
    const { done, seen, said, value } = await stream(storage, () =>
      refusals-- > 0 ? Promise.reject(FULL) : Promise.resolve(),
    );
    expect(done).toBe(true);
    // Reported while it waited, with the reason without the advice; no longer once it went on.
    const waiting = seen.filter((p) => p.waitingFor !== undefined);
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting[0]!.waitingFor).toEqual({
      n2: 'not writable: disk full (1 bytes free in /d, below --min-free-disk-bytes 2)',
    });
    expect(seen.at(-1)!.waitingFor).toBeUndefined();
    expect(said('stream waits')).toHaveLength(1);
    expect(said('stream waits')[0]).toMatchObject({ target: 'n2' });
    expect(said('stream goes on')).toHaveLength(1);
    expect(said('stream batch not taken')).toEqual([]);
    expect((await value('kvstore_rebalance_batch_retries_total')).value).toBe(4);
    expect((await value('kvstore_rebalance_waiting_members')).value).toBe(0);
    // Stored as usual: the sender's disk has room.
    expect(readStateDoc(storage, 'stream:rebalance')).toMatchObject({ done: true, scanned: N });
  }, 30_000);

  it('a stream resumed on a store that refuses writes starts from the first key, not from the cursor saved', async () => {
    // The cursor an earlier stream of the same transfer saved (r1 -> r2 -> r1: the fresh start of
    // the second r1 stream could not reset it), past records written while r2 was the target.
    const storage = await store(true, (s) =>
      writeStateDoc(s, 'stream:rebalance', {
        ringId: 'r1',
        after: Buffer.from('k0299').toString('base64'),
        done: false,
      }),
    );
    const got = new Set<string>();
    const { done } = await stream(
      storage,
      async (entries) => {
        for (const [k] of entries) got.add(k.toString());
      },
      false,
    );
    expect(done).toBe(true);
    // Before: 300 (k0300..k0599), the 300 below the cursor skipped.
    expect(got.size).toBe(N);
  }, 30_000);
});
