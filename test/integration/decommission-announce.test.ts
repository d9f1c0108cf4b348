// A decommissioned member tells the others before it stops: one whose probes did not see its last
// status (slowed down here to one per 10 minutes) drops it when it is unlisted, not a grace later.

import { afterEach, describe, expect, it } from 'vitest';
import { adminRequest, peerHandshake } from '../../src/auth/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { PeerClient } from '../../src/peer/index.ts';
import { METHODS } from '../../src/replica/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  spawnDnsMember,
  startNamedDnsCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';

const SERVICE = 'kvstore-headless.announce.svc.cluster.local';
/**
 * A member that probes once at its start and then not for the rest of the test, and keeps an
 * unlisted member for as long: without being told, it would keep the decommissioned member as
 * long as the test runs.
 */
const SLOW = ['--probe-interval-ms', '600000', '--unlisted-grace-ms', '600000'];
/** Peers authenticate: the notice goes over authenticated connections like every request. */
const SECRET = 'decommission-announce-secret';
const SECRET_ARGS = ['--cluster-secret', SECRET];
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

/**
 * Three members found by DNS (A records named by PTR records), formed with fast probes; then
 * kvstore-0 restarted on its data directory with SLOW probes: it probed the others once (all
 * active) and routes by their settled ring.
 */
async function withSlowObserver() {
  const zone = await startDnsServer();
  dns = zone;
  const { hosts, nodes } = await startNamedDnsCluster(zone, SERVICE, 3, SECRET_ARGS);
  const observer = nodes[0]!;
  await observer.proc.stop('SIGTERM');
  const again = spawnDnsMember(
    zone.port,
    SERVICE,
    observer.name,
    observer.host,
    [...SECRET_ARGS, ...SLOW],
    observer.dataDir,
  );
  observer.proc = (await again.started).proc;
  // Everyone probed it since (their connections to it are up again, out of their backoff).
  await waitAllUp(nodes);
  const names = nodes.map((n) => n.name);
  await waitSettled(nodes, names);
  const seen = await clusterInfo(observer);
  expect(seen.members.map((m) => [m.name, m.state, m.status])).toEqual([
    ['kvstore-0', 'up', 'active'],
    ['kvstore-1', 'up', 'active'],
    ['kvstore-2', 'up', 'active'],
  ]);
  return { zone, hosts, nodes, observer };
}

async function decommission(n: ClusterNode): Promise<void> {
  const node = { base: `http://${n.host}:${n.proc.httpPort}`, secret: SECRET };
  const path = '/admin/decommission';
  expect((await adminRequest(node, 'POST', path)).status).toBe(202);
  const status = async () =>
    ((await (await adminRequest(node, 'GET', path)).json()) as { status: string }).status;
  await expect.poll(status, { timeout: 30_000 }).toBe('decommissioned');
}

/** A client of `n`'s peer port that knows the cluster secret: what any member may send. */
function memberClientOf(n: ClusterNode): PeerClient {
  const client = new PeerClient({
    address: `${n.host}:7946`,
    logger: createLogger('silent', {}),
    timeoutMs: 5000,
    handshake: peerHandshake(SECRET),
  });
  defer(() => client.close());
  return client;
}

const names = async (n: ClusterNode) => (await clusterInfo(n)).members.map((m) => m.name);
const leftLogs = (n: ClusterNode, member: string) =>
  n.proc.logs.filter((l) => l.msg === 'member left' && l.member === member);

describe('a decommissioned member', () => {
  it('tells the others it is decommissioned: one whose probes missed it drops it once it is unlisted', {
    timeout: 120_000,
  }, async () => {
    const { zone, hosts, nodes, observer } = await withSlowObserver();
    const leaving = nodes[2]!;
    await decommission(leaving);
    // Its pod deleted: the process stops, then its address leaves the records.
    await leaving.proc.stop('SIGTERM');
    zone.setA(SERVICE, hosts.slice(0, 2));
    await expect
      .poll(() => names(observer), { timeout: 20_000 })
      .toEqual(['kvstore-0', 'kvstore-1']);
    expect(leftLogs(observer, 'kvstore-2').map((l) => l.reason)).toEqual([
      'not listed, and it reported itself decommissioned',
    ]);
    // It was never kept as an unlisted member.
    expect(
      observer.proc.logs.filter((l) => String(l.msg).startsWith('member no longer listed')),
    ).toEqual([]);
    // Told as its hand-off finished, and again as it stopped; both members acknowledged each.
    expect(
      leaving.proc.logs
        .filter((l) => l.msg === 'told the members this node is decommissioned')
        .map((l) => [l.why, l.acknowledged, l.unacknowledged]),
    ).toEqual([
      ['hand-off done', 2, []],
      ['stopping', 2, []],
    ]);
  });

  it('that another member claims decommissioned is probed, and stays as it answers', {
    timeout: 120_000,
  }, async () => {
    const { observer } = await withSlowObserver();
    // Sent with the cluster secret (any member has it): the claim only makes the observer ask.
    const forger = memberClientOf(observer);
    const claim = (n: unknown) => forger.request(METHODS.decommissioned, { n });
    expect(await claim('kvstore-1')).toEqual({ s: 'active' });
    expect(await claim('kvstore-9')).toEqual({ s: null }); // no member of its
    await expect(claim('not a name')).rejects.toThrow(/malformed decommissioned notice/);
    const seen = await clusterInfo(observer);
    expect(seen.members.map((m) => [m.name, m.state, m.status, m.share > 0])).toEqual([
      ['kvstore-0', 'up', 'active', true],
      ['kvstore-1', 'up', 'active', true],
      ['kvstore-2', 'up', 'active', true],
    ]);
    expect(seen.ring.moving).toBe(false);
    expect(observer.proc.logs.filter((l) => l.msg === 'member left')).toEqual([]);
    expect(
      observer.proc.logs
        .filter((l) => l.msg === 'a member says it is decommissioned: probed it')
        .map((l) => [l.member, l.status]),
    ).toEqual([
      ['kvstore-1', 'active'],
      ['kvstore-9', null],
    ]);
  });
});
