// What a coordinator refuses while a key's settled owners are recorded lost (settledVouches), on
// real rings and a real Topology, with real stores and replica handlers reached through an
// in-process PeerCall: only what some read could miss is refused.

import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { lostAt, type MemberView, settledRing, Topology } from '../../src/membership/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  type SettledRing,
} from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import type { Storage } from '../../src/storage/index.ts';
import { coordinatorOf, handlerOn, replica } from '../helpers/coordinators.ts';
import { incs, view } from '../helpers/member-views.ts';
import { cleanup } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
afterEach(cleanup);

type Handler = (method: string, body: unknown) => unknown;

/**
 * `self`'s coordinator over `topology` with read and write quorums `r` and `w`; `peers` answer
 * through their handlers, every other name is down. Each request's member, method and outcome
 * go to `sent`.
 */
function withPeers(
  self: string,
  local: Storage,
  topology: Topology,
  peers: Record<string, Handler>,
  r: number,
  w: number,
  isUp: (name: string) => boolean = (name) => name in peers,
) {
  const sent: string[] = [];
  const call: PeerCall = async (name, method, body) => {
    const handler = peers[name];
    if (handler === undefined) {
      sent.push(`${name} ${method} down`);
      throw new KvError('KV_ERR_PEER_UNAVAILABLE', `${name} is down`);
    }
    try {
      const reply = await handler(method, body);
      sent.push(`${name} ${method} ok`);
      return reply;
    } catch (err) {
      sent.push(`${name} ${method} ${err instanceof KvError ? err.code : 'error'}`);
      throw err;
    }
  };
  const q = { readQuorum: r, writeQuorum: w };
  return { coordinator: coordinatorOf(self, local, topology, call, isUp, q), sent };
}

const run = <T>(reply: T | Promise<T>) => Promise.resolve(reply);

/**
 * `record` as the member `name` reports it once decommissioned from the directory the ring
 * recorded: lost for that very hand-off, to `ring` (SettledRing.handedOff), so it answers reads
 * with what it held (lostAt exempts it).
 */
const ownHandOff = (record: SettledRing, name: string, ring: string): SettledRing => {
  const { epoch, members, incarnations, lost } = record;
  return settledRing(epoch, members, incarnations, lost, { ...record.handedOff, [name]: ring });
};

// Three members, RF 3: c's volume was lost and it is back under its name on an empty directory
// (new-c), being refilled; a and b recorded it lost. With W = 3 and R = 1 (a read-heavy choice)
// every write reaches all three owners anyway (the target ring's quorum is 3 of a, b and c), and
// c refuses every read that expects its old directory: a write misses no read.
const ABC = ['a', 'b', 'c'];

async function refillingC(cStatus: HelloReply['status'], cIncarnation: string) {
  const a = replica('inc-a');
  const bb = replica('inc-b');
  const c = replica(cIncarnation);
  const lost = settledRing(2, ABC, incs(ABC), ['c']);
  const topology = new Topology(ABC, lost, 3);
  // Handed off to a ring other than a's target (a and b): not left out. Decommissioned from its
  // old directory (inc-c), its own ring keeps that hand-off; from the new one, no hand-off.
  const abd = new Ring(['a', 'b', 'd']).id;
  const own = cStatus === 'decommissioned' && cIncarnation === 'inc-c';
  topology.update([
    view('a', topology, { self: true }),
    view('b', topology),
    view('c', topology, {
      incarnation: cIncarnation,
      status: cStatus,
      ...(cStatus === 'active' ? {} : { ringId: abd }),
      ...(own ? { settled: ownHandOff(lost, 'c', abd) } : {}),
    }),
  ]);
  expect(topology.settledRing.lost).toEqual(['c']);
  const peers = { b: bb.handler, c: c.handler };
  const { coordinator, sent } = withPeers('a', a.storage, topology, peers, 1, 3);
  return { coordinator, sent, stores: { a: a.storage, b: bb.storage, c: c.storage }, topology };
}

/**
 * x coordinates without being an owner, its settled ring still records c's old directory, and it
 * asks c first (a and b look down to it, so come last): it reads `v2` from b, c (on new-c)
 * refusing its read.
 */
