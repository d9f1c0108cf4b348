// A member restarted on a new address (a Kubernetes pod, a recreated compose container) is the same
// member: no leave and join, no data moved; one unlisted for good leaves after the grace.

import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  openClient,
  spawnDnsMember,
  waitFormed,
  waitSettled,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';
import { readLoop } from '../helpers/read-loop.ts';
import { until } from '../helpers/write-log.ts';

const SERVICE = 'kvstore-headless.moved.svc.cluster.local';
const NAMES = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'];
const KEYS = 400;
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

const member = (name: string, host: string, dataDir?: string, extra: string[] = []) =>
  spawnDnsMember(dns!.port, SERVICE, name, host, extra, dataDir).started;

/**
 * Four members found by the A records of SERVICE with no PTR names (each address is asked who it
 * is, as under docker-compose or a Service without hostnames), formed, holding KEYS keys; and a
 * fifth loopback address for a member to come back on.
 */
async function fourMembers(extra: string[] = []) {
  dns = await startDnsServer();
  const block = loopbackBlock();
  const hosts = [1, 2, 3, 4, 5].map((i) => `${block}.${i}`);
  dns.setA(SERVICE, hosts.slice(0, 4));
  const nodes = await Promise.all(
    NAMES.map((name, i) => member(name, hosts[i]!, undefined, extra)),
  );
  await waitFormed(nodes);
  const values = new Map<string, string>();
  const w = await openClient(nodes[0]!);
  for (let i = 0; i < KEYS; i++) values.set(`k:${String(i).padStart(4, '0')}`, `value-${i}`);
  w.send(`${[...values].map(([k, v]) => `PUT ${k} ${v}`).join('\n')}\n`);
  expect(new Set(await w.lines(KEYS))).toEqual(new Set(['OK']));
  return { hosts, nodes, values };
}

/** Waits until each of `nodes` has resolved SERVICE `times` more times (A queries counted). */
async function resolvedAgain(nodes: readonly ClusterNode[], times: number): Promise<void> {
  const asked = () => dns!.queries.filter((q) => q.name === SERVICE && q.type === 'A').length;
  const before = asked();
  await until(() => asked() >= before + times * nodes.length, 30_000, `${times} more resolves`);
}

const sent = async (nodes: readonly ClusterNode[]) =>
  (await Promise.all(nodes.map((n) => metric(n, 'kvstore_rebalance_bytes_sent_total')))).reduce(
    (a, b) => a + b,
    0,
  );

describe('a member restarted on a new address (A records, no PTR)', () => {
  it('stays a member throughout: no leave, no ring change, nothing streamed', {
    timeout: 120_000,
  }, async () => {
    const { hosts, nodes, values } = await fourMembers();
    const moving = nodes[3]!;
    const others = nodes.slice(0, 3);
    const reader = readLoop(await openClient(nodes[0]!), values);
    const logsBefore = others.map((n) => n.proc.logs.length);
    // The pod is deleted (its address unlisted), and its replacement listed on a new address
    // before its process listens: nobody can name that address yet.
    await moving.proc.stop('SIGTERM');
    dns!.setA(SERVICE, [...hosts.slice(0, 3), hosts[4]!]);
    await resolvedAgain(others, 10);
    for (const n of others) {
      const info = await clusterInfo(n);
      expect(info.members.map((m) => m.name)).toEqual(NAMES);
      expect(info.members.find((m) => m.name === 'kvstore-3')?.state).toBe('down');
    }
    const back = await member('kvstore-3', hosts[4]!, moving.dataDir);
    const four = [...others, back];
    await waitFormed(four, 30_000);
    const during = await reader.finish();
    const logs = others.flatMap((n, i) => n.proc.logs.slice(logsBefore[i]));
    const msgs = (msg: string) => logs.filter((l) => l.msg === msg).length;
    expect({
      left: msgs('member left'),
      ringChanged: msgs('ring changed'),
      bytesSent: await sent(four),
      wrong: during.wrong.slice(0, 5),
    }).toEqual({ left: 0, ringChanged: 0, bytesSent: 0, wrong: [] });
    expect(during.reads).toBeGreaterThan(10);
    // Everyone reaches it at its new address.
    const c = await openClient(nodes[1]!);
    expect(await c.call('PUT after moved')).toBe('OK');
    expect(await (await openClient(back)).call('GET after')).toBe('moved');
  });
});

describe('a member unlisted for good', () => {
  it('leaves once it has not answered for --unlisted-grace-ms', { timeout: 120_000 }, async () => {
    const { hosts, nodes } = await fourMembers(['--unlisted-grace-ms', '3000']);
    const gone = nodes[3]!;
    const others = nodes.slice(0, 3);
    await gone.proc.stop('SIGTERM');
    dns!.setA(SERVICE, hosts.slice(0, 3));
    // It is down, then left: the data it held moves to the others and the ring settles without it.
    await waitSettled(others, NAMES.slice(0, 3), 60_000);
    const left = others.map((n) => n.proc.logs.find((l) => l.msg === 'member left'));
    expect(left.map((l) => [l?.member, l?.reason])).toEqual(
      others.map(() => ['kvstore-3', 'not listed, and answered nowhere for the grace']),
    );
    for (const l of left) expect(l?.unlistedMs).toBeGreaterThanOrEqual(3000);
    expect(await sent(others)).toBeGreaterThan(0);
  });
});
