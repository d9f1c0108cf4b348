// Tombstone collection and `synced`: a member that does not answer it (an older version, in a
// rolling upgrade) holds collection up, which is said once, and once again when it answers.

import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { Topology } from '../../src/membership/index.ts';
import type { Logger } from '../../src/observability/index.ts';
import { collectTombstones, registerRebalanceMetrics } from '../../src/rebalance/index.ts';
import { createReplicaHandler, type HelloReply, Replicas } from '../../src/replica/index.ts';
import { HintStore, Storage } from '../../src/storage/index.ts';
import { openStore } from '../helpers/coordinators.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

/** A store holding one tombstone older than the grace, in LMDB's tombstone index. */
async function storeWithTombstone(key: Buffer): Promise<Storage> {
  const storage = Storage.open({ path: tempDir(), nodeName: 'a' });
  defer(() => storage.close());
  const version = { wall: Date.now() - 60_000, logical: 0, node: 'a' };
  await storage.apply(key, { version, tombstone: true, value: Buffer.alloc(0) });
  // In the tombstone index (LMDB's), which collection reads, once LMDB committed it.
  await storage.flush();
  return storage;
}

/** Collection on a of a, b, c (all quiet), asking `replicas`. */
function gcOptions(storage: Storage, replicas: Partial<Replicas>, logger: Logger) {
  return {
    self: 'a',
    storage,
    topology: new Topology(['a', 'b', 'c'], null, 3),
    replicas: replicas as unknown as Replicas,
    quiet: () => true,
    graceMs: 1000,
    metrics: registerRebalanceMetrics(new Registry(), new HintStore(storage, 1000)),
    logger,
  };
}

it('a member without synced holds collection up, said once; collection goes on once it answers', async () => {
  const key = Buffer.from('gone');
  const storage = await storeWithTombstone(key);
  let older = true;
  const replicas = {
    get: async () => null,
    synced: async (name: string) => {
      if (name === 'b' && older) {
        throw new KvError('KV_ERR_UNKNOWN_COMMAND', "replica: unknown peer method 'synced'");
      }
      return { process: undefined, hints: undefined };
    },
  };
  const { logger, records } = captureLog();
  const o = gcOptions(storage, replicas, logger);
  const said = (msg: string) => records().filter((l) => String(l.msg).startsWith(msg));
  expect(await collectTombstones(o)).toBe(0);
  expect(await collectTombstones(o)).toBe(0);
  expect(storage.get(key)?.tombstone).toBe(true);
  // Before: nothing said at all, at any pass.
  expect(said('tombstone collection waits')).toHaveLength(1);
  expect(said('tombstone collection waits')[0]).toMatchObject({ member: 'b' });
  older = false;
  expect(await collectTombstones(o)).toBe(1);
  expect(said('tombstone collection goes on')).toHaveLength(1);
  expect(said('tombstone collection waits')).toHaveLength(1);
});

it('a member whose process changed between its answers and its sync holds collection up', async () => {
  const key = Buffer.from('gone');
  const storage = await storeWithTombstone(key);
  // b restarts after it answered the get and before it answered synced: its first process may
  // have answered with a tombstone its power cut then took back, which the second cannot sync.
  let process = 'p1';
  const replicas = {
    get: async (name: string) => {
      if (name === 'b') process = 'p2';
      return null;
    },
    synced: async (name: string) => ({ process: name === 'b' ? process : 'c1', hints: 0 }),
  };
  const o = gcOptions(storage, replicas, captureLog().logger);
  // Before: 1 (the answers counted, synced by another process than the one that gave them).
  expect(await collectTombstones(o)).toBe(0);
  expect(storage.get(key)?.tombstone).toBe(true);
  // The same process before the questions and after: collected.
  expect(await collectTombstones(o)).toBe(1);
});

it('a hint held as a member answers synced, or here, holds collection up (its hello said none yet)', async () => {
  const key = Buffer.from('gone');
  const storage = await storeWithTombstone(key);
  // b and c: real replica handlers on stores without the key (nothing older there).
  const held = { a: 0, b: 1, c: 0 };
  const handlers = Object.fromEntries(
    (['b', 'c'] as const).map((n) => [
      n,
      createReplicaHandler({
        storage: openStore(n),
        hello: () => ({}) as HelloReply,
        incarnation: `inc-${n}`,
        maxScanEntries: 100,
        hintsHeld: () => held[n],
      }),
    ]),
  );
  const replicas = new Replicas('a', storage, async (name, method, body) =>
    handlers[name]!(method, body),
  );
  const o = { ...gcOptions(storage, replicas, captureLog().logger), hintsHeld: () => held.a };
  // quiet() is true throughout: the hellos it reads had not said so yet.
  // Before: 1 (collected while b held a hint, perhaps of an older record of the key).
  expect(await collectTombstones(o)).toBe(0);
  held.b = 0;
  held.a = 2;
  expect(await collectTombstones(o)).toBe(0);
  expect(storage.get(key)?.tombstone).toBe(true);
  held.a = 0;
  expect(await collectTombstones(o)).toBe(1);
});
