// A tombstone that lands on a replica later than its copies could have (by its version plus a
// tombstone copy's timeout) is outside what the repair window counts on: a read that missed it
// there may have begun long after its version, so its collection, counted from that version, can
// come before a write-back of what that read found has landed, and the deleted value is back.
// Such tombstones: a failed delete's, delivered as a hint whenever its members came back (also an
// acknowledged delete's hints to both members of an anti-entropy pass, with RF - W >= 2), and a
// REMOVE's that found nothing live (versioned as it arrived, before its read, copied after).
// Each store now counts such a tombstone's age from when it landed (its deletedAt moved there),
// and collection waits until every member's copy is past the grace.
// Real stores, replica handlers, coordinator, Replicas, AntiEntropy and tombstone collection
// (collectTombstones on each member), reached through an in-process PeerCall that holds the
// answers (or the push) the test names.
// The timing is faked: Date alone runs on vitest's fake clock, moved on by the test. A real
// cluster shows this only by chance of timing (a read answer held for seconds between a delete's
// read or hints and the collection past the grace); this shows every step.

import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { settledRing, Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  AntiEntropy,
  collectTombstones,
  copyTimeoutMs,
  lateLandingMs,
  registerAntiEntropyMetrics,
  registerRebalanceMetrics,
  repairWithinMs,
} from '../../src/rebalance/index.ts';
import { type PeerCall, RemoteVersions, Replicas } from '../../src/replica/index.ts';
import {
  encodeRecord,
  HintStore,
  Storage,
  type StoredRecord,
  type Version,
} from '../../src/storage/index.ts';
import { handlerOn } from '../helpers/coordinators.ts';
import { defer } from '../helpers/defer.ts';
import { fakeDateEachTest } from '../helpers/fake-date.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
const PEER_TIMEOUT = 2000;
const GRACE = 10_000;
const OFFSET = 0;
const WITHIN = repairWithinMs(PEER_TIMEOUT, GRACE, OFFSET);
/** As the node sets it: a tombstone copy's timeout plus the clock offset. */
const LATE = lateLandingMs(PEER_TIMEOUT, GRACE, OFFSET);

/** Moves the (fake) wall clock on by `ms`. */
const later = fakeDateEachTest();

/**
 * a, b and c (RF 3, R = W = 2), each a real store and replica handler; a's coordinator asks all
 * three on every read and repairs with the node's window and copy timeouts. `holdReply(n,
 * method, label)`: the next such request to n is answered as n's store is when asked, but the
 * answer is held until `release(label)`.
 */
