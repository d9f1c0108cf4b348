// refusalOf: what a serving node refuses of its clients' commands, and whether it stays ready
// (/readyz); with clocks off, for members that measure each other through their hellos. Real
// processes: test/integration/readyz-refusals.test.ts, test/integration/clock-step.test.ts.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  Callers,
  ClockCheck,
  type ClockRefusal,
  type MemberAddress,
  Membership,
  type PeerSource,
  readHello,
  staticSource,
} from '../../src/membership/index.ts';
import { othersServing, type RefusalSources, refusalOf } from '../../src/node/refusal.ts';
import { createLogger } from '../../src/observability/index.ts';
import { readHelloRequest } from '../../src/replica/index.ts';
import { defer } from '../helpers/defer.ts';

function sources(over: Partial<RefusalSources> = {}): RefusalSources {
  return {
    stalled: () => null,
    dropping: () => null,
    duplicate: () => null,
    clock: () => null,
    others: () => 2,
    ...over,
  };
}

const ownClock: ClockRefusal = { reason: 'clock: no peer has answered', mutual: false };

it('refuses nothing while nothing refuses', () => {
  expect(refusalOf(sources())).toBeNull();
});

it('is not ready for a stalled disk, records being dropped or another process under its name, peers or not', () => {
  for (const others of [0, 2]) {
    expect(
      refusalOf(sources({ dropping: () => 'replica: dropping', others: () => others })),
    ).toEqual({ commands: 'all', reason: 'replica: dropping', ready: false });
    expect(refusalOf(sources({ stalled: () => 'storage: stalled', others: () => others }))).toEqual(
      { commands: 'all', reason: 'storage: stalled', ready: false },
    );
    expect(
      refusalOf(sources({ duplicate: () => 'membership: twin', others: () => others })),
    ).toEqual({ commands: 'all', reason: 'membership: twin', ready: false });
  }
});

it("refuses writes for its clock: not ready while another member may take them, unless it's mutual", () => {
  expect(refusalOf(sources({ clock: () => ownClock }))).toEqual({
    commands: 'writes',
    reason: ownClock.reason,
    ready: false,
  });
  // Every other member down (or none): no node would take them instead.
  expect(refusalOf(sources({ clock: () => ownClock, others: () => 0 }))).toMatchObject({
    ready: true,
  });
  // Its only witness refuses writes as well: neither is the better place for clients.
  const mutual = { reason: 'clock: off from 1 of 1', mutual: true };
  expect(refusalOf(sources({ clock: () => mutual }))).toMatchObject({ ready: true });
});

it('names the first refusal that applies: the disk, the name, then the clock', () => {
  const all = sources({
    stalled: () => 'storage: stalled',
    duplicate: () => 'membership: twin',
    clock: () => ownClock,
  });
  expect(refusalOf(all)?.reason).toBe('storage: stalled');
  expect(refusalOf({ ...all, stalled: () => null })?.reason).toBe('membership: twin');
});

/** --max-clock-offset-ms of the members below. */
const MAX_OFFSET_MS = 500;

/**
 * Members named by `clocks` (each its clock's offset from the real one, ms), wired as a node
 * wires them (startCluster): each a Membership probing the others, whose hellos carry their
 * clock and whether they refuse writes for it, and whose probes say who asks and whether it
 * serves; a ClockCheck over the offsets its probes measure; refusalOf over both. Members in
 * `down` answer no probe (and are asked nothing); the member source of those in `blind` never
 * answers (a DNS server failing since they started). Returns each running member's refusal
 * after `rounds` rounds of probes (every member probes, then every member's check looks: as on
 * the 'probed' event).
 */
