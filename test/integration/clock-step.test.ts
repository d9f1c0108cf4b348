// A member whose wall clock is stepped (NTP, a resumed VM) between two probes refuses writes at once.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  openClient,
  peerClientOf,
  startMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { setClockSkew, skewedClockFile } from '../helpers/skewed-clock.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

/**
 * Probes 3 s apart (the default is 1 s): the step lands between two of them, and the writes
 * below come before the next one, so only the step itself can make the node refuse them.
 */
const SLOW_PROBES = ['--probe-interval-ms', '3000'];

/** Three members listing each other; the third (`odd`) runs on the clock in `clockFile`. */
async function startCluster(clockFile: string): Promise<ClusterNode[]> {
  const block = loopbackBlock();
  const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
  const peers = hosts.map((h, i) => `kvstore-${i}=${h}:7946`).join(',');
  const nodes = await Promise.all(
    hosts.map((h, i) =>
      startMember(
        `kvstore-${i}`,
        h,
        ['--peers', peers, ...SLOW_PROBES],
        tempDir(),
        i === 2 ? skewedClockFile(clockFile) : undefined,
      ),
    ),
  );
  await waitAllUp(nodes, 30_000);
  // Formed, not just up: a node that founded a ring of itself first may hold the settled ring
  // alone for a while, and a write then needs its acknowledgement (the odd one's, refused).
  await waitSettled(nodes, ['kvstore-0', 'kvstore-1', 'kvstore-2']);
  return nodes;
}

/** The node's wall clock minus this process's, as its peer `hello` reports it (ms). */
async function clockOffset(node: ClusterNode): Promise<number> {
  const sent = Date.now();
  const reply = await peerClientOf(node).request<{ clock: number }>('hello', {});
  return reply.clock - (sent + Date.now()) / 2;
}

/** Polls until `node`'s clock is `ms` off (within 250 ms), for at most 10 s. */
async function untilClockOff(node: ClusterNode, ms: number): Promise<void> {
  await until(
    async () => Math.abs((await clockOffset(node)) - ms) <= 250,
    10_000,
    `${node.name}'s clock ${ms} ms off`,
  );
}

describe('a member whose wall clock is stepped between two probes', { timeout: 120_000 }, () => {
  it.each([
    ['ahead', 3000],
    // Less than --peer-timeout-ms + --max-clock-offset-ms back: further back, the others refuse its
    // writes as sent past their deadline (and a version that low loses to everything).
    ['back', -2000],
  ])(
    'refuses writes from the step on when stepped %s, and again takes them once probes agree',
    async (_, step) => {
      const clockFile = join(tempDir(), 'clock-skew');
      setClockSkew(clockFile, 0);
      const nodes = await startCluster(clockFile);
      const [a, b, odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
      const ca = await openClient(a);
      const cb = await openClient(b);
      const codd = await openClient(odd);
      expect(await ca.call('PUT k first')).toBe('OK');

      setClockSkew(clockFile, step);
      await untilClockOff(odd, step);
      // Before: stepped ahead, the others refused its version and it answered ERR UNAVAILABLE, but
      // kept 'second' on itself and as hints, 3 s ahead: delivered once the others' clocks passed
      // it, it won over 'third', acknowledged after it. Stepped back, it answered OK under a
      // clock 2 s behind the others' (a version below writes they had made before it), until the
      // next probes.
      expect(await codd.call('PUT k second')).toMatch(
        /^ERR CLOCK_OFFSET clock: this node's wall clock was stepped /,
      );
      expect(await codd.call('REMOVE k')).toMatch(/^ERR CLOCK_OFFSET /);
      expect(await metric(odd, 'kvstore_clock_out_of_sync')).toBe(1);
      expect(
        odd.proc.logs.some(
          (l) => l.msg === 'wall clock stepped: refusing writes until peers agree with it',
        ),
      ).toBe(true);
      expect(await ca.call('PUT k third')).toBe('OK');

      // The clock back in step, nothing of the refused writes is left anywhere to spread: once the
      // hints are delivered and the next probes agree, every node reads 'third'.
      setClockSkew(clockFile, 0);
      await untilClockOff(odd, 0);
      await until(
        async () => {
          for (const n of nodes) if ((await clusterInfo(n)).hints > 0) return false;
          return true;
        },
        20_000,
        'no node holds hints',
        100,
      );
      await until(
        async () => {
          const reply = await codd.call('PUT other x');
          if (reply !== 'OK') expect(reply).toMatch(/^ERR CLOCK_OFFSET /);
          return reply === 'OK';
        },
        20_000,
        'the stepped node takes writes again',
        100,
      );
      expect(await metric(odd, 'kvstore_clock_out_of_sync')).toBe(0);
      for (const c of [ca, cb, codd]) expect(await c.call('GET k')).toBe('third');
    },
  );
});