function cluster(offset = OFFSET) {
  const names = ['a', 'b', 'c'];
  const registries = new Map(names.map((n) => [n, new Registry()]));
  const stores = new Map<string, Storage>(
    names.map((n) => {
      const s = Storage.open({
        path: tempDir(),
        nodeName: n,
        registry: registries.get(n)!,
        lateLandingMs: lateLandingMs(PEER_TIMEOUT, GRACE, offset),
        ...(offset > 0 ? { maxClockOffsetMs: offset } : {}),
      });
      defer(() => s.close());
      return [n, s];
    }),
  );
  const handlers = new Map(names.map((n) => [n, handlerOn(stores.get(n)!, `inc-${n}`)]));
  const toHold: { name: string; method: string; label: string }[] = [];
  const held = new Map<string, () => void>();
  /** Copies each member answered (applied, or older than what it held). */
  const applied = new Map<string, number>(names.map((n) => [n, 0]));
  const call: PeerCall = async (name, method, body) => {
    const reply = await handlers.get(name)!(method, body);
    if (method === 'apply') applied.set(name, applied.get(name)! + 1);
    const i = toHold.findIndex((h) => h.name === name && h.method === method);
    if (i >= 0) {
      const { label } = toHold.splice(i, 1)[0]!;
      await new Promise<void>((go) => held.set(label, go));
    }
    return reply;
  };
  const recorded = Object.fromEntries(names.map((n) => [n, `inc-${n}`]));
  const topology = new Topology(names, settledRing(1, names, recorded), 3);
  const terms = (name: string) => topology.readTerms(name);
  const replicasOf = (n: string) =>
    new Replicas(n, stores.get(n)!, call, terms, undefined, (bytes) =>
      copyTimeoutMs(PEER_TIMEOUT, GRACE - OFFSET, bytes),
    );
  const local = stores.get('a')!;
  const coordinator = new ClusterCoordinator({
    storage: local,
    topology,
    replicas: replicasOf('a'),
    isUp: () => true,
    hint: () => {},
    info: () => ({}),
    readQuorum: 2,
    writeQuorum: 2,
    readRepairChance: 1,
    readSpeculateMs: 1000,
    repairWithinMs: repairWithinMs(PEER_TIMEOUT, GRACE, offset),
    maxScanKeys: 100,
    registry: new Registry(),
  });
  const get = async (key: string) => {
    const r = await coordinator.execute({ type: 'get', key: b(key) });
    return r.type === 'value' ? r.value.toString() : r.type;
  };
  const putOn = async (on: string[], key: string, value: string, version: Version) => {
    for (const n of on)
      await stores.get(n)!.apply(b(key), { version, tombstone: false, value: b(value) });
  };
  /** What every member holds at `key`: its value, `tombstone`, or `none`. */
  const holds = (key: string) =>
    names.map((n) => {
      const r = stores.get(n)!.get(b(key));
      return `${n}:${r === undefined ? 'none' : r.tombstone ? 'tombstone' : r.value.toString()}`;
    });
  /**
   * A member outside k's owners (not modelled otherwise) delivering its hints of `record` to
   * `to` (default: every owner).
   */
  const deliverHints = async (key: string, record: StoredRecord, to = names) => {
    const d = new Replicas('d', openStoreFor('d'), call, terms);
    for (const n of to) await d.apply(n, [[b(key), encodeRecord(record)]], [record]);
  };
  /** One collection pass on every member, as each makes it (collectTombstones); how many went. */
  const collectAll = async () => {
    let removed = 0;
    for (const n of names) {
      const storage = stores.get(n)!;
      await storage.flush();
      removed += await collectTombstones({
        self: n,
        storage,
        topology,
        replicas: replicasOf(n),
        quiet: () => true,
        graceMs: GRACE,
        hintsHeld: () => 0,
        metrics: registerRebalanceMetrics(new Registry(), new HintStore(storage, 1000)),
        logger: captureLog().logger,
      });
    }
    return removed;
  };
  const whenHeld = (label: string) => expect.poll(() => held.has(label)).toBe(true);
  const release = async (label: string) => {
    await whenHeld(label);
    held.get(label)!();
    held.delete(label);
  };
  const holdReply = (name: string, method: string, label: string) =>
    toHold.push({ name, method, label });
  /** Lets a read's held answer from c go on, and waits for the repair of c it makes. */
  const repairOfC = async (label: string) => {
    const before = applied.get('c')!;
    await release(label);
    await expect.poll(() => applied.get('c')!).toBeGreaterThan(before);
  };
  /** A delete of a key made now (its version from a's clock). */
  const tombstone = (): StoredRecord => ({
    version: local.clock.now(),
    tombstone: true,
    value: Buffer.alloc(0),
  });
  return {
    coordinator,
    tombstone,
    stores,
    handlers,
    clock: local.clock,
    get,
    putOn,
    holds,
    deliverHints,
    collectAll,
    holdReply,
    whenHeld,
    release,
    repairOfC,
    appliedOn: (n: string) => applied.get(n)!,
    /** kvstore_storage_late_tombstones_total of each member, in name order. */
    late: () =>
      Promise.all(
        names.map(async (n) => {
          const m = registries.get(n)!.getSingleMetric('kvstore_storage_late_tombstones_total');
          return m === undefined ? 'none' : (await m.get()).values[0]?.value;
        }),
      ),
  };
}

function openStoreFor(name: string): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: name });
  defer(() => s.close());
  return s;
}

/**
 * An anti-entropy walker on a whose ring is a and b alone (the pass of that pair), b serving it
 * through its own AntiEntropy and handler; `beforeApply` runs before each copy a sends to b.
 * `passes()`: how many passes the walker finished.
 */
