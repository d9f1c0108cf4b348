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
  peersOf,
  restart,
  startMember,
  waitFormed,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, logged, tempDir } from '../helpers/node-process.ts';
import { setClockSkew, skewedClockFile } from '../helpers/skewed-clock.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

/**
 * Probes 3 s apart (the default is 1 s): the step lands between two of them, and the writes
 * below come before the next one, so only the step itself can make the node refuse them.
 */
const SLOW_PROBES = ['--probe-interval-ms', '3000'];

/**
 * Three members listing each other; the third (`odd`) runs on the clock in `clockFile`, or, given
 * three files, each member on its own.
 */
async function startCluster(
  clockFile: string | readonly string[],
  extra: string[] = [],
): Promise<ClusterNode[]> {
  const files = typeof clockFile === 'string' ? [undefined, undefined, clockFile] : clockFile;
  const block = loopbackBlock();
  const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
  const peers = hosts.map((h, i) => `kvstore-${i}=${h}:7946`).join(',');
  const nodes = await Promise.all(
    hosts.map((h, i) =>
      startMember(
        `kvstore-${i}`,
        h,
        ['--peers', peers, ...SLOW_PROBES, ...extra],
        tempDir(),
        files[i] === undefined ? undefined : skewedClockFile(files[i]),
      ),
    ),
  );
  // Formed, not just up: a write needs the odd one's acknowledgement while it holds the settled
  // ring alone (waitFormed), and the odd one refuses it once stepped.
  await waitFormed(nodes, 30_000);
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

/** GET /readyz of `node`: its status and body. */
async function readyz(node: ClusterNode): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${node.host}:${node.proc.httpPort}/readyz`);
  return { status: res.status, body: await res.text() };
}

/** Polls until no node holds hints, for at most 20 s. */
async function untilNoHints(nodes: readonly ClusterNode[]): Promise<void> {
  await until(
    async () => {
      for (const n of nodes) if ((await clusterInfo(n)).hints > 0) return false;
      return true;
    },
    20_000,
    'no node holds hints',
    100,
  );
}

/** Once no node holds hints, every node answers `GET k` with `value`. */
async function expectEveryNodeReads(nodes: readonly ClusterNode[], value: string): Promise<void> {
  await untilNoHints(nodes);
  for (const n of nodes) {
    const c = await openClient(n);
    expect(await c.call('GET k')).toBe(value);
  }
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
      // Reads are served: GETEX without an option (RESP) makes no version, so the refusal of
      // writes never answers it. Stepped back, a peer's copy of 'first' may be further ahead of
      // this clock than --max-clock-offset-ms: the read then refuses that version, as any read
      // there would (peer versions beyond the offset are never adopted): UNAVAILABLE, each peer's
      // answer refused for clock_offset (on a quiet machine, always: 'first' is under 1.5 s old).
      const resp = await openClient(odd);
      resp.send('*2\r\n$5\r\nGETEX\r\n$1\r\nk\r\n');
      const [head] = await resp.lines(1);
      if (head === '$5\r') expect(await resp.lines(1)).toEqual(['first\r']);
      else {
        expect(step).toBeLessThan(0);
        expect(head).toMatch(/^-ERR UNAVAILABLE replication: read quorum .*: clock_offset/);
      }
      expect(await metric(odd, 'kvstore_clock_out_of_sync')).toBe(1);
      // Not ready while it refuses writes its peers take (before: 200 'ready' throughout): for
      // the step, or, once probes sent after it answered, for the offset they measured.
      expect(await readyz(odd)).toEqual({
        status: 503,
        body: expect.stringMatching(
          /^not ready: clock: this node's (wall clock was stepped|clock is more than 500 ms)/,
        ),
      });
      // Waited for: the line comes on stdout, which may reach the test after the replies above.
      await logged(odd.proc, 'wall clock stepped: refusing writes until peers agree with it');
      expect(await ca.call('PUT k third')).toBe('OK');

      // The clock back in step, nothing of the refused writes is left anywhere to spread: once the
      // hints are delivered and the next probes agree, every node reads 'third'.
      setClockSkew(clockFile, 0);
      await untilClockOff(odd, 0);
      await untilNoHints(nodes);
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
      expect(await readyz(odd)).toEqual({ status: 200, body: 'ready\n' });
      for (const c of [ca, cb, codd]) expect(await c.call('GET k')).toBe('third');
    },
  );
});

/**
 * Waits until `node` heard each of `members` say it refuses writes for its clock, and then probed
 * them again: the round that brought those hellos (and their clocks) has ended, and `node`
 * checked its clock against them.
 */
async function untilProbedSinceRefusing(
  node: ClusterNode,
  members: readonly ClusterNode[],
): Promise<void> {
  /** Each member's last contact when first seen refusing, then true once heard from since. */
  const seen = new Map<string, string | true>();
  await until(
    async () => {
      for (const m of (await clusterInfo(node)).members) {
        if (!members.some((x) => x.name === m.name) || !m.clockRefusing || !m.lastContact) continue;
        const first = seen.get(m.name);
        if (first === undefined) seen.set(m.name, m.lastContact);
        else if (first !== true && m.lastContact > first) seen.set(m.name, true);
      }
      return members.every((m) => seen.get(m.name) === true);
    },
    30_000,
    `${node.name} probed ${members.map((m) => m.name).join(', ')} since they refuse writes`,
    100,
  );
}

describe('members whose clocks are each stepped apart from the others', {
  timeout: 120_000,
}, () => {
  it('refuse writes and stay ready, degraded, serving reads, until their clocks agree again', async () => {
    const files = [0, 1, 2].map(() => join(tempDir(), 'clock-skew'));
    for (const f of files) setClockSkew(f, 0);
    const nodes = await startCluster(files);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ca = await openClient(a);
    expect(await ca.call('PUT k first')).toBe('OK');
    await untilNoHints(nodes);

    // b 1 s ahead, c 3 s back: each refuses writes for its own step and says so, so a, whose
    // clock never moved, takes no word of theirs against it and goes on taking writes (b takes
    // its copies: they are behind b's clock). Before (chaos seeds 33006, 33016), a refused
    // writes too once a probe measured either alone, its only witness off.
    setClockSkew(files[1]!, 1000);
    setClockSkew(files[2]!, -3000);
    await untilClockOff(b, 1000);
    await untilClockOff(c, -3000);
    await untilProbedSinceRefusing(a, [b, c]);
    expect(await ca.call('PUT k second')).toBe('OK');
    expect((await readyz(b)).status).toBe(503);
    expect((await readyz(c)).status).toBe(503);
    expect(await readyz(a)).toEqual({ status: 200, body: 'ready\n' });
    expect(await metric(a, 'kvstore_clock_out_of_sync')).toBe(0);

    // a 2.5 s ahead too: each clock is off from both others, so each refuses writes.
    setClockSkew(files[0]!, 2500);
    await untilClockOff(a, 2500);
    // Once their hellos say so, none is a better place for clients than another: all stay in
    // rotation. Before: each was not ready (503) while the others were up, and a Service had no
    // endpoint left, so even reads went unserved.
    await until(
      async () => {
        for (const n of nodes) if ((await readyz(n)).status !== 200) return false;
        return true;
      },
      30_000,
      'every member ready while every clock is off from every other',
      100,
    );
    for (const n of nodes) {
      expect(await readyz(n)).toEqual({
        status: 200,
        body: expect.stringMatching(
          /^degraded: clock: this node's (clock is more than 500 ms|wall clock was stepped) /,
        ),
      });
      const cn = await openClient(n);
      expect(await cn.call('PUT k third')).toMatch(/^ERR CLOCK_OFFSET /);
      expect(await cn.call('GET k')).toBe('second');
    }

    // a and b agree again (each stepped, each the other's proof): c alone is off, and out of
    // rotation while they take its clients.
    setClockSkew(files[0]!, 0);
    setClockSkew(files[1]!, 0);
    await untilClockOff(a, 0);
    await untilClockOff(b, 0);
    await until(
      async () => (await readyz(c)).status === 503,
      30_000,
      'c not ready once a and b agree',
      100,
    );
    expect((await readyz(c)).body).toMatch(/^not ready: clock: /);
    for (const n of [a, b]) {
      await until(async () => (await readyz(n)).body === 'ready\n', 30_000, `${n.name} ready`, 100);
    }
    await until(
      async () => (await ca.call('PUT k fourth')) === 'OK',
      30_000,
      'a takes writes',
      100,
    );
  });
});

describe('a member started with its clock off, its peers not answering yet', {
  timeout: 120_000,
}, () => {
  it('makes no version until probes sent since its start compared its clock with theirs', async () => {
    const clockFile = join(tempDir(), 'clock-skew');
    setClockSkew(clockFile, 0);
    const nodes = await startCluster(clockFile);
    const [a, b, odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ca = await openClient(a);
    expect(await ca.call('PUT k first')).toBe('OK');

    // The odd member's host comes back with its clock 5 s ahead (a VM resumed, an RTC off), and
    // its peers do not answer its first probes (paused: a loaded host, a slow network).
    await odd.proc.stop('SIGKILL');
    setClockSkew(clockFile, 5000);
    for (const n of [a, b]) n.proc.child.kill('SIGSTOP');
    defer(() => {
      for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    });
    await restart(odd, ['--peers', peersOf(nodes), ...SLOW_PROBES], skewedClockFile(clockFile));
    const codd = await openClient(odd);
    // Before: no probe had answered, so nothing refused; the write failed (no quorum) but was kept
    // on the odd member and as hints, 5 s ahead: once the others' clocks passed it, it won over
    // 'third', acknowledged after it, on every node.
    expect(await codd.call('PUT k second')).toMatch(
      /^ERR CLOCK_OFFSET clock: no peer has answered /,
    );
    for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    expect(await ca.call('PUT k third')).toBe('OK');

    // The odd member takes writes once its clock is back in step and probes agree.
    setClockSkew(clockFile, 0);
    await until(
      async () => {
        const reply = await codd.call('PUT other x');
        if (reply !== 'OK') expect(reply).toMatch(/^ERR (CLOCK_OFFSET|UNAVAILABLE) /);
        return reply === 'OK';
      },
      30_000,
      'the odd member takes writes again',
      100,
    );
    // Once no hints are left, any copy of 'second' sent as one was taken, which the others do
    // only once their clocks are within --max-clock-offset-ms of its version: it would win now.
    await expectEveryNodeReads(nodes, 'third');
  });
});

describe('a REMOVE whose read is out when the clock is stepped ahead', { timeout: 120_000 }, () => {
  it('makes no version under the stepped clock, and nothing after the step back is ahead', async () => {
    const clockFile = join(tempDir(), 'clock-skew');
    setClockSkew(clockFile, 0);
    // Peer requests wait up to 8 s, so the REMOVE's read is still out when the clock steps.
    const nodes = await startCluster(clockFile, ['--peer-timeout-ms', '8000']);
    const [a, b, odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ca = await openClient(a);
    const codd = await openClient(odd);
    expect(await ca.call('PUT k first')).toBe('OK');

    // The REMOVE arrives with the clock in step; its read asks the other two, paused.
    for (const n of [a, b]) n.proc.child.kill('SIGSTOP');
    defer(() => {
      for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    });
    const reads = 'kvstore_peer_requests_sent_total{method="get"}';
    const before = (await metric(odd, reads)) || 0;
    codd.send('REMOVE k\r\n');
    await until(async () => (await metric(odd, reads)) >= before + 2, 10_000, 'the read out');
    setClockSkew(clockFile, 8000);
    await untilClockOff(odd, 8000);
    for (const n of [a, b]) n.proc.child.kill('SIGCONT'); // the read comes back
    // Before: its tombstone took a version under the stepped clock, 8 s ahead: the others refused
    // it, the write failed (ERR UNAVAILABLE) and odd kept it, and its clock stayed 8 s ahead.
    const [removed] = await codd.lines(1, 30_000);
    expect(removed).toMatch(/^ERR CLOCK_OFFSET clock: this node's wall clock was stepped ahead/);

    // Back in step, odd takes writes again once probes sent after the step agree.
    setClockSkew(clockFile, 0);
    await untilClockOff(odd, 0);
    let second = '';
    await until(
      async () => {
        second = await codd.call('PUT k second');
        return !second.startsWith('ERR CLOCK_OFFSET ');
      },
      30_000,
      'odd no longer refusing writes',
      100,
    );
    expect(await ca.call('PUT k third')).toBe('OK');
    // Before: 'second' was versioned from odd's clock, still seconds ahead of the wall clock:
    // the others refused it (ERR UNAVAILABLE), odd kept it, and once their clocks came within
    // the bound of it, it won over 'third', acknowledged after it, on every node.
    await expectEveryNodeReads(nodes, 'third');
    expect(second).toBe('OK');
  });
});