async function refusalsOf(
  clocks: Record<string, number>,
  { down = [], blind = [] }: { down?: readonly string[]; blind?: readonly string[] } = {},
  rounds = 3,
): Promise<Record<string, ReturnType<typeof refusalOf>>> {
  const names = Object.keys(clocks);
  const address = (name: string): MemberAddress => ({
    name,
    host: `127.0.0.${names.indexOf(name) + 1}`,
    peerPort: 7946,
  });
  const checks = new Map<string, ClockCheck>();
  const callers = new Map(names.map((n) => [n, new Callers(n, 60_000)]));
  // `name`'s hello as `asker` reads it: its clock relative to the asker's.
  const hello = (name: string, asker: string) => ({
    name,
    incarnation: `i-${name}`,
    status: 'active',
    ringId: 'r',
    rebalanced: null,
    settled: { epoch: 1, members: names, incarnations: {}, lost: [] },
    hints: 0,
    clock: Date.now() + clocks[name]! - clocks[asker]!,
    ...(checks.get(name)!.refusal() === null ? {} : { clockRefusing: true }),
  });
  const failing: PeerSource = {
    description: 'dns:failing',
    resolve: () => Promise.reject(new Error('SERVFAIL')),
  };
  const nodes = names
    .filter((n) => !down.includes(n))
    .map((self) => {
      const membership = new Membership({
        self: address(self),
        source: blind.includes(self) ? failing : staticSource(names.map(address)),
        probe: async (m) => {
          if (down.includes(m.name)) throw new Error(`${m.name} is down`);
          callers.get(m.name)!.heard({ name: self, serving: checks.get(self)!.refusal() === null });
          return readHello(hello(m.name, self));
        },
        // Down at the first probe it does not answer.
        probeFailures: 1,
        selfHello: () => readHello(hello(self, self)),
        // Never on their timers: the rounds below resolve and probe.
        resolveIntervalMs: 60_000,
        probeIntervalMs: 60_000,
        logger: createLogger('silent', {}),
        registry: new Registry(),
      });
      defer(() => membership.stop());
      const check = new ClockCheck({
        offsets: () => membership.clockOffsets(),
        maxOffsetMs: MAX_OFFSET_MS,
        peers: () => {
          const listed = membership.names();
          return listed === null ? null : listed.length - 1;
        },
        answered: () => membership.answering(),
        logger: createLogger('silent', {}),
        registry: new Registry(),
      });
      checks.set(self, check);
      const refusal = () =>
        refusalOf({
          stalled: () => null,
          dropping: () => null,
          duplicate: () => null,
          clock: () => check.refusal(),
          others: () => othersServing(membership, callers.get(self)!),
        });
      return { self, membership, check, refusal };
    });
  for (const n of nodes) await n.membership.resolveNow();
  for (let i = 0; i < rounds; i++) {
    for (const n of nodes) await n.membership.probeNow();
    for (const n of nodes) n.check.update();
  }
  return Object.fromEntries(nodes.map((n) => [n.self, n.refusal()]));
}

