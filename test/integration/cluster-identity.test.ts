// Restarts that must not fool the cluster: a member back with an empty data directory, a node
// back with an older saved ring, a node back while a peer it can only name by asking is down.

import { afterEach, describe, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.ts';
import { Storage } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  NO_ANTI_ENTROPY,
  openClient,
  peersOf,
  restart,
  startMember,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const SERVICE = 'kvstore-headless.test.svc.cluster.local';
const SETTLED_KEY = 'settled-ring';
/**
 * No hints and no anti-entropy: a replica that missed a write keeps missing it, so who holds what
 * is exact.
 */
const NO_HINTS = ['--max-hints', '0', ...NO_ANTI_ENTROPY];

afterEach(cleanup);

async function dnsServer(): Promise<TestDnsServer> {
  const s = await startDnsServer();
  defer(() => s.close());
  return s;
}

function dnsArgs(server: TestDnsServer): string[] {
  return [
    ...['--discovery', `dns:${SERVICE}`, '--dns-servers', `127.0.0.1:${server.port}`],
    ...['--resolve-interval-ms', '300'],
  ];
}

/** Waits until `node` sees `name` in `state`. */
async function waitState(node: ClusterNode, name: string, state: string, timeoutMs = 10_000) {
  await expect
    .poll(
      async () => (await clusterInfo(node)).members.find((m) => m.name === name)?.state ?? null,
      { timeout: timeoutMs, interval: 50 },
    )
    .toBe(state);
}

/** Reads or replaces one state document of a stopped node's data directory. */
async function withStorage<T>(dataDir: string, use: (s: Storage) => Promise<T> | T): Promise<T> {
  const storage = Storage.open({ path: dataDir, nodeName: 'test' });
  try {
    return await use(storage);
  } finally {
    await storage.close();
  }
}

/** A key whose owners in the ring of `members` (RF 3) are exactly `owners`. */
function keyOwnedBy(members: string[], owners: string[]): string {
  const ring = new Ring(members);
  for (let i = 0; ; i++) {
    const key = `key-${i}`;
    const got = ring.owners(Buffer.from(key), 3).sort();
    if (JSON.stringify(got) === JSON.stringify([...owners].sort())) return key;
  }
}

describe("members named after Object.prototype's members", () => {
  it('form a cluster, serve, and are never taken for replaced directories', async () => {
    const block = loopbackBlock();
    const names = ['constructor', 'toString', 'valueOf'];
    const peers = names.map((n, i) => `${n}=${block}.${i + 1}:7946`).join(',');
    const nodes = await Promise.all(
      names.map((n, i) => startMember(n, `${block}.${i + 1}`, ['--peers', peers])),
    );
    await waitAllUp(nodes);
    await waitSettled(nodes, [...names].sort());
    const [a, b] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    expect(await (await openClient(a)).call('PUT k v1')).toBe('OK');
    const replaced = (n: ClusterNode) =>
      n.proc.logs.filter((l) => /new data directory/.test(String(l.msg)));
    await expect.poll(() => metric(b, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(1);
    expect(replaced(b)).toEqual([]);
    // A restart on its own data directory: the same incarnation, recorded as such.
    await b.proc.stop('SIGTERM');
    await restart(b, ['--peers', peers]);
    await waitAllUp(nodes);
    await waitSettled(nodes, [...names].sort());
    for (const n of nodes) expect(await (await openClient(n)).call('GET k')).toBe('v1');
    for (const n of nodes) {
      const info = await clusterInfo(n);
      expect(info.ring.moving).toBe(false);
      expect(info.members.map((m) => typeof m.incarnation)).toEqual(['string', 'string', 'string']);
      expect(replaced(n)).toEqual([]);
      expect(await metric(n, 'kvstore_ring_settled_changes_total{reason="replaced"}')).toBe(0);
    }
  }, 60_000);
});

describe('a member back under its name with an empty data directory (bug 1)', () => {
  it('is not counted as holding data until rebalancing filled it', async () => {
    const nodes = await startStaticCluster(3, NO_HINTS);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const peers = nodes.map((n) => `${n.name}=${n.host}:7946`).join(',');
    const ca = await openClient(a);
    expect(await ca.call('PUT k v1')).toBe('OK');
    for (const n of nodes) {
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(1);
    }
    // v2 reaches b and c only: a is down for it, and no hint is kept.
    await a.proc.stop('SIGKILL');
    const cb = await openClient(b);
    expect(await cb.call('PUT k v2')).toBe('OK');
    a.proc = (await startMember(a.name, a.host, ['--peers', peers, ...NO_HINTS], a.dataDir)).proc;
    await waitAllUp(nodes);

    // c's volume is lost: it comes back empty under its name, while b cannot answer. Only a
    // (v1) and the empty c answer a read: counting c as a replica holding data answers v1.
    await c.proc.stop('SIGKILL');
    b.proc.child.kill('SIGSTOP');
    try {
      c.proc = (await startMember(c.name, c.host, ['--peers', peers, ...NO_HINTS], tempDir())).proc;
      await waitState(a, c.name, 'up');
      // a has c's hello from the new data directory.
      const fresh = (await clusterInfo(c)).incarnation;
      await expect
        .poll(
          async () => (await clusterInfo(a)).members.find((m) => m.name === c.name)?.incarnation,
          {
            timeout: 10_000,
            interval: 50,
          },
        )
        .toBe(fresh);
      const ra = await openClient(a);
      const read = await ra.call('GET k');
      // Failed once in a full run (2026-12-05, a fresh clone under load: 'v1'); not reproduced
      // alone or under CPU load. What each node logged about its rings says why, if it recurs.
      const why = async () =>
        JSON.stringify({
          a: (await clusterInfo(a)).ring,
          logs: [a, c].map((n) => ({
            node: n.name,
            ring: n.proc.logs.filter((l) => /ring|incarnation|data directory/.test(String(l.msg))),
          })),
        });
      expect(read, read === 'v1' ? await why() : undefined).not.toBe('v1');
      expect(read).toMatch(/^ERR UNAVAILABLE/);
      // a routes by a settled ring without c (it holds no data yet) toward the ring with it.
      expect((await clusterInfo(a)).ring.moving).toBe(true);
    } finally {
      b.proc.child.kill('SIGCONT');
    }
    await waitSettled(nodes, [a.name, b.name, c.name]);
    const ra = await openClient(a);
    expect(await ra.call('GET k')).toBe('v2');
    // c was filled by the others' streams: it holds the newest value itself.
    a.proc.child.kill('SIGSTOP');
    try {
      const rc = await openClient(c);
      expect(await rc.call('GET k')).toBe('v2');
    } finally {
      a.proc.child.kill('SIGCONT');
    }
  }, 90_000);
});

describe('a member back empty among four (bug 4: its keys went to a member that never held them)', () => {
  it('keeps its place in the ring: only the other owners of its keys count as holding them', async () => {
    const nodes = await startStaticCluster(4, NO_HINTS);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const peers = peersOf(nodes);
    const names = nodes.map((n) => n.name);
    // k lives on a, b and c; d never holds it.
    const k = keyOwnedBy(names, [a.name, b.name, c.name]);
    expect(await (await openClient(a)).call(`PUT ${k} v1`)).toBe('OK');
    for (const n of [a, b, c]) {
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(1);
    }
    // v2 reaches b and c only.
    await a.proc.stop('SIGKILL');
    expect(await (await openClient(b)).call(`PUT ${k} v2`)).toBe('OK');
    await restart(a, ['--peers', peers, ...NO_HINTS]);
    await waitAllUp(nodes);

    // b (v2) stops: it cannot stream v2 to anyone. c comes back with an empty data directory;
    // a learns it.
    b.proc.child.kill('SIGSTOP');
    try {
      await c.proc.stop('SIGKILL');
      c.proc = (await startMember(c.name, c.host, ['--peers', peers, ...NO_HINTS], tempDir())).proc;
      const fresh = (await clusterInfo(c)).incarnation;
      await expect
        .poll(
          async () => (await clusterInfo(a)).members.find((m) => m.name === c.name)?.incarnation,
          { timeout: 10_000, interval: 50 },
        )
        .toBe(fresh);
      await expect
        .poll(async () => (await clusterInfo(a)).ring.moving, { timeout: 10_000, interval: 50 })
        .toBe(true);
      // a (v1) is the only other holder of k that answers: counting d (never an owner of k,
      // holding nothing) or the empty c as a holder answers v1, losing the acknowledged v2.
      const read = await (await openClient(a)).call(`GET ${k}`);
      expect(read).not.toBe('v1');
      expect(read).toMatch(/^ERR UNAVAILABLE/);
    } finally {
      b.proc.child.kill('SIGCONT');
    }
    await waitSettled(nodes, names);
    expect(await (await openClient(a)).call(`GET ${k}`)).toBe('v2');
  }, 90_000);
});

describe('a node restarted with an older saved ring (bug 2)', () => {
  it('adopts the newer settled ring its peers report and does not route by the old one', async () => {
    const dns = await dnsServer();
    const block = loopbackBlock();
    const hosts = [1, 2, 3, 4].map((i) => `${block}.${i}`);
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'];
    dns.setA(SERVICE, hosts.slice(0, 3));
    const member = (i: number, server: TestDnsServer, dataDir?: string) =>
      startMember(names[i]!, hosts[i]!, [...dnsArgs(server), ...NO_HINTS], dataDir);
    const three = await Promise.all([0, 1, 2].map((i) => member(i, dns)));
    const [a, b, c] = three as [ClusterNode, ClusterNode, ClusterNode];
    await waitAllUp(three);
    await waitSettled(three, names.slice(0, 3));
    // k: every node holds it now; in the four-node ring its owners are a, c and d.
    const k = keyOwnedBy(names, ['kvstore-0', 'kvstore-2', 'kvstore-3']);
    expect(await (await openClient(a)).call(`PUT ${k} v1`)).toBe('OK');
    for (const n of three) {
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(1);
    }
    // The three-node ring as c saved it.
    await c.proc.stop('SIGKILL');
    const older = await withStorage(c.dataDir, (s) => s.readState(SETTLED_KEY));
    expect(older).toBeTruthy();
    c.proc = (await member(2, dns, c.dataDir)).proc;
    await waitAllUp(three);

    // d joins; the four-node ring settles and b drops k, which it no longer owns.
    const d = await member(3, dns);
    dns.setA(SERVICE, hosts);
    const four = [a, b, c, d];
    await waitSettled(four, names);
    await expect.poll(() => metric(b, 'kvstore_storage_keys'), { timeout: 15_000 }).toBe(0);
    const settled = (await clusterInfo(a)).ring.settled;

    // c dies as if just before it saved the four-node ring; v2 is written without it.
    await c.proc.stop('SIGKILL');
    expect(await (await openClient(a)).call(`PUT ${k} v2`)).toBe('OK');
    await withStorage(c.dataDir, (s) => s.writeState(SETTLED_KEY, older));
    // c's view of DNS still lists three members (a stale cache): its target is the old ring.
    const stale = await dnsServer();
    stale.setA(SERVICE, hosts.slice(0, 3));
    c.proc = (await member(2, stale, c.dataDir)).proc;

    // With a silent, c routing by the old ring would count b's empty answer and its own v1.
    a.proc.child.kill('SIGSTOP');
    try {
      const read = await (await openClient(c)).call(`GET ${k}`);
      expect(read).not.toBe('v1');
    } finally {
      a.proc.child.kill('SIGCONT');
    }
    expect((await clusterInfo(c)).ring.settled).toBe(settled);
    const rc = await openClient(c);
    await expect.poll(() => rc.call(`GET ${k}`), { timeout: 10_000 }).toBe('v2');
    stale.setA(SERVICE, hosts);
    await waitSettled(four, names);
    expect((await clusterInfo(c)).ring.settled).toBe(settled);
  }, 120_000);
});

describe('a node restarted while a peer it names by asking is down (bug 3)', () => {
  it('still names that peer from the addresses it saved, and keeps it in the ring', async () => {
    const dns = await dnsServer();
    const block = loopbackBlock();
    const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2'];
    dns.setA(SERVICE, hosts); // A records only: no PTR, no SRV; each address is asked its name
    const nodes = await Promise.all(
      [0, 1, 2].map((i) => startMember(names[i]!, hosts[i]!, dnsArgs(dns))),
    );
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await waitAllUp(nodes);
    await waitSettled(nodes, names);
    const ring = (await clusterInfo(a)).ring;

    await b.proc.stop('SIGKILL');
    await c.proc.stop('SIGKILL');
    c.proc = (await startMember(c.name, c.host, dnsArgs(dns), c.dataDir)).proc;
    // c has resolved the service and probed what it found; b's address does not answer.
    await waitState(c, a.name, 'up');
    const info = await clusterInfo(c);
    expect(info.members.map((m) => m.name)).toEqual(names);
    expect(info.members.find((m) => m.name === b.name)?.state).not.toBe('up');
    expect(info.ring).toEqual(ring);
  }, 60_000);
});

describe('two processes under one name', () => {
  it('the one not at the address listed for the name refuses to start, or refuses commands once the listed one answers', async () => {
    const grace = ['--tombstone-grace-ms', '3000', '--gc-interval-ms', '500'];
    const nodes = await startStaticCluster(3, grace);
    const [a, , named] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const elsewhere = `${named.host.split('.').slice(0, 3).join('.')}.9`;
    const args = ['--peers', peersOf(nodes), ...grace];
    // Before: it started and served. Nobody else ever asked it anything, so tombstone collection
    // did not wait for it: a value written through it, removed through the others, came back
    // once the tombstone was collected (its read repaired the others with it).
    await expect(startMember(named.name, elsewhere, args)).rejects.toThrow(
      /exited \(2\) before listening: kvstore: config: membership: another node named 'kvstore-2' answers at .* give every node its own --node-name/,
    );

    // Started while the listed one was down, it serves until that one answers again.
    await named.proc.stop();
    const twin = await startMember(named.name, elsewhere, args);
    const viaTwin = await openClient(twin);
    expect(await viaTwin.call('PUT k v')).toBe('OK');
    await restart(named, args);
    await expect
      .poll(() => viaTwin.call('GET k'), { timeout: 10_000, interval: 100 })
      .toMatch(/^ERR UNAVAILABLE membership: another node named 'kvstore-2' answers at /);
    expect(await viaTwin.call('PUT k w')).toMatch(/^ERR UNAVAILABLE membership: /);
    // Not ready, saying why (before: 200 'ready' while it refused every command), and the listed
    // one is.
    const readyz = async (n: ClusterNode) => {
      const res = await fetch(`http://${n.host}:${n.proc.httpPort}/readyz`);
      return { status: res.status, body: await res.text() };
    };
    expect(await readyz(twin)).toEqual({
      status: 503,
      body: expect.stringMatching(/^not ready: membership: another node named 'kvstore-2' answers/),
    });
    expect(await readyz(named)).toEqual({ status: 200, body: 'ready\n' });
    // The log line is written before the first refusal, but it reaches this process through
    // another pipe than the reply, which may be read first.
    await expect
      .poll(() => twin.proc.logs.map((l) => l.msg), { timeout: 20_000, interval: 50 })
      .toContain('another node answers under this name: refusing commands and moving no data');
    expect(await (await openClient(a)).call('REMOVE k')).toBe('OK');
    await expect
      .poll(() => metric(a, 'kvstore_tombstones_collected_total'), { timeout: 15_000 })
      .toBeGreaterThan(0);
    expect(await viaTwin.call('GET k')).toMatch(/^ERR UNAVAILABLE /);
    for (const n of nodes) expect(await (await openClient(n)).call('GET k')).toBe('NOT_FOUND');
  }, 120_000);

  it('the one not at the listed address moves no data once the listed one answers: its hints stay', async () => {
    const fast = ['--hint-interval-ms', '200', ...NO_ANTI_ENTROPY];
    const nodes = await startStaticCluster(3, fast);
    const [a, b, named] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const elsewhere = `${named.host.split('.').slice(0, 3).join('.')}.9`;
    const args = ['--peers', peersOf(nodes), ...fast];
    await named.proc.stop();
    const twin = await startMember(named.name, elsewhere, args);
    await waitState(twin, a.name, 'up');
    await waitState(twin, b.name, 'up');
    await b.proc.stop();
    // Written through the twin while b is down: a hint for b, kept whatever the reply. (The twin,
    // a data directory under kvstore-2's name that no stream filled, routes by rings of its own,
    // and the write misses its quorum.)
    const viaTwin = await openClient(twin);
    expect(await viaTwin.call('PUT k v')).toMatch(
      /^ERR UNAVAILABLE replication: write quorum 1\/2 /,
    );
    await expect.poll(() => metric(twin, 'kvstore_hints_stored'), { timeout: 10_000 }).toBe(1);
    await restart(named, args);
    await expect
      .poll(() => viaTwin.call('GET k'), { timeout: 10_000, interval: 100 })
      .toMatch(/^ERR UNAVAILABLE membership: another node named 'kvstore-2' answers at /);
    // b back: before, the twin delivered its hint to b within a hint interval.
    const delivered = await metric(twin, 'kvstore_hints_delivered_total');
    await restart(b, args);
    await waitState(twin, b.name, 'up');
    await new Promise((r) => setTimeout(r, 2000)); // ten hint intervals
    expect(await metric(twin, 'kvstore_hints_delivered_total')).toBe(delivered);
    expect(await metric(twin, 'kvstore_hints_stored')).toBe(1);
    // (a, routing by other rings than the twin's, passed the write on as its own coordinator and
    // kept and delivered its own hint for b: the cluster's copy, not the twin's.)
    expect(await (await openClient(a)).call('GET k')).toBe('v');
  }, 120_000);
});
