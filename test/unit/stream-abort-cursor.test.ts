// A stream stopped (a ring change) while a batch of it was on its way saves no cursor after it:
// the next stream of the kind reset the cursor, and a restart must not resume a stopped one.

import { afterEach, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import { runStream } from '../../src/rebalance/stream.ts';
import type { Replicas } from '../../src/replica/index.ts';
import { readStateDoc, Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { testStreamContext } from '../helpers/rebalancer.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

it("a stopped stream's batch taken after the stop saves no cursor over the next stream's reset", async () => {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  for (let i = 0; i < 3; i++) {
    const version = { wall: Date.now(), logical: i, node: 'n1' };
    await storage.apply(Buffer.from(`k${i}`), {
      version,
      tombstone: false,
      value: Buffer.from('v'),
    });
  }
  // Every batch waits until the test lets it be taken.
  const waiting: (() => void)[] = [];
  const replicas = {
    apply: () => new Promise<void>((resolve) => waiting.push(resolve)),
  } as unknown as Replicas;
  const ctx = testStreamContext(storage, replicas, createLogger('silent', {}));
  // Rings A -> B -> A: the stream of A is stopped, and a fresh one of the same transfer starts.
  const job = { kind: 'rebalance' as const, ringId: 'A', targets: () => ['n2'], fresh: true };
  const first = new AbortController();
  const stopped = runStream(job, ctx, first.signal, () => {});
  await until(() => waiting.length === 1, 5000, 'the first batch on its way');
  first.abort();
  const again = new AbortController();
  defer(() => again.abort());
  const restarted = runStream(job, ctx, again.signal, () => {});
  // The fresh stream reset the cursor and sends.
  await until(() => waiting.length === 2, 5000, 'the fresh stream sending');
  waiting[0]!(); // the stopped stream's batch is taken after all
  expect(await stopped).toBe(false);
  await storage.flush();
  // Before: { ringId: 'A', after: 'k2', ... }, the stopped stream's cursor past every key, which
  // a restart resumed (nothing sent) while the fresh stream had not sent its batch yet.
  expect(readStateDoc(storage, 'stream:rebalance')).toBeNull();
  waiting[1]!();
  expect(await restarted).toBe(true);
  expect(readStateDoc(storage, 'stream:rebalance')).toMatchObject({ ringId: 'A', done: true });
});
