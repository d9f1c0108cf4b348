// Digest reads: a quorum read asks one replica for the record whole and the others for its
// header, and reads the newest whole (one more request) only when a header was newer. The
// decision on its own, then a coordinator over real stores and real replica handlers reached
// through an in-process PeerCall (as read-terms.test.ts), counting the record bytes replies carry.

import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DigestPlan, newestOf } from '../../src/coordinator/digest.ts';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { settledRing, Topology } from '../../src/membership/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  Replicas,
} from '../../src/replica/index.ts';
import {
  decodeRecord,
  encodeRecord,
  Storage,
  type StoredRecord,
  withoutValue,
} from '../../src/storage/index.ts';
import { getAndPutOn } from '../helpers/coordinators.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
afterEach(cleanup);

const rec = (wall: number, value: string, more: Partial<StoredRecord> = {}): StoredRecord => ({
  version: { wall, logical: 0, node: 'n' },
  tombstone: false,
  value: b(value),
  ...more,
});

describe('DigestPlan', () => {
  const never = () => new Promise<Buffer | null>(() => {});

  it('reads this node whole and asks every other replica for its header', () => {
    const plan = new DigestPlan('a', true);
    expect(plan.whole('a', false)).toBe(true);
    expect(plan.whole('b', false)).toBe(false);
    expect(plan.whole('c', true)).toBe(false);
    expect([...plan.heads]).toEqual(['b', 'c']);
  });

  it('asks the first other replica whole, and the next one whole once it failed', async () => {
    const plan = new DigestPlan('z', true);
    let fail = (_: Error) => {};
    const first = plan.ask('a', false, (h) => {
      expect(h).toBe(false);
      return new Promise((_, reject) => {
        fail = reject;
      });
    });
    plan.ask('b', false, (h) => {
      expect(h).toBe(true);
      return never();
    });
    fail(new KvError('KV_ERR_PEER_TIMEOUT', 'a timed out'));
    await expect(first).rejects.toThrow('a timed out');
    const asked: boolean[] = [];
    plan.ask('c', false, (h) => {
      asked.push(h);
      return never();
    });
    expect(asked).toEqual([false]);
    expect([...plan.heads]).toEqual(['b']);
  });

  it('asks one speculative replica whole while no whole answer is in, none once one is', async () => {
    const late = new DigestPlan('z', true);
    late.ask('a', false, never);
    expect(late.whole('b', true)).toBe(true);
    expect(late.whole('c', true)).toBe(false);
    const answered = new DigestPlan('z', true);
    await answered.ask('a', false, async () => b('x'));
    expect(answered.whole('b', true)).toBe(false);
  });

  it('asks only headers of other replicas for a read that needs no value', () => {
    const plan = new DigestPlan('a', false);
    expect(plan.whole('b', false)).toBe(false);
    expect(plan.whole('c', true)).toBe(false);
    expect(plan.whole('a', false)).toBe(true);
  });
});

describe('newestOf', () => {
  const v1 = encodeRecord(rec(1, 'one'));
  const v2 = encodeRecord(rec(2, 'two'));
  const answers = (...a: [string, Buffer | null][]) => new Map(a);

  it('answers the whole record when every header is its own', () => {
    const n = newestOf(answers(['a', v2], ['b', withoutValue(v2)]), new Set(['b']));
    expect(n.whole).toBe(v2);
    expect(n.record?.value).toEqual(b('two'));
  });

  it('names the replicas whose header is newer than the whole record', () => {
    const n = newestOf(
      answers(['a', v1], ['b', withoutValue(v2)], ['c', withoutValue(v2)]),
      new Set(['b', 'c']),
    );
    expect(n.whole).toBeNull();
    expect(n.holders).toEqual(['b', 'c']);
    expect(n.record?.version.wall).toBe(2);
  });

  it('takes the whole record of the newest write when a header of it came first', () => {
    const n = newestOf(answers(['b', withoutValue(v2)], ['a', v2], ['c', v1]), new Set(['b']));
    expect(n.whole).toBe(v2);
    expect(n.record?.value).toEqual(b('two'));
  });

  it('uses a record sent whole to a header ask (a member before digest reads), and a tombstone', () => {
    const whole = newestOf(answers(['a', v1], ['b', v2]), new Set(['b']));
    expect(whole.whole).toBe(v2);
    const gone = encodeRecord({ version: rec(3, '').version, tombstone: true, value: b('') });
    const tomb = newestOf(answers(['a', v1], ['b', gone]), new Set(['b']));
    expect(tomb.whole).toBe(gone);
    expect(tomb.record?.tombstone).toBe(true);
  });

  it('does not take a header of an empty value for the record whole', () => {
    const empty = encodeRecord(rec(2, ''));
    const n = newestOf(answers(['a', v1], ['b', empty]), new Set(['b']));
    expect(n.whole).toBeNull();
    expect(n.holders).toEqual(['b']);
  });

  it('orders headers of expiry changes like their records', () => {
    const base = rec(1, 'v').version;
    const expiring = encodeRecord(rec(5, 'v', { base, expiresAt: 9e12 }));
    const value = encodeRecord(rec(3, 'w'));
    // The later value beats the later expiry change of the older value.
    const n = newestOf(answers(['a', value], ['b', withoutValue(expiring)]), new Set(['b']));
    expect(n.whole).toBe(value);
  });

  it('answers none when no replica holds the key', () => {
    expect(newestOf(answers(['a', null], ['b', null]), new Set(['b'])).record).toBeNull();
  });
});

