// A coordinator over one Storage with no peers: a one-member cluster, where every key is local,
// as on a standalone node. For unit tests of what the coordinator does above the store.

import { Registry } from 'prom-client';
import { ClusterCoordinator, type ClusterOptions } from '../../src/coordinator/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { Replicas } from '../../src/replica/index.ts';
import type { Storage } from '../../src/storage/index.ts';

/**
 * `topology`: other members for this node (n1) to coordinate with; every call to them fails.
 * `more`: options besides these.
 */
export function standalone(
  s: Storage,
  maxScanKeys = 100,
  topology = new Topology(['n1'], null, 3),
  more: Partial<ClusterOptions> = {},
): ClusterCoordinator {
  const noPeers = () => Promise.reject(new Error('no peers in this test'));
  return new ClusterCoordinator({
    storage: s,
    topology,
    replicas: new Replicas('n1', s, noPeers),
    isUp: () => true,
    hint: () => {
      throw new Error('no hints on a single node');
    },
    info: () => ({}),
    readQuorum: 2,
    writeQuorum: 2,
    readRepairChance: 0.1,
    readSpeculateMs: 20,
    maxScanKeys,
    registry: new Registry(),
    ...more,
  });
}
