// Coordinators over real rings and stores, their peers real replica handlers reached through an
// in-process PeerCall: for unit tests of what a coordinator asks and answers.

import { Registry } from 'prom-client';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import type { Topology } from '../../src/membership/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  Replicas,
} from '../../src/replica/index.ts';
import { Storage } from '../../src/storage/index.ts';

const b = (s: string) => Buffer.from(s);

import { defer } from './defer.ts';
import { tempDir } from './node-process.ts';

/** A store on a temporary directory, closed when the test ends. */
export function openStore(name: string): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: name });
  defer(() => s.close());
  return s;
}

/** A real replica handler on `storage`, answering as data directory `incarnation`. */
export const handlerOn = (storage: Storage, incarnation: string, maxScanEntries = 100) =>
  createReplicaHandler({ storage, hello: () => ({}) as HelloReply, incarnation, maxScanEntries });

/** A replica handler on its own store (a temporary directory), answering as `incarnation`. */
export function replica(incarnation: string, maxScanEntries = 100) {
  const storage = openStore(incarnation);
  return { storage, handler: handlerOn(storage, incarnation, maxScanEntries) };
}

/** How coordinatorOf's coordinator reads and writes. */
export interface CoordinatorQuorums {
  readonly readQuorum?: number;
  readonly writeQuorum?: number;
  readonly readSpeculateMs?: number;
}

/**
 * `self`'s coordinator over `topology` (its reads carry the topology's read terms), its peers
 * reached through `call`; no read repair, no hints; R = W = 2 unless `q` says otherwise.
 */
export function coordinatorOf(
  self: string,
  local: Storage,
  topology: Topology,
  call: PeerCall,
  isUp: (name: string) => boolean,
  q: CoordinatorQuorums = {},
): ClusterCoordinator {
  const replicas = new Replicas(self, local, call, (name) => topology.readTerms(name));
  return new ClusterCoordinator({
    storage: local,
    topology,
    replicas,
    isUp,
    hint: () => {},
    info: () => ({}),
    readQuorum: q.readQuorum ?? 2,
    writeQuorum: q.writeQuorum ?? 2,
    readRepairChance: 0,
    readSpeculateMs: q.readSpeculateMs ?? 1000,
    maxScanKeys: 100,
    registry: new Registry(),
  });
}

/**
 * A test's GET through `coordinator` (the value, or the reply's type), and its writes of `value`
 * at `key` straight into the stores (`storeOf`) of the members `on`, with a fresh version of
 * `local`'s clock.
 */
export function getAndPutOn(
  coordinator: ClusterCoordinator,
  local: Storage,
  storeOf: (name: string) => Storage,
) {
  const get = async (key: string) => {
    const r = await coordinator.execute({ type: 'get', key: b(key) });
    return r.type === 'value' ? r.value.toString() : r.type;
  };
  const putOn = async (on: string[], key: string, value: string) => {
    const version = local.clock.now();
    for (const n of on)
      await storeOf(n).apply(b(key), { version, tombstone: false, value: b(value) });
  };
  return { get, putOn };
}
