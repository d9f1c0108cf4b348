// A Rebalancer for unit tests: node n1 on `storage`, with the topology and replicas the test fakes.

import { Registry } from 'prom-client';
import type { Topology } from '../../src/membership/index.ts';
import { Rebalancer, registerRebalanceMetrics } from '../../src/rebalance/index.ts';
import type { Replicas } from '../../src/replica/index.ts';
import type { Storage } from '../../src/storage/index.ts';
import { captureLog } from './log-capture.ts';

/** n1's Rebalancer (unthrottled), its metrics in `registry`. */
export function testRebalancer(
  storage: Storage,
  topology: object,
  replicas: object,
  registry = new Registry(),
): Rebalancer {
  return new Rebalancer({
    self: 'n1',
    storage,
    topology: topology as Topology,
    replicas: replicas as Replicas,
    rateBytes: 1 << 30,
    timeoutMs: 1000,
    metrics: registerRebalanceMetrics(registry, { count: 0, bytes: 0 }),
    logger: captureLog().logger,
  });
}
