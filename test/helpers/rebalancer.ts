// A Rebalancer for unit tests: node n1 on `storage`, with the topology and replicas the test fakes.

import { Registry } from 'prom-client';
import type { Topology } from '../../src/membership/index.ts';
import type { Logger } from '../../src/observability/index.ts';
import { Rebalancer, registerRebalanceMetrics } from '../../src/rebalance/index.ts';
import type { StreamContext } from '../../src/rebalance/stream.ts';
import { CursorSaves } from '../../src/rebalance/stream-hold.ts';
import type { Replicas } from '../../src/replica/index.ts';
import { HintStore, type Storage } from '../../src/storage/index.ts';
import { defer } from './defer.ts';
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

/**
 * What runStream needs, for a stream of n1 on `storage` to the replicas the test fakes:
 * unthrottled, 2 s peer timeout, its cursors saved (stopped when the test ends), its metrics in
 * `registry`.
 */
export function testStreamContext(
  storage: Storage,
  replicas: object,
  logger: Logger,
  registry = new Registry(),
): StreamContext {
  const cursors = new CursorSaves(storage, logger);
  defer(() => cursors.stop());
  return {
    storage,
    cursors,
    replicas: replicas as Replicas,
    rateBytes: 1 << 30,
    timeoutMs: 2000,
    metrics: registerRebalanceMetrics(registry, new HintStore(storage, 1000)),
    logger,
  };
}