async function expectReadBackByLagging(stores: { b: Storage; c: Storage }, key: Buffer) {
  const topology = new Topology(ABC, settledRing(1, ABC, incs(ABC)), 3);
  const x = replica('inc-x');
  const peers = { b: handlerOn(stores.b, 'inc-b'), c: handlerOn(stores.c, 'new-c') };
  const reader = withPeers('x', x.storage, topology, peers, 1, 3, (n) => n === 'c');
  const got = await run(reader.coordinator.execute({ type: 'get', key }));
  expect(got).toEqual({ type: 'value', value: b('v2') });
  expect(reader.sent).toContain('c get KV_ERR_WRONG_INCARNATION');
}

describe('a write of a key one of whose owners is back on a new data directory', () => {
  it('is taken at W = 3, R = 1, and reaches all three owners', async () => {
    const { coordinator, stores, topology } = await refillingC('active', 'new-c');
    const key = b('k1');
    expect(topology.place(key)).toMatchObject({ settled: ['a', 'b'], lostOwners: 1 });
    await expect(run(coordinator.execute({ type: 'put', key, value: b('v2') }))).resolves.toEqual({
      type: 'ok',
    });
    for (const s of Object.values(stores)) expect(s.get(key)?.value).toEqual(b('v2'));
  });

  it('is read back by a member that has not recorded the loss: the new directory refuses its read', async () => {
    const { coordinator, stores } = await refillingC('active', 'new-c');
    const key = b('k1');
    await run(coordinator.execute({ type: 'put', key, value: b('v2') }));
    await expectReadBackByLagging(stores, key);
  });

  it.each(['decommissioning', 'decommissioned'] as const)(
    'is taken while the lost owner hands its new directory off (%s), and read back by a member that has not recorded the loss',
    async (status) => {
      // c is scaled down before its refill finished (chaos seed 34105-d: kv3 at 120 s). Its own
      // ring records it lost (no hand-off of its own), so it refuses every read expecting its old
      // directory: it is no owner that may answer. Before 2026-12-07: `write refused: 1 of the
      // key's 3 settled owners ...` (it is out of the target, so its acknowledgement cannot count).
      const { coordinator, stores, topology } = await refillingC(status, 'new-c');
      const key = b('k1');
      expect(topology.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
      const version = { wall: 1, logical: 0, node: 'c' };
      await stores.c.apply(key, { version, tombstone: false, value: b('v1') });
      await expect(run(coordinator.execute({ type: 'put', key, value: b('v2') }))).resolves.toEqual(
        {
          type: 'ok',
        },
      );
      expect([stores.a.get(key)?.value, stores.b.get(key)?.value]).toEqual([b('v2'), b('v2')]);
      await expectReadBackByLagging(stores, key);
    },
  );

  it('is refused, writing nothing, when the lost owner handed off to another ring and may answer with its old copy', async () => {
    const { coordinator, stores } = await refillingC('decommissioned', 'inc-c');
    const key = b('k1');
    await expect(
      run(coordinator.execute({ type: 'put', key, value: b('v2') })),
    ).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining('write refused: 1 of the key'),
    });
    for (const s of Object.values(stores)) expect(s.get(key)).toBeUndefined();
  });
});

// The same, before c's hello says it is refilled (it has not adopted the ring that records it lost
// yet, a probe interval or two after the loss): a and b cannot tell it from an owner that answers
// with its old copy, so the holders alone do not vouch; c is in the target ring, and its own
// acknowledgement settles it: it took the write on the directory it runs on, from which a member
// that has not recorded the loss reads the write or is refused.
describe('a write of a key whose lost owner has not said yet that it is refilled', () => {
  async function notSaidYet(cUp: boolean) {
    const a = replica('inc-a');
    const bb = replica('inc-b');
    const c = replica('new-c');
    const topology = new Topology(ABC, settledRing(2, ABC, incs(ABC), ['c']), 3);
    const before = settledRing(1, ABC, incs(ABC));
    topology.update([
      view('a', topology, { self: true }),
      view('b', topology),
      view('c', topology, { incarnation: 'new-c', settled: before }),
    ]);
    const peers: Record<string, Handler> = cUp
      ? { b: bb.handler, c: c.handler }
      : { b: bb.handler };
    const { coordinator, sent } = withPeers('a', a.storage, topology, peers, 1, 3, () => true);
    return { coordinator, sent, stores: { a: a.storage, b: bb.storage, c: c.storage }, topology };
  }

  it('is taken at W = 3, R = 1 once the lost owner, in the target, acknowledged it', async () => {
    const { coordinator, stores, topology } = await notSaidYet(true);
    const key = b('k1');
    expect(topology.place(key)).toMatchObject({
      lostOwners: 1,
      lostMayAnswer: 1,
      mayAnswerInTarget: ['c'],
    });
    // Before 2026-12-07: `write refused: 1 of the key's 3 settled owners ...`.
    await expect(run(coordinator.execute({ type: 'put', key, value: b('v2') }))).resolves.toEqual({
      type: 'ok',
    });
    for (const s of Object.values(stores)) expect(s.get(key)?.value).toEqual(b('v2'));
  });

  it('fails, not acknowledged, when the lost owner does not take it', async () => {
    const { coordinator, sent } = await notSaidYet(false);
    await expect(
      run(coordinator.execute({ type: 'put', key: b('k1'), value: b('v2') })),
    ).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining('write quorum'),
    });
    expect(sent).toContain('c apply down');
  });
});

