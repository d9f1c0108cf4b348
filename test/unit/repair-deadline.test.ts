// Read repair writes back what a read found when it began; a delete made since may have had its
// tombstone collected by the time the repair lands, and a repair landing then brings the deleted
// value back. Each repair must land within repairWithinMs of its read's start, or not at all
// (nor as a hint). A coordinator over real stores and real replica handlers reached through an
// in-process PeerCall (as digest-read.test.ts), one replica's answers or copies held back by the
// test. The timing is faked: Date alone runs on vitest's fake clock, moved past the repair
// window by the test, and the tombstone collection every member would make once the grace passed
// is made directly on each store (Storage.discard). A real cluster cannot show it at the default
// grace (an hour), and at a short one only by chance of timing; this shows every step.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { settledRing, Topology } from '../../src/membership/index.ts';
import { copyTimeoutMs, repairWithinMs } from '../../src/rebalance/index.ts';
import { type PeerCall, Replicas } from '../../src/replica/index.ts';
import { encodeRecord, MAX_KEY_BYTES, type Storage } from '../../src/storage/index.ts';
import { getAndPutOn, handlerOn, openStore } from '../helpers/coordinators.ts';
import { fakeDateEachTest } from '../helpers/fake-date.ts';

const b = (s: string) => Buffer.from(s);
const WITHIN = 1000;

/** Moves the (fake) wall clock on by `ms`. */
const later = fakeDateEachTest();

/** A request to a member held back until the test lets it go on. */
interface Held {
  readonly method: string;
  readonly go: () => void;
}

/**
 * Node a's coordinator among a, b and c (RF 3, R = W = 2, every read asking all three), each
 * other member a real replica handler on its own store. Requests of the methods in `hold[name]`
 * to that member wait in `held` until let go (then answered as its store is then), and the
 * answers of those in `holdReply[name]` (answered as its store is when asked); copies
 * (`apply`) to members in `refusing` fail at once. Hints are recorded.
 */
function cluster(repairWithin: number | undefined = WITHIN, copyTimeoutMs: number | null = null) {
  const names = ['a', 'b', 'c'];
  const stores = new Map<string, Storage>(names.map((n) => [n, openStore(n)]));
  const handlers = new Map(names.map((n) => [n, handlerOn(stores.get(n)!, `inc-${n}`)]));
  const hold = new Map<string, Set<string>>();
  const holdReply = new Map<string, Set<string>>();
  const refusing = new Set<string>();
  const held: Held[] = [];
  const call: PeerCall = async (name, method, body) => {
    if (method === 'apply' && refusing.has(name))
      throw new KvError('KV_ERR_PEER_UNAVAILABLE', `${name} refuses copies`);
    const wait = () => new Promise<void>((go) => held.push({ method, go }));
    if (hold.get(name)?.has(method)) await wait();
    const reply = await handlers.get(name)!(method, body);
    if (holdReply.get(name)?.has(method)) await wait();
    return reply;
  };
  const recorded = Object.fromEntries(names.map((n) => [n, `inc-${n}`]));
  const topology = new Topology(names, settledRing(1, names, recorded), 3);
  const local = stores.get('a')!;
  const registry = new Registry();
  const hinted: string[] = [];
  const coordinator = new ClusterCoordinator({
    storage: local,
    topology,
    replicas: new Replicas(
      'a',
      local,
      call,
      (name) => topology.readTerms(name),
      undefined,
      copyTimeoutMs,
    ),
    isUp: () => true,
    hint: (target, key) => hinted.push(`${target}:${key}`),
    info: () => ({}),
    readQuorum: 2,
    writeQuorum: 2,
    readRepairChance: 1,
    readSpeculateMs: 1000,
    ...(repairWithin === undefined ? {} : { repairWithinMs: repairWithin }),
    maxScanKeys: 100,
    registry,
  });
  const metric = async (name: string) => {
    const m = registry.getSingleMetric(name);
    return m === undefined ? 0 : (await m.get()).values.reduce((n, v) => n + v.value, 0);
  };
  const { get, putOn } = getAndPutOn(coordinator, local, (n) => stores.get(n)!);
  /** A delete of `key` on every member, with a fresh version. */
  const tombstone = async (key: string) => {
    const version = local.clock.now();
    for (const s of stores.values())
      await s.apply(b(key), { version, tombstone: true, value: Buffer.alloc(0) });
  };
  const expiresOn = (n: string, key: string) => stores.get(n)!.get(b(key))?.expiresAt;
  /** What every member holds at `key`: its value, `tombstone`, or `none`. */
  const holds = (key: string) =>
    names.map((n) => {
      const r = stores.get(n)!.get(b(key));
      return `${n}:${r === undefined ? 'none' : r.tombstone ? 'tombstone' : r.value.toString()}`;
    });
  /** The collection of `key`'s tombstone on every member, as each makes it once the grace passed. */
  const collect = async (key: string) => {
    await expect.poll(() => holds(key)).toEqual(names.map((n) => `${n}:tombstone`));
    for (const s of stores.values()) {
      const r = s.get(b(key));
      expect(r?.tombstone).toBe(true);
      expect(await s.discard([{ key: b(key), version: r!.version }])).toBe(1);
    }
  };
  const heldAt = (method: string) => held.findIndex((h) => h.method === method);
  /** Once a request of `method` is held. */
  const whenHeld = (method: string) => expect.poll(() => heldAt(method)).toBeGreaterThanOrEqual(0);
  /** Once a held request of `method` is in, lets it go on. */
  const release = async (method: string) => {
    await whenHeld(method);
    held.splice(heldAt(method), 1)[0]!.go();
  };
  return {
    coordinator,
    hold,
    holdReply,
    refusing,
    hinted,
    metric,
    get,
    putOn,
    holds,
    tombstone,
    expiresOn,
    collect,
    whenHeld,
    release,
  };
}

