// kvstore_rebalance_active says whether this node streams: a stream cancelled by a ring change
// that moves nothing (no stream after it) leaves it at 0, not at 1, which the alert
// KvstoreRebalanceStuck reads as a stream that sends nothing.

import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { testRebalancer } from '../helpers/rebalancer.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

it('a stream cancelled by a ring change that moves nothing sets kvstore_rebalance_active to 0', async () => {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  const version = { wall: Date.now(), logical: 0, node: 'n1' };
  await storage.apply(Buffer.from('k'), { version, tombstone: false, value: Buffer.from('v') });
  const settled = new Ring(['n1']);
  const topology = {
    moving: true,
    transferId: 't1',
    target: new Ring(['n1', 'n2']),
    settled,
    lost: [],
    rf: () => 2,
  };
  let asked = 0;
  // n2 never answers: the stream runs until it is cancelled.
  const replicas = {
    apply: () => {
      asked++;
      return new Promise(() => {});
    },
  };
  const registry = new Registry();
  const rebalancer = testRebalancer(storage, topology, replicas, registry);
  const active = async () =>
    (await registry.getSingleMetric('kvstore_rebalance_active')!.get()).values[0]!.value;
  rebalancer.onRingsChanged();
  await until(() => asked > 0, 5000, 'the stream sending');
  expect(await active()).toBe(1);
  // The target goes back to the settled ring: nothing moves, the stream is cancelled.
  Object.assign(topology, { moving: false, transferId: 't2', target: settled });
  rebalancer.onRingsChanged();
  expect(rebalancer.rebalanced).toBe('t2');
  // Before: 1 for good.
  expect(await active()).toBe(0);
});
