// A member that leaves (gone from DNS, still running) keeps no connection from the others.

import { afterEach, describe, expect, it } from 'vitest';
import { clusterInfoSchema } from '../../src/admin/index.ts';
import {
  type ClusterNode,
  loopbackBlock,
  metric,
  startDnsMember,
  waitAllUp,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';

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

describe('a member that leaves', () => {
  it('is no longer connected to by the members that remain', { timeout: 60_000 }, async () => {
    dns = await startDnsServer();
    const block = loopbackBlock();
    const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
    dns.setA(SERVICE, hosts);
    // Named by PTR: no node asks an address who it is (which would connect it to itself too).
    for (const [i, h] of hosts.entries()) dns.setPtr(h, `kvstore-${i}.${SERVICE}`);
    const nodes = await Promise.all(hosts.map((h, i) => dnsMember(dns!, `kvstore-${i}`, h)));
    await waitAllUp(nodes);
    const [a, b, leaving] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    // Both others probe it: two inbound connections.
    await expect.poll(() => metric(leaving, INBOUND), { timeout: 15_000 }).toBe(2);
    // The admin API answers exactly what its schema describes (nothing missing, nothing more).
    const info = await adminCluster(a);
    expect(clusterInfoSchema.parse(info)).toEqual(info);

    dns.setA(SERVICE, [hosts[0]!, hosts[1]!]);
    // It still runs (and still connects out to them), but nobody keeps a connection to it.
    await expect.poll(() => metric(leaving, INBOUND), { timeout: 15_000 }).toBe(0);
    expect(await metric(a, OUTBOUND)).toBe(1);
    expect(await metric(b, OUTBOUND)).toBe(1);
  });
});
