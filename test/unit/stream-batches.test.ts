// Stream batches over a slow link: each request given time for its bytes, a batch that timed out halves down to one record and grows back.

import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { runStream } from '../../src/rebalance/stream.ts';
import type { ApplyHow, Replicas, WireEntry } from '../../src/replica/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { testStreamContext } from '../helpers/rebalancer.ts';

afterEach(cleanup);

interface Call {
  readonly records: number;
  readonly bytes: number;
  readonly timeoutMs: number | undefined;
  readonly bulk: boolean;
}

/**
 * Streams `n` local records of `size` bytes to n2, whose `apply` is `apply`; resolves with
 * whether the stream ended (within 10 s) and the requests made.
 */
async function stream(
  n: number,
  size: number,
  apply: (bytes: number, how: ApplyHow) => Promise<void>,
): Promise<{ done: boolean; calls: Call[] }> {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  for (let i = 0; i < n; i++) {
    const version = { wall: Date.now(), logical: i, node: 'n1' };
    await storage.apply(Buffer.from(`k${i}`), {
      version,
      tombstone: false,
      value: Buffer.alloc(size, i),
    });
  }
  const calls: Call[] = [];
  const replicas = {
    apply: (_target: string, entries: WireEntry[], _records: unknown, how: ApplyHow = {}) => {
      let bytes = 0;
      for (const [k, r] of entries) bytes += k.length + r.length;
      calls.push({
        records: entries.length,
        bytes,
        timeoutMs: how.timeoutMs,
        bulk: how.bulk === true,
      });
      return apply(bytes, how);
    },
  } as unknown as Replicas;
  const ctx = testStreamContext(storage, replicas, createLogger('silent', {}));
  const job = { kind: 'rebalance' as const, ringId: 'r1', targets: () => ['n2'] };
  const done = await runStream(job, ctx, AbortSignal.timeout(10_000), () => {});
  return { done, calls };
}

const timedOut = () => Promise.reject(new KvError('KV_ERR_PEER_TIMEOUT', 'peer: apply timed out'));

describe('stream batches', () => {
  // Every batch had the peer timeout (2 s): a record the link carries in more than that timed
  // out, and was sent again, for good.
  it('give each request time for its bytes: records slower than the peer timeout get through', async () => {
    // A link of 600 KiB/s: a record of 1.5 MiB takes 2.6 s on it.
    const { done, calls } = await stream(3, 1536 * 1024, (bytes, how) =>
      (how.timeoutMs ?? 2000) < (bytes * 1000) / (600 * 1024) ? timedOut() : Promise.resolve(),
    );
    expect(done).toBe(true);
    expect(calls.map((c) => c.records)).toEqual([1, 1, 1]);
    for (const c of calls) {
      // The peer timeout plus the bytes at 512 KiB/s, on the large lane.
      expect(c.timeoutMs).toBe(2000 + Math.ceil((c.bytes * 1000) / (512 * 1024)));
      expect(c.bulk).toBe(true);
    }
  }, 20_000);

  it('halve a batch that timed out, down to one record, and grow it back', async () => {
    let fail = 2;
    const { done, calls } = await stream(8, 100 * 1024, () =>
      fail-- > 0 ? timedOut() : Promise.resolve(),
    );
    expect(done).toBe(true);
    // 256 KiB (3 records), 128 KiB (2), 64 KiB (1: taken), then 128 KiB and 256 KiB again.
    expect(calls.map((c) => c.records)).toEqual([3, 2, 1, 2, 3, 2]);
  }, 20_000);
});
