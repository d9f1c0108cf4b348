// A member the source stops listing: kept while it answers nowhere (a restart, maybe on a new
// address), gone once it answers where it was, reported itself decommissioned, or the grace ended.

import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import {
  holdsDataIn,
  type MemberAddress,
  Membership,
  type PeerSource,
  settledRing,
} from '../../src/membership/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { until } from '../helpers/write-log.ts';

const ZONE = 'kvstore-headless.default.svc.cluster.local';
/** A member as an SRV record lists it: its host is the target name, whatever its address. */
const srv = (name: string): MemberAddress => ({ name, host: `${name}.${ZONE}`, peerPort: 7946 });
/** A member as an A record named by asking it lists it: its host is the address. */
const at = (name: string, i: number): MemberAddress => ({
  name,
  host: `127.0.0.${i}`,
  peerPort: 7946,
});

/**
 * n0's Membership over a source answering `listed`, whose probes reach the hosts in `running`
 * (host -> the hello there). The test probes and resolves itself (start() is never called).
 * `holding`: the members n0's settled ring counts as holding data (absent: every member).
 */
function membershipOf(self: MemberAddress, unlistedGraceMs: number, holding?: Set<string>) {
  const source = { listed: [] as MemberAddress[], failing: false, unnamed: 0 };
  const running = new Map<string, HelloReply | Promise<HelloReply>>();
  const peerSource: PeerSource = {
    description: 'test',
    resolve: async () => {
      if (source.failing) throw new Error('queryA ESERVFAIL');
      return [...source.listed];
    },
    unnamed: () => source.unnamed,
  };
  const log = captureLog();
  const registry = new Registry();
  const membership = new Membership({
    self,
    source: peerSource,
    probe: async (m) => {
      const hello = running.get(m.host);
      if (hello === undefined) throw new Error(`getaddrinfo ENOTFOUND ${m.host}`);
      return hello;
    },
    selfHello: () => ({ name: self.name }) as HelloReply,
    resolveIntervalMs: 60_000,
    probeIntervalMs: 60_000,
    probeFailures: 3,
    unlistedGraceMs,
    ...(holding ? { holdsData: (name: string) => holding.has(name) } : {}),
    logger: log.logger,
    registry,
  });
  defer(() => membership.stop());
  const gone: string[] = [];
  membership.on('gone', (a) => gone.push(a));
  const said = (msg: string) => log.records().filter((r) => r.msg === msg);
  /** Lists `members`, re-reads the source and probes `rounds` times. */
  const step = async (members: MemberAddress[], rounds = 1) => {
    source.listed = members;
    await membership.resolveNow();
    for (let i = 0; i < rounds; i++) await membership.probeNow();
  };
  const unlistedGauge = async () =>
    (await registry.getSingleMetric('kvstore_members_unlisted')?.get())?.values[0]?.value;
  return { membership, running, source, gone, said, step, unlistedGauge };
}

const hello = (name: string, status = 'active') => ({ name, status }) as HelloReply;
const state = (m: Membership, name: string) => m.members().find((v) => v.name === name)?.state;