// Four members, RF 3, W = 3 and R = 1: d decommissioned, handing its data off to the ring of a, b
// and c, and its pod went. a started again after that and never heard d: it knows the hand-off
// only from the settled record b recorded and reported (SettledRing.handedOff). Before 2026-12-07
// a counted d lost and refused every write of d's keys until the ring settled (chaos seed 34403:
// 606 refusals).
describe('a write of a key whose settled owner handed off in a hand-off this node did not see', () => {
  const ABCD = ['a', 'b', 'c', 'd'];
  const ABC = ['a', 'b', 'c'];

  /** The record b made when d reported `decommissioned` to the ring of a, b, c. */
  function recordedByB(): SettledRing {
    const t = new Topology(ABC, settledRing(4, ABCD, incs(ABCD)), 3);
    t.update([
      ...ABC.map((n) => view(n, t, { self: n === 'b' })),
      view('d', t, { status: 'decommissioned', ringId: new Ring(ABC).id }),
    ]);
    expect(t.settledRing.handedOff).toEqual({ d: new Ring(ABC).id });
    return t.settledRing;
  }

  async function restartedA(record: SettledRing) {
    const stores = { a: replica('inc-a'), b: replica('inc-b'), c: replica('inc-c') };
    const topology = new Topology(ABC, record, 3);
    topology.update(ABC.map((n) => view(n, topology, { self: n === 'a' })));
    let key = b('');
    for (let i = 0; !new Ring(ABCD).owners(key, 3).includes('d'); i++) key = b(`k${i}`);
    const peers = { b: stores.b.handler, c: stores.c.handler };
    const { coordinator } = withPeers('a', stores.a.storage, topology, peers, 1, 3);
    return { coordinator, key, stores, topology };
  }

  it('is taken when the settled record keeps the hand-off, and a reader that has not recorded the loss reads it back', async () => {
    const { coordinator, key, stores, topology } = await restartedA(recordedByB());
    expect(topology.place(key)).toMatchObject({ lostOwners: 0 });
    await expect(run(coordinator.execute({ type: 'put', key, value: b('v2') }))).resolves.toEqual({
      type: 'ok',
    });
    // On the holders and the target ring (all of a, b, c own it there).
    for (const s of Object.values(stores)) expect(s.storage.get(key)?.value).toEqual(b('v2'));
    // x has seen d leave the target but not its hand-off: d is a holder to it, and answers
    // first with the copy it handed off (v1); x's quorum of the target meets the write.
    const d = replica('inc-d');
    const version = { wall: 1, logical: 0, node: 'd' };
    await d.storage.apply(key, { version, tombstone: false, value: b('v1') });
    const old = new Topology(ABC, settledRing(4, ABCD, incs(ABCD)), 3);
    old.update([
      ...ABC.map((n) => view(n, old, { self: n === 'b' })),
      view('d', old, { status: 'decommissioning' }),
    ]);
    expect(old.place(key).settled).toContain('d');
    const x = replica('inc-x');
    const handlers = {
      b: handlerOn(stores.b.storage, 'inc-b'),
      c: handlerOn(stores.c.storage, 'inc-c'),
      d: d.handler,
    };
    const reader = withPeers('x', x.storage, old, handlers, 1, 3, (n) => n === 'd');
    const got = await run(reader.coordinator.execute({ type: 'get', key }));
    expect(got).toEqual({ type: 'value', value: b('v2') });
    expect(reader.sent).toContain('d get ok');
  });

  it('is refused, writing nothing, from a record of an older version (no hand-off kept)', async () => {
    const { handedOff: _, ...older } = recordedByB();
    const { coordinator, key, stores } = await restartedA(older);
    await expect(
      run(coordinator.execute({ type: 'put', key, value: b('v2') })),
    ).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining('write refused: 1 of the key'),
    });
    for (const s of Object.values(stores)) expect(s.storage.get(key)).toBeUndefined();
  });
});