describe('readiness of members whose clocks are off, from what their hellos say', () => {
  it("reads a hello's clockRefusing and storageNotWritable when they say true, and nothing else (older members send none)", () => {
    const base = { name: 'a', incarnation: 'i', status: 'active', ringId: 'r', rebalanced: null };
    for (const field of ['clockRefusing', 'storageNotWritable'] as const) {
      expect(readHello({ ...base, [field]: true })[field]).toBe(true);
      for (const other of [{}, { [field]: false }, { [field]: 'yes' }]) {
        expect(readHello({ ...base, ...other })).not.toHaveProperty(field);
      }
    }
  });

  it('keeps every member ready, degraded, when every clock is off from every other', async () => {
    const refusals = await refusalsOf({ a: 0, b: 3_000, c: -3_000 });
    // Each is off from both others: each refuses writes, and none is a better place for clients.
    // Before: each was not ready (two members up for data), and a Service had no endpoint left.
    for (const r of Object.values(refusals)) {
      expect(r).toMatchObject({
        commands: 'writes',
        reason: expect.stringMatching(/^clock: this node's clock is more than 500 ms /),
        ready: true,
      });
    }
    // Two against two: each is off from two of its three peers, and refuses; all stay ready.
    const pairs = await refusalsOf({ a: 0, b: 0, c: 3_000, d: 3_000 });
    expect(Object.values(pairs).map((r) => r?.ready)).toEqual([true, true, true, true]);
  });

  it('takes out the one member whose clock is off while the others take writes', async () => {
    const refusals = await refusalsOf({ a: 0, b: 100, c: 3_000 });
    expect(refusals.a).toBeNull();
    expect(refusals.b).toBeNull();
    expect(refusals.c).toMatchObject({ commands: 'writes', ready: false });
    // Two off, apart from each other and from three that agree: the two are out, the rest in.
    const five = await refusalsOf({ a: 0, b: 0, c: 0, d: 3_000, e: -3_000 });
    expect(five).toMatchObject({ a: null, b: null, c: null, d: { ready: false } });
    expect(five.e).toMatchObject({ ready: false });
  });

  it('keeps two members ready that refuse each other, the third down', async () => {
    const refusals = await refusalsOf({ a: 0, b: 3_000, c: 0 }, { down: ['c'] });
    expect(refusals).toEqual({
      a: { commands: 'writes', reason: expect.stringMatching(/^clock: /), ready: true },
      b: { commands: 'writes', reason: expect.stringMatching(/^clock: /), ready: true },
    });
  });
});

describe('readiness of a member whose DNS never answered since it started', () => {
  it('is not ready while members that probe it serve, and ready when none does', async () => {
    // c knows no member (its source never answered) and refuses writes: a and b, probing it,
    // say they serve, so its clients belong with them. Before: ready, `degraded`, though it could
    // route nothing (no member known, no quorum) while a and b served.
    const refusals = await refusalsOf({ a: 0, b: 0, c: 0 }, { blind: ['c'] });
    expect(refusals).toMatchObject({ a: null, b: null });
    expect(refusals.c).toMatchObject({
      commands: 'writes',
      reason: expect.stringMatching(/^clock: no peer has answered /),
      ready: false,
    });
    // Every member's DNS failing as they restarted together: none probes another, all stay ready.
    const all = await refusalsOf({ a: 0, b: 0, c: 0 }, { blind: ['a', 'b', 'c'] });
    expect(Object.values(all).map((r) => r?.ready)).toEqual([true, true, true]);
    // The members that probe it refuse writes for their clocks too: no better place, ready.
    const skewed = await refusalsOf({ a: 0, b: 3_000, c: -3_000 }, { blind: ['c'] });
    expect(skewed).toMatchObject({ a: { ready: true }, b: { ready: true } });
    expect(skewed.c).toMatchObject({ ready: true });
  });
});

describe('Callers', () => {
  it('counts the askers heard within the window that said they serve, each by its last probe', () => {
    let now = 0;
    const callers = new Callers('c', 1_000, () => now);
    callers.heard({ name: 'a', serving: true });
    callers.heard({ name: 'b', serving: false });
    callers.heard({ name: 'c', serving: true }); // itself
    callers.heard({}); // an older version says nothing of itself
    expect(callers.serving()).toBe(1);
    callers.heard({ name: 'b', serving: true });
    expect(callers.serving()).toBe(2);
    now = 600;
    callers.heard({ name: 'a', serving: true });
    now = 1_200; // b last heard 1.2 s ago: called down by now
    expect(callers.serving()).toBe(1);
    callers.heard({ name: 'a', serving: false });
    expect(callers.serving()).toBe(0);
  });

  it('reads a hello request field by field: `{}` for anything malformed (older versions send `{}`)', () => {
    expect(readHelloRequest({ name: 'a', serving: true })).toEqual({ name: 'a', serving: true });
    expect(readHelloRequest({ name: 'a', serving: 'yes' })).toEqual({ name: 'a' });
    // The asker's settled epoch and probe interval come together, or not at all.
    const both = { name: 'a', epoch: 3, probeMs: 1000 };
    expect(readHelloRequest(both)).toEqual(both);
    for (const bad of [{ epoch: 3 }, { epoch: -1, probeMs: 1000 }, { epoch: 3, probeMs: 0 }]) {
      expect(readHelloRequest({ name: 'a', ...bad })).toEqual({ name: 'a' });
    }
    for (const body of [{}, null, 'a', { name: '' }, { name: 7 }, { name: 'x'.repeat(254) }]) {
      expect(readHelloRequest(body)).toEqual({});
    }
  });
});