/** A store on a temporary directory, closed when the test ends. */
function openStore(name: string): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: name });
  defer(() => s.close());
  return s;
}

/** Record bytes in a get or getMany reply. */
function recordBytes(reply: unknown): number {
  const r = reply as { r?: Buffer | null; rs?: (Buffer | null)[] };
  return [r.r ?? null, ...(r.rs ?? [])].reduce((n, x) => n + (x?.length ?? 0), 0);
}

interface Members {
  /** Members whose calls time out (the failure detector has not caught them). */
  readonly down: Set<string>;
  /** Members whose whole (not headers-only) gets time out. */
  readonly noWhole: Set<string>;
  /** Members that answer as a version before digest reads: they ignore `h`. */
  readonly older: Set<string>;
}

/**
 * Node `a`'s coordinator among `names` (RF 3); every other member is a real replica handler on
 * its own store. `received` counts the record bytes of the get replies a receives.
 */
function cluster(names: string[], opts: { readQuorum?: number; readRepairChance?: number } = {}) {
  const recorded = Object.fromEntries(names.map((n) => [n, `inc-${n}`]));
  const stores = new Map(names.map((n) => [n, openStore(n)]));
  const handlers = new Map(
    names.map((n) => [
      n,
      createReplicaHandler({
        storage: stores.get(n)!,
        hello: () => ({}) as HelloReply,
        incarnation: `inc-${n}`,
        maxScanEntries: 100,
      }),
    ]),
  );
  const members: Members = { down: new Set(), noWhole: new Set(), older: new Set() };
  const sent: { to: string; method: string; h: boolean }[] = [];
  let received = 0;
  const call: PeerCall = async (name, method, body) => {
    const h = (body as { h?: boolean }).h === true;
    sent.push({ to: name, method, h });
    if (members.down.has(name) || (members.noWhole.has(name) && !h && method !== 'apply')) {
      await new Promise((r) => setTimeout(r, 5));
      throw new KvError('KV_ERR_PEER_TIMEOUT', `${name} did not answer`);
    }
    let asked = body;
    if (members.older.has(name) && h) {
      const { h: _, ...rest } = body as Record<string, unknown>;
      asked = rest;
    }
    const reply = await handlers.get(name)!(method, asked);
    if (method === 'get' || method === 'getMany') received += recordBytes(reply);
    return reply;
  };
  const topology = new Topology(names, settledRing(1, names, recorded), 3);
  const local = stores.get('a')!;
  const replicas = new Replicas('a', local, call, (name) => topology.readTerms(name));
  const registry = new Registry();
  const coordinator = new ClusterCoordinator({
    storage: local,
    topology,
    replicas,
    isUp: () => true,
    hint: () => {},
    info: () => ({}),
    readQuorum: opts.readQuorum ?? 2,
    writeQuorum: 2,
    readRepairChance: opts.readRepairChance ?? 0,
    readSpeculateMs: 1000,
    maxScanKeys: 100,
    registry,
  });
  const metric = async (name: string) =>
    (await registry.getSingleMetric(name)!.get()).values.reduce((n, v) => n + v.value, 0);
  const { get, putOn } = getAndPutOn(coordinator, local, (n) => stores.get(n)!);
  const valueOn = (n: string, key: string) => stores.get(n)!.get(b(key))?.value.toString();
  /** The owners of `key` other than a, in the order a asks them. */
  const others = (key: string) => topology.place(b(key)).target.filter((n) => n !== 'a');
  return {
    coordinator,
    topology,
    members,
    sent,
    received: () => received,
    resetReceived: () => {
      received = 0;
      sent.length = 0;
    },
    metric,
    get,
    putOn,
    valueOn,
    others,
  };
}