/**
 * Until the repair of c that a read made has ended one way or the other (landed on c, dropped,
 * or hinted): what c holds at `key`, the repairs dropped, and the hints.
 */
async function repairOutcome(c: ReturnType<typeof cluster>, key: string) {
  const outcome = async () => ({
    c: c.holds(key)[2],
    dropped: await c.metric('kvstore_read_repairs_dropped_total'),
    hinted: c.hinted,
  });
  await expect
    .poll(async () => {
      const o = await outcome();
      return o.c !== 'c:none' || o.dropped > 0 || o.hinted.length > 0;
    })
    .toBe(true);
  return outcome();
}

/**
 * Deletes k everywhere, moves the clock past the repair window and collects k's tombstone on
 * every member (as each does past the grace); only then lets c's held request of `method` go on
 * (the late answer of a read made before the delete, or its repair on the way). The repair of c
 * must be dropped, not landed nor hinted, and k stay deleted.
 */
async function deletedThenLetGo(c: ReturnType<typeof cluster>, method: string) {
  expect(await c.coordinator.execute({ type: 'remove', key: b('k') })).toEqual({ type: 'ok' });
  later(WITHIN + 1);
  await c.collect('k');
  await c.release(method);
  expect(await repairOutcome(c, 'k')).toEqual({ c: 'c:none', dropped: 1, hinted: [] });
  expect(await c.get('k')).toBe('not_found');
}

/** k holds 'old' on a and b, none on c; a read of k answers 'old', c's `method` held. */
async function readHolding(c: ReturnType<typeof cluster>, method: string) {
  await c.putOn(['a', 'b'], 'k', 'old');
  c.hold.set('c', new Set([method]));
  expect(await c.get('k')).toBe('old');
  await c.whenHeld(method);
  c.hold.clear();
}

describe('read repair lands within the window of its read, or not at all', () => {
  it('drops a repair whose stale answer came in past the window: the deleted value stays deleted', async () => {
    const c = cluster();
    // The read asks all three; c's answer (it holds nothing) is late, the quorum a and b.
    await readHolding(c, 'get');
    // Only after the delete's tombstone was collected c's answer to the first read comes in:
    // older than 'old', so stale.
    await deletedThenLetGo(c, 'get');
  });

  it('refuses a repair sent in time that arrives past the window, and does not hint it', async () => {
    const c = cluster();
    // c answers at once (nothing), the repair of c is held on the way.
    await readHolding(c, 'apply');
    await deletedThenLetGo(c, 'apply');
  });

  it('refuses a repair that arrives past its own copy timeout, though within the window, and hints it', async () => {
    // The window is the most a repair may take; one sent goes by its copy timeout as any copy
    // does. With the window alone (an hour by default), a repair held on its way (a connection
    // reconnecting) landed up to that long after it was sent, where the window's premise does
    // not hold (read and write quorums that do not overlap, a REMOVE that found nothing).
    const c = cluster(10 * WITHIN, 2000);
    await readHolding(c, 'apply');
    later(2001);
    await c.release('apply');
    expect(await repairOutcome(c, 'k')).toEqual({ c: 'c:none', dropped: 0, hinted: ['c:k'] });
  });

  it('repairs within the window, and hints a repair that failed within it', async () => {
    const c = cluster();
    await readHolding(c, 'get');
    later(WITHIN - 10);
    await c.release('get');
    expect(await repairOutcome(c, 'k')).toEqual({ c: 'c:old', dropped: 0, hinted: [] });
    await c.putOn(['a', 'b'], 'j', 'old');
    c.refusing.add('c');
    expect(await c.get('j')).toBe('old');
    expect(await repairOutcome(c, 'j')).toEqual({ c: 'c:none', dropped: 0, hinted: ['c:j'] });
  });

  it('sends no repair at all when the grace leaves no window', async () => {
    const c = cluster(0);
    await c.putOn(['a', 'b'], 'k', 'old');
    expect(await c.get('k')).toBe('old');
    expect(await repairOutcome(c, 'k')).toEqual({ c: 'c:none', dropped: 1, hinted: [] });
    expect(await c.metric('kvstore_read_repairs_total')).toBe(0);
  });
});

