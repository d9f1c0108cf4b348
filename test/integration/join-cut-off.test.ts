// A new member that cannot reach any listed peer when it starts: real node processes and a real
// DNS server that names every address (PTR records, as a Kubernetes headless Service does).

import { afterEach, describe, expect, it } from 'vitest';
import type { PeerClient } from '../../src/peer/index.ts';
import type { GetReply } from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import { decodeRecord } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  dnsDiscoveryArgs,
  loopbackBlock,
  NO_ANTI_ENTROPY,
  openClient,
  peerClientOf,
  restart,
  startDnsMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { dnsTrioWithKeys, servedFirst } from '../helpers/founding.ts';
import { cleanup } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

const SERVICE = 'kvstore-headless.join.svc.cluster.local';
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

/** Whether the member behind `peer` itself stores a live record of `key` (with `value`, when given). */
async function holds(peer: PeerClient, key: string, value?: string): Promise<boolean> {
  const { r } = await peer.request<GetReply>('get', { k: Buffer.from(key) });
  if (r === null) return false;
  const record = decodeRecord(Buffer.from(r));
  return !record.tombstone && (value === undefined || record.value.toString() === value);
}

describe('a new member whose peers do not answer when it starts', () => {
  it('does not make itself a holder of data it never received: the data moves to it', async () => {
    dns = await startDnsServer();
    const block = loopbackBlock();
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'];
    const hosts = names.map((_, i) => `${block}.${i + 1}`);
    for (let i = 0; i < 4; i++) dns.setPtr(hosts[i]!, `${names[i]}.${SERVICE}`);
    dns.setA(SERVICE, hosts.slice(0, 3));
    // Streams slow enough (256 records at a time, about 5 s for the keys below) that no
    // rebalance is through before the members have heard from the new one.
    const slow = ['--rebalance-rate-bytes', '2000'];
    const first = await Promise.all(
      [0, 1, 2].map((i) => startDnsMember(dns!.port, SERVICE, names[i]!, hosts[i]!, slow)),
    );
    await waitAllUp(first);
    await waitSettled(first, names.slice(0, 3));
    const c = await openClient(first[0]!);
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    for (const k of keys) expect(await c.call(`PUT ${k} v`)).toBe('OK');

    // The new member starts while every other one is stopped: its first probes time out.
    for (const n of first) n.proc.child.kill('SIGSTOP');
    dns.setA(SERVICE, hosts);
    let d: ClusterNode;
    try {
      // It serves once its first probes have timed out (2 s) and it has made its rings.
      d = await startDnsMember(dns.port, SERVICE, names[3]!, hosts[3]!);
    } finally {
      for (const n of first) n.proc.child.kill('SIGCONT');
    }
    const all = [...first, d];
    await waitAllUp(all);
    await waitSettled(all, names, 60_000);

    // Every owner of every key holds it: the new member got its share by rebalancing. Counted
    // as a holder without it, it would hold nothing, the others would drop their copies of its
    // keys, and each of those keys would be left on two replicas of three.
    const ring = new Ring(names);
    const peers = all.map(peerClientOf);
    const missing: string[] = [];
    for (const k of keys) {
      for (const o of ring.owners(Buffer.from(k), 3)) {
        if (!(await holds(peers[names.indexOf(o)]!, k))) missing.push(`${k} on ${o}`);
      }
    }
    expect(missing.length, missing.slice(0, 5).join(', ')).toBe(0);
    expect((await clusterInfo(d)).ring.moving).toBe(false);
  }, 90_000);

  it('a one-member cluster that holds data keeps its ring against a newcomer that heard nobody', async () => {
    // Both rings have one member at the start; the newcomer's name is the greater, which decided
    // the tie: the old member adopted the newcomer's ring and counted it as the holder of
    // everything, and no stream copied anything to it.
    dns = await startDnsServer();
    const block = loopbackBlock();
    const names = ['kvstore-0', 'kvstore-1'];
    const hosts = names.map((_, i) => `${block}.${i + 1}`);
    for (let i = 0; i < 2; i++) dns.setPtr(hosts[i]!, `${names[i]}.${SERVICE}`);
    dns.setA(SERVICE, hosts.slice(0, 1));
    // Streams slow enough that the old member has heard the newcomer's ring before its stream
    // to it is through (the first 256 records go at once, the other 244 in about 6 s; with the
    // tie lost, those 244 never reach the newcomer).
    const slow = ['--rebalance-rate-bytes', '2000'];
    const a = await startDnsMember(dns.port, SERVICE, names[0]!, hosts[0]!, slow);
    await waitSettled([a], names.slice(0, 1));
    const c = await openClient(a);
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    for (const k of keys) expect(await c.call(`PUT ${k} v`)).toBe('OK');

    a.proc.child.kill('SIGSTOP');
    dns.setA(SERVICE, hosts);
    let b: ClusterNode;
    try {
      b = await startDnsMember(dns.port, SERVICE, names[1]!, hosts[1]!, slow);
    } finally {
      a.proc.child.kill('SIGCONT');
    }
    await waitAllUp([a, b]);
    await waitSettled([a, b], names, 60_000);
    const peers = [a, b].map(peerClientOf);
    const missing: string[] = [];
    for (const k of keys) {
      for (const [i, p] of peers.entries())
        if (!(await holds(p, k))) missing.push(`${k} on ${names[i]}`);
    }
    expect(missing.length, missing.slice(0, 5).join(', ')).toBe(0);
  }, 90_000);
});