describe('a member the source stops listing', () => {
  it('(SRV) stays a member while no record names it, and is the same member when one does again', async () => {
    // A pod deleted and made again: its SRV record is gone until the new pod has an address,
    // then back under the same target name (whose A record changed: dialled by name, the next
    // connection reaches the new address).
    const self = srv('kvstore-0');
    const { membership, running, gone, said, step, unlistedGauge } = membershipOf(self, 60_000);
    const two = srv('kvstore-2');
    running.set(two.host, hello('kvstore-2'));
    await step([self, srv('kvstore-1'), two]);
    expect(state(membership, 'kvstore-2')).toBe('up');
    running.delete(two.host);
    await step([self, srv('kvstore-1')], 5);
    expect(membership.names()).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    expect(state(membership, 'kvstore-2')).toBe('down');
    expect(await unlistedGauge()).toBe(1);
    running.set(two.host, hello('kvstore-2'));
    await step([self, srv('kvstore-1'), two]);
    expect(state(membership, 'kvstore-2')).toBe('up');
    expect(await unlistedGauge()).toBe(0);
    expect(said('member left')).toEqual([]);
    expect(said('member listed again').map((r) => r.member)).toEqual(['kvstore-2']);
    expect(gone).toEqual([]);
  });

  it('(SRV) does not leave when its target name answers before this node resolves again', async () => {
    // The new pod's records (its SRV record, its target's A record) appear together, but this node
    // resolves every few seconds and probes every second: its probe, dialled by target name,
    // reaches the new process while its last answer of the source still lacks the record. That is
    // no sign it was removed: a resolve made after the answer says.
    const self = srv('kvstore-0');
    const { membership, running, source, said, step, unlistedGauge } = membershipOf(self, 60_000);
    const two = srv('kvstore-2');
    running.set(two.host, hello('kvstore-2'));
    await step([self, srv('kvstore-1'), two]);
    running.delete(two.host);
    await step([self, srv('kvstore-1')], 5);
    expect(state(membership, 'kvstore-2')).toBe('down');
    // Back: listed by DNS again, and answering; this node has not resolved since.
    source.listed = [self, srv('kvstore-1'), two];
    running.set(two.host, hello('kvstore-2'));
    await membership.probeNow();
    await until(async () => (await unlistedGauge()) === 0, 5000, 'kvstore-2 listed again');
    expect(membership.names()).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    expect(state(membership, 'kvstore-2')).toBe('up');
    expect(said('member left')).toEqual([]);
  });

  it('(A) is moved, not left and joined, when it comes back named at a new address', async () => {
    const self = at('n0', 1);
    const { membership, running, gone, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.3', hello('n2'));
    await step([self, at('n2', 3)]);
    // Unlisted (pod deleted); its new address is listed but cannot be named until it answers.
    running.delete('127.0.0.3');
    await step([self], 5);
    expect(membership.names()).toEqual(['n0', 'n2']);
    running.set('127.0.0.5', hello('n2'));
    await step([self, at('n2', 5)]);
    expect(membership.address('n2')?.host).toBe('127.0.0.5');
    expect(state(membership, 'n2')).toBe('up');
    expect(said('member left')).toEqual([]);
    expect(said('member joined').map((r) => r.member)).toEqual(['n2']);
    expect(said('member moved').map((r) => [r.from, r.to])).toEqual([
      ['127.0.0.3:7946', '127.0.0.5:7946'],
    ]);
    expect(gone).toEqual(['127.0.0.3:7946']); // its old address's connections are closed
  });

  it('(A) leaves once another member is listed at its address', async () => {
    // n2 restarts elsewhere; n1 restarts on n2's old address (an address given out again). The
    // peer connections are the address's: kept, n2's requests would reach n1, which would store
    // and acknowledge them as n2's (a write owned by both acknowledged twice by one copy).
    const self = at('n0', 1);
    const { membership, running, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    running.set('127.0.0.3', hello('n2'));
    await step([self, at('n1', 2), at('n2', 3)]);
    running.delete('127.0.0.3');
    await step([self, at('n1', 2)], 5);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    running.set('127.0.0.3', hello('n1'));
    await step([self, at('n1', 3)]);
    const holders = membership.members().filter((m) => m.host === '127.0.0.3');
    expect(holders.map((m) => m.name)).toEqual(['n1']);
    expect(said('member left').map((r) => [r.member, r.reason])).toEqual([
      ['n2', 'not listed, and another member is listed at its address'],
    ]);
  });

  it('leaves when it answers where it was and a resolve made after that still does not list it', async () => {
    // Running, and no longer listed: removed from the records on purpose.
    const self = at('n0', 1);
    const { membership, running, gone, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2)]);
    let changes = 0;
    membership.on('change', () => changes++);
    await step([self], 0);
    expect(membership.names()).toEqual(['n0', 'n1']);
    expect(changes).toBe(0);
    await membership.probeNow();
    await until(() => membership.names()?.length === 1, 5000, 'n1 to leave');
    expect(changes).toBe(1);
    expect(membership.names()).toEqual(['n0']);
    expect(said('member left').map((r) => r.reason)).toEqual([
      'not listed, and it answers where it was',
    ]);
    expect(gone).toEqual(['127.0.0.2:7946']);
  });

  it('does not leave on the answer to a probe sent before it was unlisted', async () => {
    // Its last answer, from just before it stopped: no sign that it still runs there.
    const self = at('n0', 1);
    const { membership, running, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2)]);
    const late = Promise.withResolvers<HelloReply>();
    running.set('127.0.0.2', late.promise);
    const probing = membership.probeNow();
    await step([self], 0);
    running.delete('127.0.0.2');
    late.resolve(hello('n1'));
    await probing;
    expect(membership.names()).toEqual(['n0', 'n1']);
    await membership.probeNow();
    expect(membership.names()).toEqual(['n0', 'n1']);
    expect(said('member left')).toEqual([]);
  });

  it('leaves at once when it reported itself decommissioning or decommissioned, and with no grace', async () => {
    // Removed by the operator once it reported decommissioned: a node whose last answer from it
    // said decommissioning has not heard that yet, and must not keep it down for the grace.
    const self = at('n0', 1);
    const { membership, running, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1', 'decommissioned'));
    running.set('127.0.0.3', hello('n2', 'decommissioning'));
    running.set('127.0.0.4', hello('n3'));
    await step([self, at('n1', 2), at('n2', 3), at('n3', 4)]);
    running.clear();
    await step([self, at('n3', 4)], 0);
    expect(membership.names()).toEqual(['n0', 'n3']);
    expect(said('member left').map((r) => r.member)).toEqual(['n1', 'n2']);

    const none = membershipOf(self, 0);
    await none.step([self, at('n3', 4)]);
    await none.step([self], 0);
    expect(none.membership.names()).toEqual(['n0']);
  });

  it('keeps it for the grace whatever the wall clock does meanwhile', async () => {
    // A wall clock stepped ahead (NTP after a pause, a VM resumed) while a member restarts
    // elsewhere: its grace is time that passed, not a difference of wall clock readings.
    const self = at('n0', 1);
    const { membership, said, step } = membershipOf(self, 60_000);
    await step([self, at('n2', 3)]);
    await step([self]);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 3_600_000 });
    try {
      await membership.probeNow();
    } finally {
      vi.useRealTimers();
    }
    expect(membership.names()).toEqual(['n0', 'n2']);
    expect(said('member left')).toEqual([]);
  });

  it('does not leave for the grace once it answered, while the source cannot say', async () => {
    // Back and answering, but the DNS server fails (an outage): the source's last list is kept,
    // as for every member; the grace is for a member that answers nowhere.
    const self = srv('kvstore-0');
    const { membership, running, source, said, step } = membershipOf(self, 300);
    const two = srv('kvstore-2');
    await step([self, two]);
    await step([self]);
    running.set(two.host, hello('kvstore-2'));
    source.failing = true;
    const since = performance.now();
    await until(
      async () => {
        await membership.probeNow();
        return performance.now() - since > 600;
      },
      5000,
      'twice the grace',
    );
    expect(membership.names()).toEqual(['kvstore-0', 'kvstore-2']);
    expect(said('member left')).toEqual([]);
  });

  it('leaves once it has answered nowhere for the grace', async () => {
    const self = at('n0', 1);
    const { membership, said, step } = membershipOf(self, 300);
    await step([self, at('n2', 3)]);
    await step([self]);
    expect(membership.names()).toEqual(['n0', 'n2']);
    await until(
      async () => {
        await membership.probeNow();
        return membership.names()?.length === 1;
      },
      5000,
      'n2 to leave',
    );
    const left = said('member left');
    expect(left.map((r) => r.reason)).toEqual(['not listed, and answered nowhere for the grace']);
    expect(left[0]!.unlistedMs).toBeGreaterThanOrEqual(300);
  });

  it('leaves at once when the settled ring counts no data on it, answered or not', async () => {
    // n1 answered, but its join never settled; n2 never answered and never settled: neither
    // holds anything the others count on. n3 never answered this node (restarted while n3 was
    // down) but holds data in the settled ring: kept like any.
    const self = at('n0', 1);
    const holding = new Set(['n0', 'n3']);
    const { membership, running, said, step, unlistedGauge } = membershipOf(self, 60_000, holding);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2), at('n2', 3), at('n3', 4)]);
    running.clear();
    await step([self], 0);
    expect(membership.names()).toEqual(['n0', 'n3']);
    expect(said('member left').map((r) => [r.member, r.reason])).toEqual([
      ['n1', 'not listed, and the settled ring counts no data on it'],
      ['n2', 'not listed, and the settled ring counts no data on it'],
    ]);
    await membership.probeNow();
    expect(membership.names()).toEqual(['n0', 'n3']);
    expect(await unlistedGauge()).toBe(1);
  });

  it('leaves at the next probe round once its hand-off is recorded, its last status missed', async () => {
    // n1 decommissioned while n0 was cut off from it: its last answer to n0 said active. The
    // others' settled ring, adopted by n0, records its hand-off; the operator then deletes its pod.
    const self = at('n0', 1);
    const holding = new Set(['n0', 'n1', 'n2']);
    const { membership, running, gone, said, step } = membershipOf(self, 60_000, holding);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2), at('n2', 3)]);
    running.delete('127.0.0.2');
    await step([self, at('n2', 3)], 2);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    holding.delete('n1');
    let changes = 0;
    membership.on('change', () => changes++);
    await membership.probeNow();
    expect(membership.names()).toEqual(['n0', 'n2']);
    expect(changes).toBe(1);
    expect(said('member left').map((r) => [r.member, r.reason])).toEqual([
      ['n1', 'not listed, and the settled ring counts no data on it'],
    ]);
    expect(gone).toEqual(['127.0.0.2:7946']);
  });
});

