// Data between a member taken out of the ring and the others is refused both ways, and the one behind asks for the rings.

import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { RingFencing, settledRing, Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  METHODS,
  type SettledRing,
} from '../../src/replica/index.ts';
import { encodeRecord, Storage } from '../../src/storage/index.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { allDone, incs, view } from '../helpers/member-views.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

const FOUR = settledRing(3, ['a', 'b', 'c', 'd'], {});
const THREE = settledRing(4, ['a', 'b', 'c'], {});

/** A fencing of node `self` whose settled ring is `ring` (changeable), counting its asks for rings. */
function fencingOf(self: string, ring: SettledRing | undefined, freshWithinMs?: number) {
  const state = { ring, asked: 0 };
  const fencing = new RingFencing({
    self,
    settled: () => state.ring,
    learn: async () => {
      state.asked++;
    },
    ...(freshWithinMs === undefined ? {} : { freshWithinMs }),
    logger: createLogger('silent', {}),
  });
  return { fencing, state };
}

describe('RingFencing', () => {
  it('says the sender epoch, its name while its ring lists it, and whether it lists the addressee', () => {
    const { fencing, state } = fencingOf('d', FOUR);
    expect(fencing.fence('a')).toEqual([3, 'd', 1]);
    expect(fencing.fence('e')).toEqual([3, 'd', 0]);
    state.ring = THREE;
    expect(fencing.fence('a')).toEqual([4, '', 1]);
    state.ring = undefined;
    expect(fencing.fence('a')).toBeUndefined();
    expect(fencing.stamp('a', { k: 1 })).toEqual({ k: 1 });
    state.ring = FOUR;
    const body = { k: 1 };
    expect(fencing.stamp('a', body)).toEqual({ k: 1, f: [3, 'd', 1] });
    expect(body).toEqual({ k: 1 });
    expect(fencing.stamp('a', [1])).toEqual([1]);
  });

  it('refuses a holder of an older ring that the newer one leaves out, and it asks for the rings', async () => {
    const receiver = fencingOf('a', THREE).fencing;
    const { fencing: sender, state } = fencingOf('d', FOUR);
    const refused = receiver.check(sender.fence('a')!);
    expect(refused?.code).toBe('KV_ERR_STALE_RING');
    sender.failed(refused);
    expect(state.asked).toBe(1);
    // Asking once at a time; another error asks nothing.
    sender.failed(refused);
    sender.failed(new KvError('KV_ERR_PEER_TIMEOUT', 'x'));
    expect(state.asked).toBe(1);
    await new Promise((r) => setTimeout(r, 0));
    sender.failed(refused);
    expect(state.asked).toBe(2);
    // Once it adopted the newer ring, it is a joiner like any other.
    state.ring = THREE;
    expect(receiver.check(sender.fence('a')!)).toBeNull();
  });

  it('refuses, as a holder of an older ring, a sender whose newer ring leaves it out, and asks for the rings', () => {
    const { fencing: stale, state } = fencingOf('d', FOUR);
    const sender = fencingOf('a', THREE).fencing;
    const refused = stale.check(sender.fence('d')!);
    expect(refused?.code).toBe('KV_ERR_STALE_RING');
    expect(refused?.message).toBe(
      "replica: the sender's settled ring (epoch 4) leaves this node out, and this node's (epoch 3) lists it: this node was taken out of the ring and learns it now",
    );
    expect(state.asked).toBe(1);
    // d finished its own decommission (a hand-off, not taken out) and has not adopted the ring
    // without it yet. Before, it said it was taken out of the ring.
    const handedOff = new RingFencing({
      self: 'd',
      settled: () => FOUR,
      learn: async () => {},
      decommissioned: (name) => name === 'd',
      logger: createLogger('silent', {}),
    });
    expect(handedOff.check(sender.fence('d')!)?.message).toBe(
      "replica: the sender's settled ring (epoch 4) leaves this node out, and this node's (epoch 3) lists it: this node was decommissioned (its hand-off finished) and learns the newer ring now",
    );
  });

  it('takes an apply from a member taken out only when every record is newer than the grace allows to collect', () => {
    // Records within freshWithinMs of now have no collected tombstone over them: a write the
    // sender acknowledged (--write-quorum 1) and would lose when it drops its records.
    const receiver = fencingOf('a', THREE, 60_000).fencing;
    const f = fencingOf('d', FOUR).fencing.fence('a')!;
    expect(receiver.check(f, () => Date.now() - 1000)).toBeNull();
    expect(receiver.check(f, () => Date.now() - 120_000)?.code).toBe('KV_ERR_STALE_RING');
    // Not an apply (a read, a scan), or one without records: refused.
    expect(receiver.check(f)?.code).toBe('KV_ERR_STALE_RING');
    expect(receiver.check(f, () => undefined)?.code).toBe('KV_ERR_STALE_RING');
    // Without the option (or a grace shorter than the clock offset), nothing is taken.
    expect(fencingOf('a', THREE).fencing.check(f, () => Date.now())?.code).toBe(
      'KV_ERR_STALE_RING',
    );
    expect(fencingOf('a', THREE, -5).fencing.check(f, () => Date.now())?.code).toBe(
      'KV_ERR_STALE_RING',
    );
  });

  it('says a refused sender it saw finish a decommission was decommissioned, not taken out of the ring', () => {
    // a, b, c, d settled at epoch 3; d decommissions: it hands off (recorded lost for it, epoch
    // 4), the ring without it settles (epoch 5, the same update), and d leaves a's member list. d, stopping, still
    // holds epoch 3 and sends a its data (chaos 35102-e: 285 ms after its hand-off).
    const names = ['a', 'b', 'c', 'd'];
    const t = new Topology(names, settledRing(3, names, incs(names)), 3);
    const leaving = allDone(t, names);
    leaving[3] = view('d', t, { status: 'decommissioning' });
    expect(t.update(leaving).targetChanged).toBe(true);
    const gone = () => [...allDone(t, ['a', 'b', 'c']), view('d', t, { status: 'decommissioned' })];
    const c = t.update(gone());
    expect([c.handedOff, c.settled]).toEqual([['d'], true]);
    t.update(allDone(t, ['a', 'b', 'c']));
    expect(t.settledRing.epoch).toBe(5);
    expect(t.settledRing.members).toEqual(['a', 'b', 'c']);
    const log = captureLog('warn');
    const receiver = new RingFencing({
      self: 'a',
      settled: () => t.settledRing,
      learn: async () => {},
      decommissioned: (name) => t.sawDecommissioned(name),
      logger: log.logger,
    });
    const fromD = receiver.check([3, 'd', 1]);
    expect(fromD?.code).toBe('KV_ERR_STALE_RING');
    // Before: "it was taken out of the ring", which says it left without a decommission.
    expect(fromD?.message).toBe(
      "replica: d sent data as a holder of settled ring epoch 3; this node's (epoch 5) leaves it out: it was decommissioned (its hand-off finished), and its copies no longer count",
    );
    // A member a saw no decommission of (out of the member source while away, or decommissioned
    // while a did not hear it): a cannot tell which.
    const fromE = receiver.check([3, 'e', 1]);
    expect(fromE?.message).toBe(
      "replica: e sent data as a holder of settled ring epoch 3; this node's (epoch 5) leaves it out: it left the ring (taken out without a decommission, or decommissioned unseen by this node) and may hold values deleted since",
    );
    expect(log.records().map((r) => [r.member, r.msg])).toEqual([
      [
        'd',
        'refusing data from a decommissioned member (it holds data of the ring it handed off): it learns the ring from the refusal',
      ],
      [
        'e',
        "refusing data from a member this node's settled ring leaves out (it holds data of an older ring: taken out of the ring, or decommissioned unseen by this node): it learns the ring from the refusal",
      ],
    ]);
  });

  it('lets through rings of one epoch, members of both rings, joiners and senders without a ring', () => {
    const receiver = fencingOf('a', THREE).fencing;
    // Behind by an epoch, but listed in the newer ring: only slow to adopt it.
    expect(receiver.check([3, 'b', 1])).toBeNull();
    // Not a holder of its own ring (a joiner, a member that dropped its records).
    expect(receiver.check([3, '', 1])).toBeNull();
    // The same epoch, another ring (members founded apart): never fenced.
    expect(receiver.check([4, 'd', 0])).toBeNull();
    // A newer ring that lists this node, or this node not a holder of its own.
    expect(receiver.check([5, 'b', 1])).toBeNull();
    expect(fencingOf('e', THREE).fencing.check([5, 'b', 0])).toBeNull();
    expect(fencingOf('a', undefined).fencing.check([0, 'x', 0])).toBeNull();
    // Epoch 0: a ring founded by its members, which holds no data (RingKeeper drops nothing).
    expect(receiver.check([0, 'd', 1])).toBeNull();
    expect(fencingOf('d', settledRing(0, ['d'], {})).fencing.check([4, 'a', 0])).toBeNull();
  });
});

