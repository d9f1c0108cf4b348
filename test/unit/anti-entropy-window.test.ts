// An anti-entropy pass writes back records it read before a wait: pushed to the other member, or
// pulled from it and stored here. A delete made meanwhile may have had its tombstone collected by
// the time they land, and the record would bring the deleted value back. They must land within
// the repair window of when they were read, or not at all. Two members on real stores: a walks
// with a real AntiEntropy, b answers with its own AntiEntropy's methods and a real replica
// handler, reached through an in-process PeerCall that holds one request (or its answer) back.
// The timing is faked: Date alone runs on vitest's fake clock, moved past the window by the test,
// and the collection of the tombstone on both members is made directly (Storage.discard).

import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { settledRing, Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  ANTI_ENTROPY_METHODS,
  AntiEntropy,
  registerAntiEntropyMetrics,
} from '../../src/rebalance/index.ts';
import { type PeerCall, RemoteVersions, Replicas } from '../../src/replica/index.ts';
import type { Storage } from '../../src/storage/index.ts';
import { handlerOn, openStore } from '../helpers/coordinators.ts';
import { cleanup } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
const WITHIN = 1000;
const KEY = b('k');

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
});
afterEach(async () => {
  vi.useRealTimers();
  await cleanup();
});

interface Hold {
  readonly method: string;
  readonly when: 'send' | 'reply';
}

/**
 * a and b (RF 2: both own every key), a walking. `held`: the methods whose request to b waits on
 * its way (`send`, answered as b's store is when let go) or whose answer waits (`reply`, read
 * from b's store when asked); each waits in `gates`, in the order they came, until let go.
 */
function pair(...held: Hold[]) {
  const names = ['a', 'b'];
  const stores = new Map<string, Storage>(names.map((n) => [n, openStore(n)]));
  const topology = new Topology(names, settledRing(1, names, { a: 'inc-a', b: 'inc-b' }), 2);
  const logger = createLogger('silent', {});
  const made = (self: string, call: PeerCall, registry: Registry) =>
    new AntiEntropy({
      self,
      storage: stores.get(self)!,
      topology,
      replicas: new Replicas(self, stores.get(self)!, call),
      call,
      versions: new RemoteVersions({ clock: stores.get(self)!.clock }),
      quiet: () => true,
      interruptions: () => 0,
      intervalMs: 600_000,
      timeoutMs: 2000,
      repairWithinMs: WITHIN,
      metrics: registerAntiEntropyMetrics(registry),
      logger,
    });
  const nowhere: PeerCall = () => Promise.reject(new Error('b asks nothing here'));
  const served = made('b', nowhere, new Registry()).methods();
  const handler = handlerOn(stores.get('b')!, 'inc-b');
  const gates: (() => void)[] = [];
  const gate = () => new Promise<void>((resolve) => gates.push(resolve));
  const holds = (method: string, when: Hold['when']) =>
    held.some((h) => h.method === method && h.when === when);
  const call: PeerCall = async (_name, method, body) => {
    if (holds(method, 'send')) await gate();
    const serve = served[method];
    const reply = await (serve === undefined ? handler(method, body) : serve(body));
    if (holds(method, 'reply')) await gate();
    return reply;
  };
  const registry = new Registry();
  const walker = made('a', call, registry);
  const passes = async () =>
    (await registry.getSingleMetric('kvstore_anti_entropy_passes_total')!.get()).values.reduce(
      (n, v) => n + v.value,
      0,
    );
  const write = async (on: string, value: string) => {
    const version = stores.get('a')!.clock.now();
    await stores.get(on)!.apply(KEY, { version, tombstone: false, value: b(value) });
  };
  const holding = (n: string) => {
    const r = stores.get(n)!.get(KEY);
    return `${n}:${r === undefined ? 'none' : r.tombstone ? 'tombstone' : r.value.toString()}`;
  };
  /**
   * Once the held request is waiting: k deleted on both members, the clock past the window, the
   * tombstone collected on both; then the request goes on. Resolves once the pass ended.
   */
  const deleteWhileHeld = async () => {
    await expect.poll(() => gates.length).toBe(1);
    const version = stores.get('a')!.clock.now();
    for (const s of stores.values()) await s.apply(KEY, { version, tombstone: true, value: b('') });
    vi.setSystemTime(Date.now() + WITHIN + 1);
    for (const s of stores.values()) expect(await s.discard([{ key: KEY, version }])).toBe(1);
    gates[0]!();
    await expect.poll(passes).toBe(1);
  };
  return { walker, write, holds: holding, deleteWhileHeld, stores, gates, passes };
}

describe('anti-entropy writes back only within the window of its read', () => {
  it.each([
    // a's record, read before the delete, on its way to b.
    { what: 'push a', holder: 'a', held: { method: 'apply', when: 'send' } as const },
    // b's record, read before the delete, answered to a, which stores it after.
    {
      what: 'store a pulled',
      holder: 'b',
      held: { method: ANTI_ENTROPY_METHODS.entries, when: 'reply' } as const,
    },
  ])(
    'does not $what record read before a delete whose tombstone was collected since',
    async ({ holder, held }) => {
      const p = pair(held);
      await p.write(holder, 'old');
      p.walker.start();
      await p.deleteWhileHeld();
      await p.walker.stop();
      expect([p.holds('a'), p.holds('b')]).toEqual(['a:none', 'b:none']);
    },
  );

  it('pushes within the window', async () => {
    const p = pair();
    await p.write('a', 'pushed');
    p.walker.start();
    await expect.poll(() => p.holds('b')).toBe('b:pushed');
    await p.walker.stop();
  });

  it('pushes only within the window of when it read the member it pushes to', async () => {
    // b's records (here: nothing at k) are read first, then a's own (its old value): the push
    // is made of both. A delete copied to b just after b answered (b in its write quorum, a not:
    // a gets it later, by a hint) has a version no older than that answer, less the copy's time
    // (0 here), and is collected on every member once the grace (here the window and 1 ms) has
    // passed since. The entries answer takes 500 ms to come back, and the push goes on its way
    // after: it must land by the window of when b was read, not of when a read its own.
    const p = pair(
      { method: ANTI_ENTROPY_METHODS.entries, when: 'reply' },
      { method: 'apply', when: 'send' },
    );
    await p.write('a', 'old');
    p.walker.start();
    await expect.poll(() => p.gates.length).toBe(1);
    const version = p.stores.get('b')!.clock.now();
    const tomb = { version, tombstone: true, value: b('') };
    await p.stores.get('b')!.apply(KEY, tomb);
    vi.setSystemTime(Date.now() + 500);
    p.gates[0]!();
    await expect.poll(() => p.gates.length).toBe(2);
    await p.stores.get('a')!.apply(KEY, tomb);
    vi.setSystemTime(version.wall + WITHIN + 2);
    for (const s of p.stores.values()) expect(await s.discard([{ key: KEY, version }])).toBe(1);
    p.gates[1]!();
    await expect.poll(p.passes).toBe(1);
    await p.walker.stop();
    expect([p.holds('a'), p.holds('b')]).toEqual(['a:none', 'b:none']);
  });
});