describe('a member the settled ring counts no data on, unlisted while an address is unnamed', () => {
  it('stays while the source lists an address this node cannot name yet: it may be there', async () => {
    // Chaos seed 32001: n2 moved to a new address and came back there on an empty directory; a
    // member that saw its new incarnation recorded it lost, and n0 adopted that record before it
    // could name the new address (n2 was down there a while): n0 took n2 out of its ring and
    // streamed its share away, and back 0.2 s later when the address said who it was.
    const self = at('n0', 1);
    const holding = new Set(['n0', 'n1', 'n2']);
    const { membership, running, source, said, step } = membershipOf(self, 60_000, holding);
    running.set('127.0.0.2', hello('n1'));
    running.set('127.0.0.3', hello('n2'));
    await step([self, at('n1', 2), at('n2', 3)]);
    running.delete('127.0.0.3');
    source.unnamed = 1; // n2's new address, which answers nothing yet
    await step([self, at('n1', 2)]);
    holding.delete('n2'); // the record n0 adopts: n2 lost (back empty)
    await step([self, at('n1', 2)], 2);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    expect(said('member left')).toEqual([]);
    // The address says who it is: n2, moved, the same member.
    running.set('127.0.0.9', hello('n2'));
    source.unnamed = 0;
    await step([self, at('n1', 2), at('n2', 9)]);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    expect(said('member moved').map((r) => r.member)).toEqual(['n2']);
    expect(said('member left')).toEqual([]);
  });

  it('leaves once every listed address is named and none is it', async () => {
    const self = at('n0', 1);
    const holding = new Set(['n0', 'n1']);
    const { membership, running, source, said, step } = membershipOf(self, 60_000, holding);
    running.set('127.0.0.2', hello('n1'));
    running.set('127.0.0.3', hello('n2'));
    await step([self, at('n1', 2), at('n2', 3)]);
    running.clear();
    source.unnamed = 1;
    await step([self, at('n1', 2)]);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    // The unnamed address was another member (n3, a join): n2 is nowhere, and holds nothing.
    running.set('127.0.0.4', hello('n3'));
    source.unnamed = 0;
    await step([self, at('n1', 2), at('n3', 4)]);
    expect(membership.names()).toEqual(['n0', 'n1', 'n3']);
    expect(said('member left').map((r) => [r.member, r.reason])).toEqual([
      ['n2', 'not listed, and the settled ring counts no data on it'],
    ]);
  });
});