function antiEntropyPair(
  c: ReturnType<typeof cluster>,
  beforeApply: () => Promise<void> = async () => {},
) {
  const pairRing = new Topology(
    ['a', 'b'],
    settledRing(1, ['a', 'b'], { a: 'inc-a', b: 'inc-b' }),
    2,
  );
  const logger = createLogger('silent', {});
  const made = (self: string, call: PeerCall, registry: Registry) =>
    new AntiEntropy({
      self,
      storage: c.stores.get(self)!,
      topology: pairRing,
      replicas: new Replicas(self, c.stores.get(self)!, call),
      call,
      versions: new RemoteVersions({ clock: c.stores.get(self)!.clock }),
      quiet: () => true,
      interruptions: () => 0,
      intervalMs: 600_000,
      timeoutMs: PEER_TIMEOUT,
      repairWithinMs: WITHIN,
      metrics: registerAntiEntropyMetrics(registry),
      logger,
    });
  const served = made(
    'b',
    () => Promise.reject(new Error('b asks nothing')),
    new Registry(),
  ).methods();
  const call: PeerCall = async (_name, method, body) => {
    if (method === 'apply') await beforeApply();
    const serve = served[method];
    return serve === undefined ? c.handlers.get('b')!(method, body) : serve(body);
  };
  const registry = new Registry();
  const walker = made('a', call, registry);
  const passes = async () =>
    (await registry.getSingleMetric('kvstore_anti_entropy_passes_total')!.get()).values.reduce(
      (n, v) => n + v.value,
      0,
    );
  return { walker, passes };
}

