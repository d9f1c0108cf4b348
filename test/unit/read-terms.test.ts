// Reads carry the terms of the rings they were placed under, not of the rings at the moment their
// request leaves: a member back on an empty directory is never counted by a read placed while the
// ring still recorded its old one (the bug-1 flake). Real stores and a real replica handler for
// the emptied member, reached through an in-process PeerCall; the stopped member is a call that
// times out.

import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { settledRing, Topology } from '../../src/membership/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  Replicas,
} from '../../src/replica/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { view } from '../helpers/member-views.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
afterEach(cleanup);

/** A store on a temporary directory, closed when the test ends. */
function openStore(name: string): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: name });
  defer(() => s.close());
  return s;
}

const NAMES = ['a', 'b', 'c'];
const RECORDED = { a: 'inc-a', b: 'inc-b', c: 'inc-c' };

/** A replica handler on its own store. */
function replica(incarnation: string, maxScanEntries = 100) {
  const storage = openStore(incarnation);
  const handler = createReplicaHandler({
    storage,
    hello: () => ({}) as HelloReply,
    incarnation,
    maxScanEntries,
  });
  return { storage, handler };
}

/**
 * Node a's coordinator in a 3-member ring that recorded c's old directory (inc-c). a holds
 * `keys`; b is stopped (its calls time out after 30 ms); c is back on an empty directory (new-c),
 * unless `answer` says what c answers.
 */
function cluster(keys: string[], answer?: (method: string, body: unknown) => unknown) {
  const local = openStore('a');
  const c = answer ?? replica('new-c').handler;
  const sent: { to: string; method: string; body: unknown }[] = [];
  const call: PeerCall = async (name, method, body) => {
    sent.push({ to: name, method, body });
    if (name === 'c') return c(method, body);
    await new Promise((r) => setTimeout(r, 30));
    throw new KvError('KV_ERR_PEER_TIMEOUT', `${name} did not answer`);
  };
  const topology = new Topology(NAMES, settledRing(1, NAMES, RECORDED), 3);
  const replicas = new Replicas('a', local, call, (name) => topology.readTerms(name));
  const coordinator = new ClusterCoordinator({
    storage: local,
    topology,
    replicas,
    isUp: (name) => name !== 'b',
    hint: () => {},
    info: () => ({}),
    readQuorum: 2,
    writeQuorum: 2,
    readRepairChance: 0,
    readSpeculateMs: 10,
    maxScanKeys: 100,
    registry: new Registry(),
  });
  const filled = Promise.all(
    keys.map((k) =>
      local.apply(b(k), { version: local.clock.now(), tombstone: false, value: b('v1') }),
    ),
  );
  // c's hello, as a member that recorded itself lost reports it: a learns c is no holder.
  const learnLost = () => {
    const t = topology;
    const lost = settledRing(2, NAMES, RECORDED, ['c']);
    t.update([
      view('a', t, { self: true, incarnation: 'inc-a' }),
      view('c', t, { incarnation: 'new-c', settled: lost }),
    ]);
    expect(t.settledRing.lost).toEqual(['c']);
  };
  return { coordinator, topology, sent, filled, learnLost };
}

describe('reads placed under one ring while it changes', () => {
  it('a GET placed while c was recorded expects its old directory, even if c is lost by the time the request leaves', async () => {
    const { coordinator, sent, filled, learnLost } = cluster(['k']);
    await filled;
    const read = coordinator.execute({ type: 'get', key: b('k') });
    // The ring changes in the same turn, before the turn's gets are sent.
    learnLost();
    await expect(read).rejects.toMatchObject({ code: 'KV_ERR_UNAVAILABLE' });
    const toC = sent.filter((s) => s.to === 'c');
    expect(toC.length).toBeGreaterThan(0);
    for (const s of toC) expect(s.body).toMatchObject({ i: 'inc-c' });
    // Placed after the change: c is asked without expectation, but only as a target owner; the
    // holders' quorum (a and the stopped b) is still missing.
    await expect(coordinator.execute({ type: 'get', key: b('k') })).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
    });
  });

  it('a scan placed while c was recorded asks it for that directory in every round, also after c is lost', async () => {
    // c's old directory: 40 deleted keys, then k45, which never reached a. A round asks for
    // 35 records (LIMIT 2 and the slack), so the deleted ones fill c's first round.
    const old = replica('inc-c');
    const fresh = replica('new-c');
    const put = (k: string, tombstone: boolean) => {
      const version = old.storage.clock.now();
      return old.storage.apply(b(k), { version, tombstone, value: b(tombstone ? '' : 'v1') });
    };
    for (let n = 0; n < 40; n++) await put(`k${String(n).padStart(2, '0')}`, true);
    await put('k45', false);
    let answer = old.handler;
    let learn = () => {};
    const { coordinator, sent, filled, learnLost } = cluster(['k50'], async (m, body) => {
      const reply = await answer(m, body);
      // After its first round: c's volume is lost, it is back empty, and a learns it.
      answer = fresh.handler;
      learn();
      return reply;
    });
    learn = learnLost;
    await filled;
    const scan = coordinator.execute({
      type: 'range',
      start: b('k00'),
      end: b('k99'),
      page: { limit: 2, cursor: null },
    });
    // Without c's old directory and without b, k45 cannot be known: unavailable, not left out.
    await expect(scan).rejects.toMatchObject({ code: 'KV_ERR_UNAVAILABLE' });
    const toC = sent.filter((s) => s.to === 'c');
    expect(toC.length).toBe(2);
    for (const s of toC) expect(s.body).toMatchObject({ i: 'inc-c' });
  });
});
