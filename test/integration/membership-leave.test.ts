// A member that leaves (gone from DNS, still running) keeps no connection from the others.

import { afterEach, describe, expect, it } from 'vitest';
import { clusterInfoSchema } from '../../src/admin/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  openClient,
  startDnsMember,
  startNamedDnsCluster,
  waitAllUp,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

const SERVICE = 'kvstore-headless.leave.svc.cluster.local';
const INBOUND = 'kvstore_peer_connections{side="server"}';
const OUTBOUND = 'kvstore_peer_connections{side="client"}';
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

const dnsMember = (server: TestDnsServer, name: string, host: string) =>
  startDnsMember(server.port, SERVICE, name, host);

async function adminCluster(n: ClusterNode): Promise<unknown> {
  const res = await fetch(`http://${n.host}:${n.proc.httpPort}/admin/cluster`);
  return res.json();
}

/** Three members found by DNS (A records of SERVICE), named by PTR records; all up. */
async function threeDnsMembers() {
  const zone = await startDnsServer();
  dns = zone;
  return { zone, ...(await startNamedDnsCluster(zone, SERVICE, 3)) };
}

describe('a member that leaves', () => {
  it('is no longer connected to by the members that remain', { timeout: 60_000 }, async () => {
    const { zone, hosts, nodes } = await threeDnsMembers();
    const [a, b, leaving] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    // Both others probe it and keep data connections to it (small and large): three each.
    await expect.poll(() => metric(leaving, INBOUND), { timeout: 15_000 }).toBe(6);
    // The admin API answers exactly what its schema describes (nothing missing, nothing more).
    const info = await adminCluster(a);
    expect(clusterInfoSchema.parse(info)).toEqual(info);

    zone.setA(SERVICE, [hosts[0]!, hosts[1]!]);
    // It still runs (and still connects out to them), but nobody keeps a connection to it.
    await expect.poll(() => metric(leaving, INBOUND), { timeout: 15_000 }).toBe(0);
    expect(await metric(a, OUTBOUND)).toBe(3);
    expect(await metric(b, OUTBOUND)).toBe(3);
  });
});

describe('an address listed for a while that never became a member', () => {
  it('is no longer connected to once it is unlisted', { timeout: 90_000 }, async () => {
    dns = await startDnsServer();
    const block = loopbackBlock();
    const hosts = [1, 2].map((i) => `${block}.${i}`);
    for (const [i, h] of hosts.entries()) dns.setPtr(h, `kvstore-${i}.${SERVICE}`);
    // A pod that is listed but does not answer who it is (stuck), and is then deleted: no PTR,
    // so the members ask it, over a connection its kernel accepts; it never gets a name.
    const stray = `${block}.9`;
    dns.setA(SERVICE, [stray]); // listed alone it starts (with no member listed, it would wait)
    const stuck = await dnsMember(dns, 'kvstore-9', stray);
    stuck.proc.child.kill('SIGSTOP');
    dns.setA(SERVICE, [...hosts, stray]);
    const nodes = await Promise.all(hosts.map((h, i) => dnsMember(dns!, `kvstore-${i}`, h)));
    await waitAllUp(nodes);
    const [a, b] = nodes as [ClusterNode, ClusterNode];
    // To the other member, small, large and control; to the stray, the control connection it is
    // asked its name on (data connections are made only to a member that answered).
    await expect.poll(() => metric(a, OUTBOUND), { timeout: 15_000 }).toBe(4);
    await expect.poll(() => metric(b, OUTBOUND), { timeout: 15_000 }).toBe(4);
    expect((await clusterInfo(a)).members.map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-1']);

    dns.setA(SERVICE, hosts);
    // Nothing asks for it any more: its connection goes within a few rounds of resolves (it was
    // never a member that left, so nothing else closes it: it stayed for good).
    await expect.poll(() => metric(a, OUTBOUND), { timeout: 30_000 }).toBe(3);
    await expect.poll(() => metric(b, OUTBOUND), { timeout: 30_000 }).toBe(3);
  });
});

describe('a DNS answer with no members at all', () => {
  it('is not every other member leaving: the last list stays (the headless Service deleted)', {
    timeout: 120_000,
  }, async () => {
    const { zone, hosts, nodes } = await threeDnsMembers();
    const first = await openClient(nodes[0]!);
    expect(await first.call('PUT k v')).toBe('OK');
    // The headless Service deleted (or the zone emptied): the name has no records at all.
    zone.setA(SERVICE, []);
    const empty =
      'member source lists no members, not even this node: keeping the last list until it lists some';
    const warned = (n: ClusterNode) => n.proc.logs.filter((l) => l.msg === empty).length;
    await until(
      () => nodes.every((n) => warned(n) > 0),
      30_000,
      'every node to get the empty answer',
    );
    // Then ten more resolves each (an A question per resolve), however long a loaded machine takes.
    const asked = () => zone.queries.filter((q) => q.name === SERVICE && q.type === 'A').length;
    const before = asked();
    await until(() => asked() >= before + 30, 30_000, 'ten more resolves of each node');
    // Before, each node made a ring of itself alone (W and R clamped to 1): GET k through a node
    // that did not hold it answered NOT_FOUND, and writes were acknowledged with one copy.
    for (const n of nodes) {
      const info = await clusterInfo(n);
      expect(info.members.map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
      expect(info.members.every((m) => m.state === 'up')).toBe(true);
      expect(await (await openClient(n)).call('GET k')).toBe('v');
      expect(warned(n)).toBe(1); // once, not at every resolve
    }
    zone.setA(SERVICE, hosts);
    await expect
      .poll(() =>
        nodes.every((n) => n.proc.logs.some((l) => l.msg === 'member source lists members again')),
      )
      .toBe(true);
  });
});