const BIG = 'x'.repeat(64 * 1024);

describe('quorum reads with digests (real stores)', () => {
  it('moves the value once: the other replica sends its header alone', async () => {
    const c = cluster(['a', 'b', 'c']);
    expect((await c.coordinator.execute({ type: 'put', key: b('k'), value: b(BIG) })).type).toBe(
      'ok',
    );
    c.resetReceived();
    expect(await c.get('k')).toBe(BIG);
    // One other owner, for its header: the turn's preferred one (read-preference.ts).
    expect(c.sent).toEqual([{ to: c.sent[0]!.to, method: 'get', h: true }]);
    expect(c.others('k')).toContain(c.sent[0]!.to);
    expect(c.received()).toBeLessThan(100);
    expect(await c.metric('kvstore_read_fetches_total')).toBe(0);
  });

  it('answers and repairs the newest value when this node, read whole, is stale', async () => {
    const c = cluster(['a', 'b', 'c']);
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['b', 'c'], 'k', BIG);
    c.resetReceived();
    expect(await c.get('k')).toBe(BIG);
    // One header, then the same replica's record whole: the value crossed once.
    const first = c.sent[0]!.to;
    expect(c.others('k')).toContain(first);
    expect(c.sent.map((s) => [s.to, s.h])).toEqual([
      [first, true],
      [first, false],
    ]);
    expect(c.received()).toBeLessThan(BIG.length + 200);
    expect(await c.metric('kvstore_read_fetches_total')).toBe(1);
    await expect.poll(() => c.valueOn('a', 'k')).toBe(BIG);
    expect(await c.metric('kvstore_read_repairs_total')).toBe(1);
  });

  it('repairs a stale replica that sent a header with the whole record', async () => {
    const c = cluster(['a', 'b', 'c']);
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['a'], 'k', 'new');
    c.resetReceived();
    expect(await c.get('k')).toBe('new');
    const asked = c.sent[0]!.to; // whichever other owner the turn preferred: stale, repaired
    await expect.poll(() => c.valueOn(asked, 'k')).toBe('new');
    expect(await c.metric('kvstore_read_fetches_total')).toBe(0);
  });

  it('reads a member that ignores h (before digest reads) as it sends: whole, no second request', async () => {
    const c = cluster(['a', 'b', 'c']);
    c.members.older.add('b');
    c.members.older.add('c');
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['b', 'c'], 'k', 'new');
    c.resetReceived();
    expect(await c.get('k')).toBe('new');
    expect(c.sent.map((s) => s.h)).toEqual([true]);
    expect(c.others('k')).toContain(c.sent[0]!.to);
    expect(await c.metric('kvstore_read_fetches_total')).toBe(0);
    await expect.poll(() => c.valueOn('a', 'k')).toBe('new');
  });

  it('reads whole from the next holder of the newest header when the first fails', async () => {
    // R=3: a whole, b and c headers; both newer. The first fails to send its record whole.
    const c = cluster(['a', 'b', 'c'], { readQuorum: 3 });
    c.members.noWhole.add('b');
    // The preferred member changes every turn: within two reads (two turns) b is asked first.
    const wholes: string[][] = [];
    for (const key of ['k0', 'k1']) {
      await c.putOn(['a', 'b', 'c'], key, 'old');
      await c.putOn(['b', 'c'], key, 'new');
      c.resetReceived();
      expect(await c.get(key)).toBe('new');
      wholes.push(c.sent.filter((s) => !s.h).map((s) => s.to));
      await expect.poll(() => c.valueOn('a', key)).toBe('new');
    }
    // b first: it fails and c sends it whole; c first: c alone.
    expect(wholes).toEqual(expect.arrayContaining([['b', 'c'], ['c']]));
  });

  it('is unavailable when no holder of the newest header can send it whole', async () => {
    const c = cluster(['a', 'b', 'c'], { readQuorum: 3 });
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['b', 'c'], 'k', 'new');
    c.members.noWhole.add('b');
    c.members.noWhole.add('c');
    await expect(c.get('k')).rejects.toThrow(
      /UNAVAILABLE|newest version could not be read whole \([bc]: peer_timeout, [bc]: peer_timeout\)/,
    );
  });

  it('reads a key this node does not hold: one replica whole, another whole after it failed', async () => {
    const c = cluster(['a', 'b', 'c', 'd']);
    let key = '';
    for (let i = 0; key === ''; i++) {
      if (!c.topology.place(b(`k${i}`)).target.includes('a')) key = `k${i}`;
    }
    const owners = c.topology.place(b(key)).target;
    await c.putOn([...owners], key, BIG);
    c.resetReceived();
    expect(await c.get(key)).toBe(BIG);
    expect(c.sent.map((s) => s.h)).toEqual([false, true]);
    expect(c.received()).toBeLessThan(BIG.length + 200);
    // The one asked whole is down: the next one is asked whole in its place. Each turn prefers
    // another owner first: within three reads (turns) the down one is asked first.
    const down = c.sent[0]!.to;
    c.members.down.add(down);
    let whole: string[] = [];
    for (let i = 0; i < owners.length && whole[0] !== down; i++) {
      c.resetReceived();
      expect(await c.get(key)).toBe(BIG);
      whole = c.sent.filter((s) => !s.h).map((s) => s.to);
    }
    expect(whole).toHaveLength(2);
    expect(whole[0]).toBe(down);
    expect(c.received()).toBeLessThan(BIG.length + 200);
    expect(await c.metric('kvstore_read_fetches_total')).toBe(0);
  });

  it('asks every replica for headers alone in a read that repairs all, and repairs the stale', async () => {
    const c = cluster(['a', 'b', 'c'], { readRepairChance: 1 });
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['a', 'b'], 'k', BIG);
    c.resetReceived();
    expect(await c.get('k')).toBe(BIG);
    expect(c.sent.filter((s) => s.method !== 'apply').map((s) => s.h)).toEqual([true, true]);
    expect(c.received()).toBeLessThan(200);
    await expect.poll(() => c.valueOn('c', 'k')).toBe(BIG);
  });

  it('answers EXISTS and REMOVE from headers; a stale replica is still repaired whole', async () => {
    const c = cluster(['a', 'b', 'c']);
    await c.putOn(['a', 'b', 'c'], 'k', 'old');
    await c.putOn(['b', 'c'], 'k', BIG);
    c.resetReceived();
    expect(await c.coordinator.execute({ type: 'exists', keys: [b('k'), b('k'), b('z')] })).toEqual(
      { type: 'integer', value: 2 },
    );
    // Answered from b's header; a is repaired from b's record, read whole in the background.
    await expect.poll(() => c.valueOn('a', 'k')).toBe(BIG);
    expect(await c.metric('kvstore_read_repairs_total')).toBeGreaterThanOrEqual(1);
    c.resetReceived();
    expect(await c.coordinator.execute({ type: 'remove', key: b('k') })).toEqual({ type: 'ok' });
    expect(c.received()).toBeLessThan(200);
    expect(await c.get('k')).toBe('not_found');
  });
});

describe('the replica side of h', () => {
  it('sends a copy of the header, never the value, for get and getMany', async () => {
    const storage = openStore('r');
    const handler = createReplicaHandler({
      storage,
      hello: () => ({}) as HelloReply,
      incarnation: 'inc-r',
      maxScanEntries: 100,
    });
    const record = rec(storage.clock.now().wall, BIG);
    const version = storage.clock.now();
    await storage.apply(b('k'), { ...record, version });
    const whole = storage.getRaw(b('k'))!;
    const one = (await handler('get', { k: b('k'), h: true })) as { r: Buffer };
    expect(one.r).toEqual(withoutValue(whole));
    expect(decodeRecord(one.r).version).toEqual(version);
    expect(((await handler('get', { k: b('k') })) as { r: Buffer }).r).toEqual(whole);
    const many = (await handler('getMany', { ks: [b('k'), b('none')], h: true })) as {
      rs: (Buffer | null)[];
    };
    expect(many.rs).toEqual([withoutValue(whole), null]);
  });
});
