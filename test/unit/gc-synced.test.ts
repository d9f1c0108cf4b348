// Tombstone collection and `synced`: a member that does not answer it (an older version, in a
// rolling upgrade) holds collection up, which is said once, and once again when it answers.

import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { collectTombstones, registerRebalanceMetrics } from '../../src/rebalance/index.ts';
import type { Replicas } from '../../src/replica/index.ts';
import { HintStore, Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

it('a member without synced holds collection up, said once; collection goes on once it answers', async () => {
  const storage = Storage.open({ path: tempDir(), nodeName: 'a' });
  defer(() => storage.close());
  const key = Buffer.from('gone');
  const version = { wall: Date.now() - 60_000, logical: 0, node: 'a' };
  await storage.apply(key, { version, tombstone: true, value: Buffer.alloc(0) });
  // In the tombstone index (LMDB's), which collection reads, once LMDB committed it.
  await storage.flush();
  let older = true;
  const replicas = {
    get: async () => null,
    synced: async (name: string) => {
      if (name === 'b' && older) {
        throw new KvError('KV_ERR_UNKNOWN_COMMAND', "replica: unknown peer method 'synced'");
      }
    },
  } as unknown as Replicas;
  const { logger, records } = captureLog();
  const o = {
    self: 'a',
    storage,
    topology: new Topology(['a', 'b', 'c'], null, 3),
    replicas,
    quiet: () => true,
    graceMs: 1000,
    metrics: registerRebalanceMetrics(new Registry(), new HintStore(storage, 1000)),
    logger,
  };
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