describe('a member that says it is decommissioned (probeMember)', () => {
  it('is probed at once: unlisted, it leaves at that answer; listed, as soon as it is unlisted', async () => {
    // n1 was unlisted before this node heard its last status (its probes are far apart); n2
    // tells while it is still listed. Each answer says decommissioned.
    const self = at('n0', 1);
    const { membership, running, said, step, unlistedGauge } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    running.set('127.0.0.3', hello('n2'));
    await step([self, at('n1', 2), at('n2', 3)]);
    await step([self, at('n2', 3)], 0);
    expect(await unlistedGauge()).toBe(1);
    running.set('127.0.0.2', hello('n1', 'decommissioned'));
    running.set('127.0.0.3', hello('n2', 'decommissioned'));
    let changes = 0;
    membership.on('change', () => changes++);
    expect(await membership.probeMember('n1')).toBe('decommissioned');
    expect(membership.names()).toEqual(['n0', 'n2']);
    // Its answer first (the rings record the hand-off), then it left.
    expect(changes).toBe(2);
    expect(await membership.probeMember('n2')).toBe('decommissioned');
    expect(membership.names()).toEqual(['n0', 'n2']);
    running.clear();
    await step([self], 0);
    expect(membership.names()).toEqual(['n0']);
    expect(said('member left').map((r) => [r.member, r.reason])).toEqual([
      ['n1', 'not listed, and it reported itself decommissioned'],
      ['n2', 'not listed, and it reported itself decommissioned'],
    ]);
    expect(
      said(
        'member no longer listed: still a member until it answers where it was, or stays silent for the grace',
      ).map((r) => r.member),
    ).toEqual(['n1']);
  });

  it('changes nothing but one probe when the member answers otherwise, or is no member', async () => {
    // Anyone may send the notice naming any member: only the member's own answer counts.
    const self = at('n0', 1);
    const { membership, running, said, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2), at('n2', 3)]);
    await step([self, at('n1', 2)], 0);
    let probes = 0;
    membership.on('change', () => probes++);
    expect(await membership.probeMember('n1')).toBe('active');
    expect(await membership.probeMember('n2')).toBe(null); // unlisted, answers nowhere
    expect(await membership.probeMember('n9')).toBe(null); // no member
    expect(await membership.probeMember('n0')).toBe(null); // this node
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
    expect(said('member left')).toEqual([]);
    expect(probes).toBe(0);
  });

  it('is not undone by the answer of an older probe that comes later', async () => {
    // A round's probe sent before the hand-off finished, answered after the notice's probe.
    const self = at('n0', 1);
    const { membership, running, step } = membershipOf(self, 60_000);
    running.set('127.0.0.2', hello('n1'));
    await step([self, at('n1', 2)]);
    const late = Promise.withResolvers<HelloReply>();
    running.set('127.0.0.2', late.promise);
    const round = membership.probeNow();
    running.set('127.0.0.2', hello('n1', 'decommissioned'));
    expect(await membership.probeMember('n1')).toBe('decommissioned');
    late.resolve(hello('n1'));
    await round;
    expect(membership.members().find((m) => m.name === 'n1')?.hello?.status).toBe('decommissioned');
  });
});