/** A replica handler of member 'a' (ring THREE) behind a's fence, and its storage. */
function fencedHandler(freshWithinMs?: number) {
  const storage = Storage.open({ path: tempDir(), nodeName: 'a' });
  opened.push(storage);
  const handler = createReplicaHandler({
    storage,
    hello: () => ({ name: 'a' }) as HelloReply,
    incarnation: 'i',
    maxScanEntries: 100,
    fence: (f, oldest) => fencingOf('a', THREE, freshWithinMs).fencing.check(f, oldest),
  });
  return { storage, handler };
}

/**
 * A fencing of `self` on ring `ring` whose clock is `clock.now`, probing every 1,000 ms, down
 * after 3 failures, peer timeout 2,000 ms (a window of 5 s), whose asks for the rings run
 * `answer` (a member answering, or not).
 */
function probingFencing(self: string, ring: SettledRing) {
  const clock = { now: 0 };
  const state = { asked: 0, answers: true };
  const fencing: RingFencing = new RingFencing({
    self,
    settled: () => ring,
    learn: async () => {
      state.asked++;
      if (state.answers) fencing.answered(clock.now);
    },
    probes: { intervalMs: 1000, failures: 3, timeoutMs: 2000 },
    now: () => clock.now,
    logger: createLogger('silent', {}),
  });
  return { fencing, clock, state };
}

