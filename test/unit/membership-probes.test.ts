// The failure detector's pacing: a member whose probe is out holds back no other member's probes.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type MemberAddress, Membership, staticSource } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { defer } from '../helpers/defer.ts';
import { until } from '../helpers/write-log.ts';

const member = (name: string, i: number): MemberAddress => ({
  name,
  host: `127.0.0.${i}`,
  peerPort: 7946,
});

describe('Membership probes', () => {
  it('calls a member that fails down while another one has not answered its probe yet', async () => {
    const hung = Promise.withResolvers<HelloReply>();
    defer(() => hung.reject(new Error('test over')));
    let crashedProbes = 0;
    const self = member('n0', 1);
    const membership = new Membership({
      self,
      source: staticSource([self, member('n1-hung', 2), member('n2-crashed', 3)]),
      // n1 does not answer (paused: each probe would wait out the peer timeout); n2 refuses.
      probe: (m) => {
        if (m.name === 'n1-hung') return hung.promise;
        crashedProbes++;
        return Promise.reject(new Error('connect ECONNREFUSED'));
      },
      selfHello: () => ({ name: 'n0' }) as HelloReply,
      resolveIntervalMs: 60_000,
      probeIntervalMs: 10,
      probeFailures: 3,
      logger: createLogger('silent', {}),
      registry: new Registry(),
    });
    defer(() => membership.stop());
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
});