// Four members, RF 3, R = 1 and W = 2 (quorums that do not overlap: spec.allowStaleReads): c and d
// decommissioned, c seen handing off to a's target ring (a and b), d to another ring. A key owned
// by c, d and one of a and b has one holder and one lost owner that may answer; the one handed off
// to a's target is left out of the count. Such a cluster promises no read every write, so the
// key is never refused for its lost owners.
describe('quorums that do not overlap on the key owners', () => {
  it('are not refused when an owner that handed off to this node target is left out of the count', async () => {
    const ABCD = ['a', 'b', 'c', 'd'];
    const a = replica('inc-a');
    const bb = replica('inc-b');
    const lost = settledRing(5, ABCD, incs(ABCD), ['c', 'd']);
    const topology = new Topology(['a', 'b'], lost, 3);
    const abe = new Ring(['a', 'b', 'e']).id;
    topology.update(
      [
        view('a', topology, { self: true }),
        view('b', topology),
        view('c', topology, { status: 'decommissioned', ringId: topology.target.id }),
        view('d', topology, {
          status: 'decommissioned',
          ringId: abe,
          settled: ownHandOff(lost, 'd', abe),
        }),
      ],
      false,
    );
    const settled = new Ring(ABCD);
    let key = b('');
    for (let i = 0; ; i++) {
      key = b(`k${i}`);
      const owners = settled.owners(key, 3);
      if (owners.includes('c') && owners.includes('d')) break;
    }
    expect(topology.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    expect(topology.place(key).settled).toHaveLength(1);
    const { coordinator } = withPeers('a', a.storage, topology, { b: bb.handler }, 1, 2);
    await expect(run(coordinator.execute({ type: 'put', key, value: b('v') }))).resolves.toEqual({
      type: 'ok',
    });
    await expect(run(coordinator.execute({ type: 'get', key }))).resolves.toEqual({
      type: 'value',
      value: b('v'),
    });
  });
});

// A key this node would answer alone (its only owner in the target ring, no settled holder but
// itself): the bound holds there too. RF 1, members a, b and c; c decommissioned, its hand-off
// not seen going to a's target ring (a and b). A key whose settled owner is c and whose target
// owner is a: a holds an old value of it, and c's hand-off took the newest to another ring.
describe('a key this node is the only target owner of', () => {
  async function rf1() {
    const ABC = ['a', 'b', 'c'];
    const a = replica('inc-a');
    const lost = settledRing(5, ABC, incs(ABC), ['c']);
    const topology = new Topology(['a', 'b'], lost, 1);
    const bd = new Ring(['b', 'd']).id;
    topology.update(
      [
        view('a', topology, { self: true }),
        view('b', topology),
        view('c', topology, {
          status: 'decommissioned',
          ringId: bd,
          settled: ownHandOff(lost, 'c', bd),
        }),
      ],
      false,
    );
    const settled = new Ring(ABC);
    let key = b('');
    for (let i = 0; ; i++) {
      key = b(`k${i}`);
      if (settled.owners(key, 1)[0] === 'c' && topology.target.owners(key, 1)[0] === 'a') break;
    }
    await a.storage.apply(key, {
      version: a.storage.clock.now(),
      tombstone: false,
      value: b('old'),
    });
    expect(topology.place(key)).toMatchObject({ settled: [], target: ['a'], lostOwners: 1 });
    const { coordinator } = withPeers('a', a.storage, topology, {}, 1, 1);
    return { coordinator, key, store: a.storage };
  }

  it('a GET is refused, not answered from its own copy alone', async () => {
    const { coordinator, key } = await rf1();
    expect(coordinator.getNow(key, () => {})).toBe(false);
    await expect(run(coordinator.execute({ type: 'get', key }))).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining("read refused: 1 of the key's 1 settled owners"),
    });
  });

  it('a PUT is refused, and not applied here', async () => {
    const { coordinator, key, store } = await rf1();
    await expect(
      run(coordinator.execute({ type: 'put', key, value: b('new') })),
    ).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining('write refused'),
    });
    expect(store.get(key)?.value).toEqual(b('old'));
  });
});