describe('RingFencing: reads answered alone', () => {
  it('may answer alone while a member answered or probed it with its ring within the window, at the shorter probe interval', () => {
    const { fencing, clock } = probingFencing('d', FOUR);
    // Nothing heard since it started (a restart cut off from the others included): it may not.
    expect(fencing.mayAnswerAlone()).toBe(false);
    fencing.answered(0);
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now = 5000;
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now = 5001;
    expect(fencing.mayAnswerAlone()).toBe(false);
    // An answer to a probe it sent at 4,000 counts from then.
    fencing.answered(4000);
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now = 9001;
    expect(fencing.mayAnswerAlone()).toBe(false);
    // A member probing it with another epoch's ring says nothing of this one.
    fencing.asked('a', 2, 200);
    expect(fencing.mayAnswerAlone()).toBe(false);
    // Its own hello (it probes the address listed for its name) says nothing either.
    fencing.asked('d', 3, 200);
    expect(fencing.mayAnswerAlone()).toBe(false);
    // One probing every 200 ms with its ring: current, for 3 x 200 + 2,000 ms.
    fencing.asked('a', 3, 200);
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now += 2600;
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now += 1;
    expect(fencing.mayAnswerAlone()).toBe(false);
  });

  it('a ring of itself alone, or none yet, never waits', () => {
    const { fencing, clock } = probingFencing('a', settledRing(1, ['a'], {}));
    clock.now = 1e9;
    expect(fencing.mayAnswerAlone()).toBe(true);
    const none = new RingFencing({
      self: 'a',
      settled: () => undefined,
      learn: async () => {},
      probes: { intervalMs: 1000, failures: 3, timeoutMs: 2000 },
      now: () => 1e9,
      logger: createLogger('silent', {}),
    });
    expect(none.mayAnswerAlone()).toBe(true);
  });

  it('asks the members before it answers alone: goes on once one answered, refuses when none did, and asks again only after a probe interval', async () => {
    const { fencing, clock, state } = probingFencing('d', FOUR);
    clock.now = 10_000;
    await fencing.untilHeard();
    expect(state.asked).toBe(1);
    expect(fencing.mayAnswerAlone()).toBe(true);
    clock.now = 20_000;
    state.answers = false;
    // Reads waiting together share one round.
    const waits = [fencing.untilHeard(), fencing.untilHeard()];
    for (const w of waits) await expect(w).rejects.toThrow(/^replication: no member .* 10000 ms/);
    expect(state.asked).toBe(2);
    // Within a probe interval of that round, refused at once; after it, asked again.
    clock.now = 20_999;
    await expect(fencing.untilHeard()).rejects.toMatchObject({ code: 'KV_ERR_UNAVAILABLE' });
    expect(state.asked).toBe(2);
    clock.now = 21_000;
    state.answers = true;
    await fencing.untilHeard();
    expect(state.asked).toBe(3);
  });

  it('a member probing it with a newer ring makes it ask for the rings, once per epoch', async () => {
    const { fencing, state } = probingFencing('d', FOUR);
    fencing.asked('a', 4, 1000);
    await new Promise((r) => setTimeout(r, 0));
    fencing.asked('a', 4, 1000);
    expect(state.asked).toBe(1);
    fencing.asked('a', 5, 1000);
    expect(state.asked).toBe(2);
  });
});