describe('an expiry change writes the value it read back within the window of its read', () => {
  it('fails, writing nothing, once its read took longer than the window', async () => {
    const c = cluster();
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    // b and c answer 'old' as asked, but the answers come late: the read waits for one of them.
    for (const n of ['b', 'c']) c.holdReply.set(n, new Set(['get']));
    const expire = c.coordinator.execute({
      type: 'expire',
      key: b('k'),
      expiry: { relative: true, ms: 60_000 },
    });
    // Meanwhile k is deleted on every member and, past the grace, its tombstone collected.
    await c.whenHeld('get');
    await c.tombstone('k');
    later(WITHIN + 1);
    await c.collect('k');
    c.holdReply.clear();
    await c.release('get');
    // Before: 1, the expiry change (carrying 'old') written where the tombstone was collected.
    await expect(expire).rejects.toThrow(/longer than the repair window/);
    expect(c.holds('k')).toEqual(['a:none', 'b:none', 'c:none']);
    expect(c.hinted).toEqual([]);
  });

  it('writes it within the window', async () => {
    const c = cluster();
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    const expire = { type: 'expire', key: b('k'), expiry: { relative: true, ms: 60_000 } } as const;
    expect(await c.coordinator.execute(expire)).toEqual({ type: 'integer', value: 1 });
    for (const n of ['a', 'b', 'c']) expect(c.expiresOn(n, 'k')).toBeGreaterThan(Date.now());
  });
});

describe('a write passed on (reroute) by a member routing by other rings', () => {
  /** Node a passes on a copy of an expiry change (the value 'old', read earlier) with `deadline`. */
  const passOn = (c: ReturnType<typeof cluster>, deadline: number) => {
    const record = {
      version: { wall: Date.now(), logical: 1, node: 'x' },
      base: { wall: Date.now(), logical: 0, node: 'x' },
      tombstone: false,
      value: b('old'),
      expiresAt: Date.now() + 60_000,
    };
    return c.coordinator.reroute([{ key: b('k'), record, raw: encodeRecord(record) }], deadline);
  };

  it('hints a copy that failed before the deadline the write came with', async () => {
    const c = cluster();
    c.refusing.add('c');
    await passOn(c, Date.now() + WITHIN);
    expect(c.hinted).toEqual(['c:k']);
  });

  it('does not hint a copy that failed past it: the hint would land whenever', async () => {
    const c = cluster();
    c.hold.set('c', new Set(['apply']));
    const passing = passOn(c, Date.now() + WITHIN);
    await c.whenHeld('apply');
    later(WITHIN + 1);
    // c refuses it (past its deadline); a and b took it.
    await c.release('apply');
    await passing;
    // Before: ['c:k'], a hint of the value read earlier, delivered whenever c came back.
    expect(c.hinted).toEqual([]);
    expect(c.holds('k')).toEqual(['a:old', 'b:old', 'c:none']);
  });
});

describe('repairWithinMs', () => {
  it('is shorter than the grace by three clock offsets and a tombstone copy', () => {
    for (const graceMs of [2600, 10_000, 60_000, 3_600_000]) {
      for (const offsetMs of [100, 500]) {
        for (const peerTimeoutMs of [500, 2000]) {
          if (graceMs <= peerTimeoutMs + offsetMs) continue; // refused by the config
          const within = repairWithinMs(peerTimeoutMs, graceMs, offsetMs);
          const tombstone = copyTimeoutMs(peerTimeoutMs, graceMs - offsetMs, MAX_KEY_BYTES + 512);
          expect(within + 3 * offsetMs + tombstone).toBeLessThan(graceMs);
          expect(tombstone).toBeGreaterThanOrEqual(peerTimeoutMs);
        }
      }
    }
    // The default (1 h grace, 500 ms offset, 2 s peer timeout): about an hour still.
    expect(repairWithinMs(2000, 3_600_000, 500)).toBeGreaterThan(3_590_000);
    // The tests' short grace (2.6 s) leaves none: no read repair.
    expect(repairWithinMs(2000, 2600, 500)).toBeLessThanOrEqual(0);
  });
});