describe('a member back on an empty data directory whose peers do not say who they are', () => {
  it('founds no ring of itself alone: it waits until they answer, then takes the ring they hold', async () => {
    // Chaos seed 24002 (session 24): no PTR records (as in the chaos harness), so a node names
    // an address by asking it; an empty data directory has no names saved. The peers, loaded,
    // did not answer within the peer timeout: the node founded a ring of itself, routed every
    // key to itself alone and answered a RANGE without keys its peers held.
    dns = await startDnsServer();
    const { nodes, names, hosts, keys } = await dnsTrioWithKeys(dns, SERVICE, false);
    const [a, b, c] = nodes;

    // c loses its volume; it comes back on a new, empty directory while a and b are stopped.
    await c.proc.stop('SIGKILL');
    const resolves = () => dns!.queries.filter((q) => q.name === SERVICE && q.type === 'A').length;
    const before = resolves();
    for (const n of [a, b]) n.proc.child.kill('SIGSTOP');
    let back: ClusterNode;
    try {
      const starting = startDnsMember(dns.port, SERVICE, names[2]!, hosts[2]!);
      // It reads DNS again and again (every 300 ms, each asking the stopped peers who they are)
      // and does not serve; before, it served once its first questions had timed out (2 s).
      const waiting = expect.poll(resolves, { timeout: 30_000 }).toBeGreaterThanOrEqual(before + 4);
      expect(await servedFirst(starting, waiting, keys)).toEqual({ first: 'waiting', wrong: 0 });
      for (const n of [a, b]) n.proc.child.kill('SIGCONT');
      back = await starting;
    } finally {
      for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    }
    const cc = await openClient(back);
    for (const k of keys) expect(await cc.call(`GET ${k}`)).toBe(`v-${k}`);
    expect(await cc.call(`RANGE k0 k9`)).toBe([...keys].sort().join(' '));
    await waitSettled([a, b, back], names, 60_000);
    expect((await clusterInfo(back)).ring.epoch).toBeGreaterThan(1);
  }, 90_000);
});

describe('a new member that cannot name a member that is down when it starts', () => {
  it('leaves it out of its list until it answers; every write made meanwhile ends up on its owners', async () => {
    // No PTR records: the new member names each address by asking it, and the stopped member
    // cannot answer, so the new member's list lacks it while the others list it. Their target
    // rings differ until it is back: the new member writes to the owners under the settled ring
    // it adopted (a hint for the stopped one) and under its own target, and the others pass its
    // writes on to the owners under theirs (reroute: 200 of 200 here).
    dns = await startDnsServer();
    // Anti-entropy off: what reaches the owners is what writes, hints and rebalancing carried.
    const { nodes, names, hosts, keys } = await dnsTrioWithKeys(
      dns,
      SERVICE,
      false,
      NO_ANTI_ENTROPY,
    );
    const [a, b, c] = nodes;
    await c.proc.stop('SIGKILL');
    const dHost = `${hosts[0]!.split('.').slice(0, 3).join('.')}.4`;
    dns.setA(SERVICE, [...hosts, dHost]);
    const d = await startDnsMember(dns.port, SERVICE, 'kvstore-3', dHost, NO_ANTI_ENTROPY);
    const all = [...names, 'kvstore-3'];
    expect((await clusterInfo(d)).members.map((m) => m.name)).toEqual([
      'kvstore-0',
      'kvstore-1',
      'kvstore-3',
    ]);

    // Writes through the new member while c is down: the old keys overwritten, new ones added.
    const cd = await openClient(d);
    const written = new Map<string, string>();
    for (const k of keys) written.set(k, `v-${k}`);
    for (let i = 0; i < 200; i++) {
      const k = i < keys.length ? keys[i]! : `n${i}`;
      expect(await cd.call(`PUT ${k} w-${k}`)).toBe('OK');
      written.set(k, `w-${k}`);
    }
    const wrongThrough = async (n: ClusterNode) => {
      const cl = await openClient(n);
      const wrong: string[] = [];
      for (const [k, v] of written) if ((await cl.call(`GET ${k}`)) !== v) wrong.push(k);
      return wrong;
    };
    for (const n of [a, b, d]) expect(await wrongThrough(n), n.name).toEqual([]);

    // c comes back on its own directory: the new member names it and the ring settles with all four.
    await restart(c, [...NO_ANTI_ENTROPY, ...dnsDiscoveryArgs(dns.port, SERVICE)]);
    await waitAllUp([a, b, c, d]);
    await waitSettled([a, b, c, d], all, 60_000);
    // c's copies of the writes made while it was down reach it as hints, delivered on their own
    // interval: the ring can settle before they are.
    await until(
      async () => {
        for (const n of [a, b, c, d]) if ((await clusterInfo(n)).hints > 0) return false;
        return true;
      },
      60_000,
      'every hint delivered',
      100,
    );
    // Every owner under the settled ring holds each key's last value itself (not only a quorum),
    // checked before any client read: a read repairs the replicas it finds stale.
    const ring = new Ring(all);
    const peers = [a, b, c, d].map(peerClientOf);
    const missing: string[] = [];
    for (const [k, v] of written) {
      for (const o of ring.owners(Buffer.from(k), 3)) {
        if (!(await holds(peers[all.indexOf(o)]!, k, v))) missing.push(`${k} on ${o}`);
      }
    }
    expect(missing.length, missing.slice(0, 5).join(', ')).toBe(0);
    for (const n of [a, b, c, d]) expect(await wrongThrough(n), n.name).toEqual([]);
  }, 120_000);
});
