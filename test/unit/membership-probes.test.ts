// The failure detector's pacing: a member whose probe is out holds back no other member's probes.
// Its count of interruptions: a member called down, or answering from a new process.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  type MemberAddress,
  Membership,
  MembershipCheck,
  readHello,
  staticSource,
} from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { until } from '../helpers/write-log.ts';

const member = (name: string, i: number): MemberAddress => ({
  name,
  host: `127.0.0.${i}`,
  peerPort: 7946,
});

const self = member('n0', 1);

/** n0's Membership of `others` (static), probing with `probe`; stopped when the test ends. */
function membershipOf(
  others: readonly MemberAddress[],
  probe: (m: MemberAddress) => Promise<HelloReply>,
  probeFailures: number,
  probeIntervalMs = 60_000,
): Membership {
  const membership = new Membership({
    self,
    source: staticSource([self, ...others]),
    probe,
    selfHello: () => ({ name: 'n0' }) as HelloReply,
    resolveIntervalMs: 60_000,
    // The tests probe themselves (probeNow), unless they start() it with a shorter interval.
    probeIntervalMs,
    probeFailures,
    logger: createLogger('silent', {}),
    registry: new Registry(),
  });
  defer(() => membership.stop());
  return membership;
}

describe('Membership probes', () => {
  it('calls a member that fails down while another one has not answered its probe yet', async () => {
    const hung = Promise.withResolvers<HelloReply>();
    defer(() => hung.reject(new Error('test over')));
    let crashedProbes = 0;
    const membership = membershipOf(
      [member('n1-hung', 2), member('n2-crashed', 3)],
      // n1 does not answer (paused: each probe would wait out the peer timeout); n2 refuses.
      (m) => {
        if (m.name === 'n1-hung') return hung.promise;
        crashedProbes++;
        return Promise.reject(new Error('connect ECONNREFUSED'));
      },
      3,
    );
    await membership.resolveNow();
    // As start() does after its first probes: probes every interval from then on.
    void membership.probeNow();
    const timer = setInterval(() => void membership.probeNow(), 10);
    defer(() => clearInterval(timer));
    // Before, every round waited for n1's probe: n2 was probed once and never called down.
    await until(
      () => !membership.isUp('n2-crashed'),
      5000,
      () => `n2 down (still up after ${crashedProbes} probes while n1's was out)`,
    );
    expect(crashedProbes).toBeGreaterThanOrEqual(3);
    expect(membership.members().find((m) => m.name === 'n1-hung')!.state).toBe('unknown');
  });

  it('counts a member called down, and one answering from a new process, as interruptions', async () => {
    // What n1 does at its next probe: answer as the process started at `started`, or refuse.
    let n1: { started?: number } | 'refuse' = { started: 1000 };
    const membership = membershipOf(
      [member('n1', 2)],
      (m) =>
        n1 === 'refuse'
          ? Promise.reject(new Error('connect ECONNREFUSED'))
          : // Through readHello, as a real probe: a field it drops never reaches the count.
            Promise.resolve(
              readHello({ name: m.name, status: 'active', ringId: '', rebalanced: null, ...n1 }),
            ),
      2,
    );
    await membership.resolveNow();
    const probe = () => membership.probeNow();
    await probe();
    await probe();
    expect(membership.isUp('n1')).toBe(true);
    expect(membership.interruptions()).toBe(0);
    // Restarted between two probes: never called down, but a new process answers.
    n1 = { started: 2000 };
    await probe();
    expect(membership.isUp('n1')).toBe(true);
    expect(membership.interruptions()).toBe(1);
    // One failed probe is not down yet; the second is.
    n1 = 'refuse';
    await probe();
    expect(membership.interruptions()).toBe(1);
    await probe();
    expect(membership.isUp('n1')).toBe(false);
    expect(membership.interruptions()).toBe(2);
    // Back from the same process (a pause): up again, the down already counted.
    n1 = { started: 2000 };
    await probe();
    expect(membership.isUp('n1')).toBe(true);
    expect(membership.interruptions()).toBe(2);
    // A malformed value is dropped; a member of an older version says nothing of its process:
    // nothing to count.
    n1 = { started: 'soon' } as unknown as { started: number };
    await probe();
    expect(membership.interruptions()).toBe(2);
    n1 = {};
    await probe();
    n1 = { started: 3000 };
    await probe();
    expect(membership.interruptions()).toBe(2);
  });

  it('counts the time its event loop did not run (pausedMs)', async () => {
    const membership = membershipOf([], () => Promise.reject(new Error('no members')), 3, 50);
    await membership.start();
    const probed = () => new Promise<void>((resolve) => membership.once('probed', () => resolve()));
    await probed();
    const before = membership.pausedMs();
    // The event loop blocked for 600 ms, as a SIGSTOP stops it: the next tick comes that late.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    // Two rounds: one may have started before the block.
    await probed();
    await probed();
    expect(membership.pausedMs() - before).toBeGreaterThanOrEqual(600 - 50);
  });
});

describe('Membership pausedMs, read right after a pause', () => {
  it('counts a pause the probe tick has not run since, so a hello read right after it is no lasting difference', async () => {
    // n1 lists a name n0 does not (x). A round's probe is out when the process stops for 1.5 s
    // (a SIGSTOP, or a callback blocking the event loop); n1's answer waited meanwhile and is
    // taken at once after, before the late probe tick runs (a timer due earlier; with a socket,
    // the poll that follows a pause in a timer callback reads it first). Before, that round's
    // check counted the pause as running time: the difference had "lasted" 1.6 s, over the 1 s
    // bound, on one hello read 0.2 s of running time after it began.
    const hello = { name: 'n1', listed: ['n0', 'n1', 'x'] } as Partial<HelloReply> as HelloReply;
    let rounds = 0;
    let cutOff = false;
    const log = captureLog('error');
    const membership = membershipOf(
      [member('n1', 2)],
      () => {
        if (cutOff) return Promise.reject(new Error('connect ETIMEDOUT'));
        // The third round: the process stops right after the probe was sent.
        if (++rounds === 3) {
          setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500), 1);
        }
        return new Promise((resolve) => setTimeout(() => resolve(hello), 5));
      },
      3,
      100,
    );
    const lists = new MembershipCheck({
      members: () => membership.members(),
      names: () => membership.names(),
      paused: () => membership.pausedMs(),
      boundMs: 1000,
      logger: log.logger,
      registry: new Registry(),
    });
    const reported: string[][] = [];
    membership.on('probed', () => {
      lists.update();
      reported.push(Object.keys(lists.differing()));
      // n1 is cut off after the round that was out during the pause: no hello shows it again.
      if (rounds >= 3) cutOff = true;
    });
    await membership.start();
    await until(() => reported.length >= 6, 10_000, 'six probe rounds');
    expect(rounds).toBe(3);
    expect(reported.flat()).toEqual([]);
    expect(log.records().filter((r) => String(r.msg).startsWith('member lists differ'))).toEqual(
      [],
    );
  });
});