describe('Placement.lostMayAnswer', () => {
  /** a's rings with c recorded lost, and `seen(c)`: a and b up, c as given. */
  const lostC = () => {
    const lost = settledRing(2, ABC, incs(ABC), ['c']);
    const t = new Topology(ABC, lost, 3);
    const seen = (c: Parameters<typeof view>[2]) =>
      t.update([view('a', t, { self: true }), view('b', t), view('c', t, c)]);
    return { lost, t, seen, key: b('k1') };
  };

  it('leaves out a lost owner only while it answers as back on a new directory', () => {
    const { lost, t, seen, key } = lostC();
    // Its hello from before it adopted the ring that records it lost: it may be the old one.
    seen({ incarnation: 'new-c', settled: settledRing(1, ABC, incs(ABC)) });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    seen({ incarnation: 'new-c' });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    // Down: its last hello may be older than a hand-off it made since.
    seen({ incarnation: 'new-c', state: 'down' });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    // Decommissioned while its own ring records it lost for that very hand-off (it handed off
    // the directory the ring recorded, SettledRing.handedOff): it answers with what it held.
    // (To another ring than this node's target: this node does not count the hand-off.)
    const handedOff = { ...lost, handedOff: { c: 'ring-abx' } };
    seen({ status: 'decommissioned', ringId: 'ring-abx', settled: handedOff });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
  });

  it('leaves out a lost owner that hands off a directory its own ring records lost (chaos seed 34105)', () => {
    // c's volume was lost and c runs on a new directory, being refilled, when it is scaled down:
    // its own ring records it lost, without a hand-off of its own, so it refuses every read that
    // expects the directory a ring recorded (its incarnation, or lostAt), decommissioning or
    // decommissioned. Before, it counted as an owner that may answer once it said anything but
    // `active`: 389 of 655 write refusals in chaos seed 34105-d came from kv3 decommissioning.
    const { lost, t, seen, key } = lostC();
    // c hands off to the ring of a and b (this node's target once c leaves it).
    const ab = new Ring(['a', 'b']).id;
    seen({ incarnation: 'new-c', status: 'decommissioning', ringId: ab });
    expect(t.target.id).toBe(ab);
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    // Down: its last hello may be older than what it runs on now.
    seen({ incarnation: 'new-c', status: 'decommissioning', ringId: ab, state: 'down' });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    // Decommissioned to another ring than this node's target (it did not count the hand-off):
    // still lost, and still refusing such reads, without a hand-off of its own in its ring, or
    // with one recorded for another member only.
    const elsewhere = new Ring(['a', 'b', 'x']).id;
    seen({ incarnation: 'new-c', status: 'decommissioned', ringId: elsewhere });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    const other = { ...lost, handedOff: { a: 'ring-bc' } };
    seen({ incarnation: 'new-c', status: 'decommissioned', ringId: elsewhere, settled: other });
    expect(t.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
  });
});

// Three members a, b and x, RF 3, W = 3 and R = 1; x decommissioned from the directory the ring
// recorded (inc-x), handing off to the ring of a and b. w joins (its target is a, b and w) and
// coordinates writes: it counts x lost (handed off to another ring than its own target). f joins
// too (its target a, b and f) and has not adopted x's loss: x is a holder to it, out of its
// target, and f reads at R 1.
const ABX = ['a', 'b', 'x'];
const abRing = new Ring(['a', 'b']).id;
const s4 = settledRing(4, ABX, incs(ABX));

/** x's replica on inc-x, holding `v1` of `key`, answering as its ring `record()` says. */
async function decommissionedX(key: Buffer, record: () => SettledRing) {
  const x = replica('inc-x');
  await x.storage.apply(key, {
    version: { wall: 1, logical: 0, node: 'x' },
    tombstone: false,
    value: b('v1'),
  });
  return createReplicaHandler({
    storage: x.storage,
    hello: () => ({}) as HelloReply,
    incarnation: 'inc-x',
    maxScanEntries: 100,
    lostAt: () => lostAt(record(), 'x', true),
    handedOff: () => true,
  });
}

/**
 * f's GET of `key`, x answering first: a and b (`stores`) answer only once x has (slow links),
 * so x's answer and f's own copy (none) make f's quorums if x answers.
 */
async function readByF(key: Buffer, stores: { a: Storage; b: Storage }, x: Handler) {
  const tf = new Topology(['a', 'b', 'f'], s4, 3);
  tf.update([
    view('f', tf, { self: true }),
    view('a', tf),
    view('b', tf),
    view('x', tf, { status: 'decommissioning' }),
  ]);
  expect(tf.place(key)).toMatchObject({ settled: ABX, target: ['a', 'b', 'f'] });
  let xDone = () => {};
  const xAnswered = new Promise<void>((resolve) => {
    xDone = resolve;
  });
  const afterX =
    (h: Handler): Handler =>
    async (method, body) => {
      await xAnswered;
      return h(method, body);
    };
  const handlers = {
    a: afterX(handlerOn(stores.a, 'inc-a')),
    b: afterX(handlerOn(stores.b, 'inc-b')),
    x: (method: string, body: unknown) => {
      try {
        return x(method, body);
      } finally {
        setImmediate(xDone);
      }
    },
  };
  const f = replica('inc-f');
  const reader = withPeers('f', f.storage, tf, handlers, 1, 3);
  const got = await run(reader.coordinator.execute({ type: 'get', key }));
  return { got, sent: reader.sent };
}

/** w's coordinator over `tw`, a and b on their own stores, x answering through `x`. */
function writerW(tw: Topology, x: Handler) {
  const stores = { a: replica('inc-a'), b: replica('inc-b') };
  const w = replica('inc-w');
  const peers = { a: stores.a.handler, b: stores.b.handler, x };
  const { coordinator } = withPeers('w', w.storage, tw, peers, 1, 3);
  return { coordinator, stores: { a: stores.a.storage, b: stores.b.storage } };
}

// x adopted b's record of its hand-off first, which keeps no hand-off of it (b heard a hello of x
// that named no ring): x's own ring records it lost without one, so it refuses every read
// expecting its directory (lostAt), and w counts it refusing from that hello: the holders a and b
// vouch alone, and w takes writes of x's keys. Then x hears a's record of the same epoch, which
// keeps x's hand-off.
describe('a lost owner whose own ring would gain its hand-off after its last hello', () => {
  const ab = abRing;
  const fromB = settledRing(5, ABX, incs(['a', 'b']), ['x']);
  const fromA = ownHandOff(fromB, 'x', ab);

  it('keeps refusing reads that expect its directory, so a write taken meanwhile is read back', async () => {
    const tx = new Topology(['a', 'b'], s4, 3);
    const decommissioned = { self: true, status: 'decommissioned', ringId: ab } as const;
    tx.update([view('x', tx, decommissioned), view('a', tx), view('b', tx, { settled: fromB })]);
    expect(tx.settledRing).toEqual(fromB);
    expect(lostAt(tx.settledRing, 'x', true)).toBe(5);
    // w's rings, with the hello x answered then.
    const tw = new Topology(['a', 'b', 'w'], fromB, 3);
    const xSaid = { status: 'decommissioned', ringId: ab, settled: tx.settledRing } as const;
    tw.update([view('w', tw, { self: true }), view('a', tw), view('b', tw), view('x', tw, xSaid)]);
    const key = b('k1');
    expect(tw.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    // x hears a's record (the same but for x's hand-off), before w's next probe of it. Before
    // session 36 x took its hand-off from it and answered f's read below with `v1`.
    tx.update([view('x', tx, decommissioned), view('a', tx, { settled: fromA }), view('b', tx)]);
    const x = await decommissionedX(key, () => tx.settledRing);
    const { coordinator, stores } = writerW(tw, x);
    await expect(run(coordinator.execute({ type: 'put', key, value: b('v2') }))).resolves.toEqual({
      type: 'ok',
    });
    const { got, sent } = await readByF(key, stores, x);
    expect(got).toEqual({ type: 'value', value: b('v2') });
    expect(sent).toContain('x get KV_ERR_WRONG_INCARNATION');
    expect(lostAt(tx.settledRing, 'x', true)).toBe(5);
  });

  it('gains it neither from a newer record made from one that kept it; the other members keep it', () => {
    const tx = new Topology(['a', 'b'], s4, 3);
    const decommissioned = { self: true, status: 'decommissioned', ringId: ab } as const;
    tx.update([view('x', tx, decommissioned), view('a', tx), view('b', tx, { settled: fromB })]);
    // a recorded b's directory replaced on top of its record (epoch 6, x's hand-off kept).
    const six = settledRing(6, ABX, incs(['a']), ['b', 'x'], { x: ab });
    tx.update([view('x', tx, decommissioned), view('a', tx, { settled: six }), view('b', tx)]);
    expect(tx.settledRing).toEqual(settledRing(6, ABX, incs(['a']), ['b', 'x']));
    expect(lostAt(tx.settledRing, 'x', true)).toBe(6);
    // A member whose own ring kept its hand-off from the start answers such reads (the members
    // counted it as one that may answer from its first hello): unchanged.
    const ty = new Topology(['a', 'b'], s4, 3);
    ty.update([view('x', ty, decommissioned), view('a', ty), view('b', ty)]);
    expect(ty.settledRing.handedOff).toEqual({ x: ab });
    expect(lostAt(ty.settledRing, 'x', true)).toBeNull();
    // Another member takes it from the same record as before.
    const ta = new Topology(['a', 'b'], fromB, 3);
    const xDone = view('x', ta, { status: 'decommissioned', ringId: ab });
    ta.update([view('a', ta, { self: true }), view('b', ta, { settled: fromA }), xDone]);
    expect(ta.settledRing.handedOff).toEqual({ x: ab });
  });
});

// (c) of session 35's open hand-off problems: a lost owner that is down counts as one that may
// answer, whatever its last hello said. x handed inc-x off (its own ring keeps that hand-off, so
// it answers reads expecting inc-x), then came back under its name on a new directory, inc-x2
// (w took the hand-off back), was scaled down again before its refill (decommissioning from
// inc-x2: refusing such reads, in w's count) and went down. Down, it may come back on inc-x (a
// volume mounted again) cut off from a, b and w, on the ring it saved there: decommissioned, its
// hand-off kept, answering f with what it held.
describe('a lost owner that is down or forgotten, whose last hello said it refuses', () => {
  it('counts as one that may answer: back on the directory it handed off, it answers', async () => {
    const handedOff = settledRing(5, ABX, incs(['a', 'b']), ['x'], { x: abRing });
    const tw = new Topology(['a', 'b', 'w'], handedOff, 3);
    const seen = (x: MemberView) =>
      tw.update([view('w', tw, { self: true }), view('a', tw), view('b', tw), x]);
    seen(view('x', tw, { incarnation: 'inc-x2', settled: handedOff }));
    expect(tw.settledRing.takenBack).toEqual(['x']);
    const leaving = { incarnation: 'inc-x2', status: 'decommissioning' } as const;
    seen(view('x', tw, { ...leaving, settled: tw.settledRing }));
    const key = b('k1');
    expect(tw.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    expect(tw.target.members).toEqual(['a', 'b', 'w']);
    seen(view('x', tw, { ...leaving, settled: tw.settledRing, state: 'down' }));
    expect(tw.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    // So does one no longer listed, which the members forget (a pod deleted): before session 36
    // it kept counting as its last hello said, refusing, and w took the write below.
    seen(view('x', tw, { ...leaving, settled: tw.settledRing }));
    expect(tw.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 0 });
    tw.update([view('w', tw, { self: true }), view('a', tw), view('b', tw)]);
    expect(tw.place(key)).toMatchObject({ lostOwners: 1, lostMayAnswer: 1 });
    const x = await decommissionedX(key, () => handedOff);
    expect(lostAt(handedOff, 'x', true)).toBeNull();
    // So w refuses the write: counted by its last hello (refusing), x would leave m = 2 and the
    // write be taken on a and b alone, and f, below, read `v1` over it.
    const { coordinator, stores } = writerW(tw, x);
    await expect(
      run(coordinator.execute({ type: 'put', key, value: b('v2') })),
    ).rejects.toMatchObject({
      code: 'KV_ERR_UNAVAILABLE',
      message: expect.stringContaining("write refused: 1 of the key's 3 settled owners"),
    });
    const { got, sent } = await readByF(key, stores, x);
    expect(sent).toContain('x get ok');
    expect(got).toEqual({ type: 'value', value: b('v1') });
  });
});