describe('holdsDataIn: what the settled ring counts as holding data', () => {
  // n1 and n2 recorded lost (a settled record keeps no incarnation of a lost member).
  const record = settledRing(5, ['n0', 'n1', 'n2'], { n0: 'a', n1: 'b', n2: 'c' }, ['n1', 'n2']);
  const before = settledRing(4, ['n0', 'n1', 'n2'], { n0: 'a', n1: 'b', n2: 'c' });
  const last = (status: string, settled: typeof record) => ({ status, settled });

  it('a holder; one lost that ran on knowing it (refilling); one that handed off', () => {
    expect(holdsDataIn(record, 'n0')).toBe(true);
    // Back on an empty directory, active, lost in its own ring: being refilled, whatever epoch
    // its ring had (a later record, another member's hand-off, changes nothing).
    expect(holdsDataIn(record, 'n1', last('active', record))).toBe(true);
    const older = settledRing(3, ['n0', 'n1', 'n2'], { n0: 'a', n2: 'c' }, ['n1']);
    expect(holdsDataIn(record, 'n1', last('active', older))).toBe(true);
    // Its hand-off recorded: it says so; or its last answer came before its loss or hand-off.
    expect(holdsDataIn(record, 'n2', last('decommissioned', record))).toBe(false);
    expect(holdsDataIn(record, 'n2', last('active', before))).toBe(false);
    expect(holdsDataIn(record, 'n2')).toBe(false);
    expect(holdsDataIn(record, 'n3', last('active', record))).toBe(false);
  });
});