describe('a tombstone that landed late is collected no sooner than the grace after it landed', () => {
  it('a failed delete delivered as hints while a read that missed it was out: the deleted value stays deleted', async () => {
    const c = cluster();
    await c.putOn(['a', 'b'], 'k', 'old', c.clock.now());
    later(10);
    // A DEL coordinated by a member outside k's owners reached none of them: it failed, and that
    // member holds its hints.
    const tombstone = c.tombstone();
    later(3000);
    // A read of k: a and b answer 'old'; c's answer (nothing) comes late.
    c.holdReply('c', 'get', 'read');
    expect(await c.get('k')).toBe('old');
    await c.whenHeld('read');
    // The hints are delivered: every owner holds the tombstone, 3 s after its version.
    later(10);
    expect(await c.late()).toEqual([0, 0, 0]);
    await c.deliverHints('k', tombstone);
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    // Late where a and b held the value (counted), and on c, which held nothing (kept as it was).
    expect(await c.late()).toEqual([1, 1, 0]);
    // Delivered again (a retried hint): the same write, nothing more lands late.
    await c.deliverHints('k', tombstone);
    expect(await c.late()).toEqual([1, 1, 0]);
    // The grace after the tombstone's version: collection finds every member with it, no hints.
    vi.setSystemTime(tombstone.version.wall + GRACE + 1);
    const removed = await c.collectAll();
    // c's late answer: stale, so the read repairs c, still within the window of the read's start.
    await c.repairOfC('read');
    // Before: removed 3, and c held 'old' again.
    expect(c.holds('k')[2]).toBe('c:tombstone');
    expect(removed).toBe(0);
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    // Collected once the grace passed since the tombstones landed.
    later(GRACE);
    expect(await c.collectAll()).toBe(3);
  });

  it('a REMOVE that found nothing live, its read slow: the value it deleted that a read had found stays deleted', async () => {
    const c = cluster();
    // A PUT that failed: its copy to b is on its way (its version made now).
    const put = c.clock.now();
    later(10);
    // A REMOVE of k: nothing on a, and b's and c's answers (nothing) come 4 s late.
    c.holdReply('b', 'get', 'remove-b');
    c.holdReply('c', 'get', 'remove-c');
    const removing = c.coordinator.execute({ type: 'remove', key: b('k') });
    await c.whenHeld('remove-b');
    await c.whenHeld('remove-c');
    const arrived = Date.now();
    // The PUT's copy lands on b.
    later(10);
    await c.putOn(['b'], 'k', 'old', put);
    later(3000);
    // A read of k: b answers 'old' (a repaired at once); c's answer (nothing) comes late.
    c.holdReply('c', 'get', 'read');
    expect(await c.get('k')).toBe('old');
    await c.whenHeld('read');
    later(1000);
    await c.release('remove-b');
    await c.release('remove-c');
    // It found nothing live: its tombstone is versioned when it arrived, and deletes 'old'.
    expect(await removing).toEqual({ type: 'not_found' });
    await expect.poll(() => c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    vi.setSystemTime(arrived + GRACE + 1);
    const removed = await c.collectAll();
    await c.repairOfC('read');
    // Before: removed 3, and c held 'old' again.
    expect(c.holds('k')[2]).toBe('c:tombstone');
    expect(removed).toBe(0);
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
  });

  it('a failed delete that reached one owner in time and the others late: an expiry change that read the others does not bring the value back there', async () => {
    const c = cluster();
    await c.putOn(['a', 'b', 'c'], 'k', 'old', c.clock.now());
    later(10);
    // A DEL coordinated by a member outside k's owners reached c alone (in time): it failed,
    // and that member holds its hints for a and b.
    const tombstone = c.tombstone();
    await c.deliverHints('k', tombstone, ['c']);
    later(3000);
    // EXPIRE k: its read finds 'old' on a at once, on b late; c's answer (the tombstone) later
    // still, after the read is done.
    c.holdReply('b', 'get', 'expire-b');
    c.holdReply('c', 'get', 'expire-c');
    const expire = c.coordinator.execute({
      type: 'expire',
      key: b('k'),
      expiry: { relative: true, ms: 60_000 },
    });
    await c.whenHeld('expire-b');
    // The hints are delivered to a and b, 3 s after the tombstone's version.
    later(10);
    await c.deliverHints('k', tombstone, ['a', 'b']);
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    // The grace after its version: c's copy, which landed in time, is that old; a's and b's are not.
    vi.setSystemTime(tombstone.version.wall + GRACE + 1);
    const removed = await c.collectAll();
    // b's answer: the read found 'old' on a and b, within the window of its start; the expiry
    // change writes 'old' back to every owner (a and b keep the tombstone, which wins over it).
    await c.release('expire-b');
    expect(await expire).toEqual({ type: 'integer', value: 1 });
    // Before (with each store's own late copy counted from when it landed, not the others'):
    // c collected its copy, and held 'old' again.
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    expect(removed).toBe(0);
    later(GRACE);
    expect(await c.collectAll()).toBe(3);
  });

  it('a read lands no tombstone that would land late on a member holding nothing', async () => {
    // A tombstone that lands late is collected the grace after it landed, on every member (each
    // waits for every copy). A read that found it on b and nothing on c (c collected its copy, b
    // not yet: collection passes do not run at once on every member) landed it on c again, late:
    // every member kept it another grace, and a deleted key read more often than collection
    // passes ran was never collected.
    const c = cluster();
    await c.deliverHints('k', c.tombstone(), ['a', 'b']);
    later(LATE + 1);
    c.holdReply('c', 'get', 'read-k');
    expect(await c.get('k')).toBe('not_found');
    // A tombstone that took effect just now is repaired onto c, as before.
    await c.deliverHints('j', c.tombstone(), ['a', 'b']);
    c.holdReply('c', 'get', 'read-j');
    expect(await c.get('j')).toBe('not_found');
    await c.release('read-k');
    await c.repairOfC('read-j');
    expect(c.holds('j')[2]).toBe('c:tombstone');
    // Before: c held k's tombstone too.
    expect(c.holds('k')[2]).toBe('c:none');
    expect(c.appliedOn('c')).toBe(1);
    // Every copy landed where nothing was, or in time: none counted late.
    expect(await c.late()).toEqual([0, 0, 0]);
  });

  it("an anti-entropy pass of two members outside a delete's write quorum (RF - W = 2) does not bring the value back", async () => {
    // RF 3, W 1: a DEL acknowledged by c alone; its copies to a and b failed, hinted. a's pass
    // with b reads 'old' on a and nothing on b before the hints are delivered, and its push to b
    // is still on its way when every member collects the tombstone.
    const c = cluster();
    await c.putOn(['a'], 'k', 'old', c.clock.now());
    later(10);
    const tombstone = c.tombstone();
    await c.deliverHints('k', tombstone, ['c']);
    vi.setSystemTime(tombstone.version.wall + GRACE - 100);
    // a walks with b (a and b alone in its ring: the pass of this pair), its push to b held.
    let letPushGo: (() => void) | null = null;
    const { walker, passes } = antiEntropyPair(c, async () => {
      await new Promise<void>((go) => (letPushGo = go));
    });
    walker.start();
    await expect.poll(() => letPushGo !== null).toBe(true);
    // The hints are delivered to a and b: the grace less 100 ms after the tombstone's version.
    later(10);
    await c.deliverHints('k', tombstone, ['a', 'b']);
    vi.setSystemTime(tombstone.version.wall + GRACE + 1);
    const removed = await c.collectAll();
    letPushGo!();
    await expect.poll(passes).toBe(1);
    await walker.stop();
    // Before: removed 3, and b held 'old' again.
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
    expect(removed).toBe(0);
  });

  it('a value that expired long before it landed stays expired on a node whose clock is behind (within the offset), and an expiry change does not bring it back', async () => {
    // A SET with a TTL, hinted to every owner and delivered long after the value expired. A store
    // kept it as a value whose expiry is when it landed: live again to any clock behind that
    // store's, which the clock offset allows (here 100 ms of 500), and a PERSIST there kept it.
    const c = cluster(500);
    // Every owner holds an older write of k (where it held nothing, the late copy is kept as it
    // was: expired since its expiry, as everywhere).
    await c.putOn(['a', 'b', 'c'], 'k', 'older', c.clock.now());
    later(10);
    const set: StoredRecord = {
      version: c.clock.now(),
      tombstone: false,
      value: b('old'),
      expiresAt: Date.now() + 1000,
    };
    later(1000 + GRACE);
    await c.deliverHints('k', set);
    const landed = Date.now();
    // a's clock 100 ms behind the clock the copies landed by (a clock step, or another node's).
    vi.setSystemTime(landed - 100);
    // Before: 'old', and PERSIST answered 1 and wrote it back without an expiry.
    expect(await c.get('k')).toBe('not_found');
    expect(await c.coordinator.execute({ type: 'persist', key: b('k') })).toEqual({
      type: 'not_found',
    });
    // An hour on (before: 'old' on every owner, for good).
    vi.setSystemTime(landed + 3_600_000);
    expect(await c.get('k')).toBe('not_found');
    expect(c.holds('k')).toEqual(['a:tombstone', 'b:tombstone', 'c:tombstone']);
  });

  it('a tombstone that lands late on a member holding nothing at its key (a stream to a new owner, a hint) is kept as it was: collected the grace after it took effect', async () => {
    // No read found a value on that member for it to delete: a write-back of a value a read found
    // elsewhere is bounded by that member's copy, which landed where it held the value. Kept as
    // landing then, it held every member's collection up a grace longer (a join streams every
    // moved tombstone to a new owner), and anti-entropy fetched the bucket on every pass, its
    // bytes not the others'.
    const c = cluster();
    const tombstone = c.tombstone();
    await c.deliverHints('k', tombstone, ['a', 'b']);
    later(LATE + 1000);
    await c.deliverHints('k', tombstone, ['c']);
    const raw = (n: string) => c.stores.get(n)!.getRaw(b('k'));
    // Before: c's copy had its expiry set to when it landed.
    expect(raw('c')).toEqual(raw('a'));
    vi.setSystemTime(tombstone.version.wall + GRACE + 1);
    // Before: 0 (every member waited for c's copy).
    expect(await c.collectAll()).toBe(3);
  });

  it('copies of one tombstone that landed at different times are made the same by an anti-entropy pass', async () => {
    // a got the delete in time, b (holding the value) late: b keeps it as taking effect when it
    // landed. The copies order the same (one write), but their bytes differ, and so did their
    // digest bucket on every pass, each fetching the bucket's records whole, until collected.
    const c = cluster();
    await c.putOn(['a', 'b'], 'k', 'old', c.clock.now());
    later(10);
    const tombstone = c.tombstone();
    await c.deliverHints('k', tombstone, ['a']);
    later(LATE + 1000);
    await c.deliverHints('k', tombstone, ['b']);
    const raw = (n: string) => c.stores.get(n)!.getRaw(b('k'));
    const landedOnB = raw('b');
    expect(landedOnB).not.toEqual(raw('a'));
    later(1000);
    const { walker, passes } = antiEntropyPair(c);
    walker.start();
    await expect.poll(passes).toBe(1);
    await walker.stop();
    // Before: a kept its copy. a now holds b's, as it landed on b (not landing late on a again).
    expect(raw('a')).toEqual(landedOnB);
    expect(raw('b')).toEqual(landedOnB);
  });
});