describe('the replica handler with a fence', () => {
  it('refuses a fenced request of every method before it runs, and serves hello and requests without a fence', async () => {
    const { storage, handler } = fencedHandler();
    const f = [3, 'd', 1];
    const record = encodeRecord({
      value: Buffer.from('v'),
      version: storage.clock.now(),
      tombstone: false,
    });
    const k = Buffer.from('k');
    for (const [method, body] of [
      [METHODS.apply, { e: [[k, record]], f }],
      [METHODS.get, { k, f }],
      [METHODS.getMany, { ks: [k, k], f }],
      [METHODS.scan, { s: Buffer.alloc(0), e: null, l: 10, f }],
      [METHODS.synced, { f }],
    ] as const) {
      await expect(handler(method, body)).rejects.toMatchObject({ code: 'KV_ERR_STALE_RING' });
    }
    expect(storage.getRaw(k)).toBeUndefined();
    await expect(handler(METHODS.hello, { f })).resolves.toMatchObject({ name: 'a' });
    await expect(handler(METHODS.apply, { e: [[k, record]] })).resolves.toEqual({ n: 1 });
    await expect(handler(METHODS.get, { k, f: [4, 'b', 1] })).resolves.toMatchObject({});
    await expect(handler(METHODS.get, { k, f: [4, 'b'] })).rejects.toMatchObject({
      code: 'KV_ERR_INVALID_ARGUMENT',
    });
  });

  it('serves an apply of recent records from a member taken out, and refuses one holding an older record', async () => {
    const { storage, handler } = fencedHandler(60_000);
    const f = [3, 'd', 1];
    const now = storage.clock.now();
    const fresh = encodeRecord({ value: Buffer.from('new'), version: now, tombstone: false });
    const old = encodeRecord({
      value: Buffer.from('old'),
      version: { ...now, wall: now.wall - 3_600_000 },
      tombstone: false,
    });
    const k = Buffer.from('k');
    const j = Buffer.from('j');
    await expect(handler(METHODS.apply, { e: [[k, fresh]], f })).resolves.toEqual({ n: 1 });
    await expect(
      handler(METHODS.apply, {
        e: [
          [k, fresh],
          [j, old],
        ],
        f,
      }),
    ).rejects.toMatchObject({
      code: 'KV_ERR_STALE_RING',
    });
    expect(storage.getRaw(j)).toBeUndefined();
    await expect(handler(METHODS.get, { k, f })).rejects.toMatchObject({
      code: 'KV_ERR_STALE_RING',
    });
  });
});
