import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  openClient,
  spawnDnsMember,
  startDnsMember,
  startMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';
import { readLoop } from '../helpers/read-loop.ts';

const SERVICE = 'kvstore-headless.test.svc.cluster.local';
/**
 * For members that see a member die and then leave the records for good: it leaves once it has
 * answered nowhere for this long (not the 5 minutes a restart on a new address is given).
 */
const SHORT_GRACE = ['--unlisted-grace-ms', '2000'];
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

/** Nodes that find each other through the headless-Service A records of the test DNS server. */
function dnsMember(server: TestDnsServer, name: string, host: string, extra: string[] = []) {
  return startDnsMember(server.port, SERVICE, name, host, extra);
}

/**
 * Three members found through the test DNS server's A records, settled, on the first three of
 * four loopback addresses (the fourth for a member that joins); the module's `dns` is set too,
 * for afterEach to close.
 */
async function threeOfFour(extra: string[] = []) {
  const server = await startDnsServer();
  dns = server;
  const block = loopbackBlock();
  const hosts = [1, 2, 3, 4].map((i) => `${block}.${i}`);
  server.setA(SERVICE, hosts.slice(0, 3));
  const nodes = await Promise.all(
    hosts.slice(0, 3).map((h, i) => dnsMember(server, `kvstore-${i}`, h, extra)),
  );
  await waitAllUp(nodes);
  await waitSettled(nodes, ['kvstore-0', 'kvstore-1', 'kvstore-2']);
  return { dns: server, hosts, nodes };
}

async function storedTotal(nodes: readonly ClusterNode[]): Promise<number> {
  const counts = await Promise.all(nodes.map((n) => metric(n, 'kvstore_storage_keys')));
  return counts.reduce((a, b) => a + b, 0);
}

describe('membership through DNS, rebalancing and decommission', () => {
  it('moves data to a joining node and off a decommissioned one, keys readable throughout', async () => {
    const { dns, hosts, nodes } = await threeOfFour();

    const writer = await openClient(nodes[0]!);
    const values = new Map<string, string>();
    for (let i = 0; i < 600; i++) values.set(`user:${String(i).padStart(4, '0')}`, `value-${i}`);
    const puts = [...values].map(([k, v]) => `PUT ${k} ${v}`);
    writer.send(`${puts.join('\n')}\n`);
    expect(new Set(await writer.lines(puts.length))).toEqual(new Set(['OK']));
    expect(await storedTotal(nodes)).toBe(3 * 600);

    // Join: a fourth pod appears in DNS. Reads go on while data moves.
    const reader = readLoop(await openClient(nodes[1]!), values);
    const joiner = await dnsMember(dns, 'kvstore-3', hosts[3]!);
    dns.setA(SERVICE, hosts);
    const four = [...nodes, joiner];
    await waitSettled(four, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3']);
    // Old owners drop what they no longer own once the ring settled: RF copies remain.
    await expect.poll(() => storedTotal(four), { timeout: 15_000 }).toBe(3 * 600);
    const joined = await metric(joiner, 'kvstore_storage_keys');
    expect(joined).toBeGreaterThan(600 * 0.6);
    expect(joined).toBeLessThan(600 * 0.9);
    const duringJoin = await reader.finish();
    expect(duringJoin.wrong).toEqual([]);
    // Reads went on throughout (one that never came back would hold finish()); how many depends
    // on how long the join took.
    expect(duringJoin.reads).toBeGreaterThan(0);
    const fromJoiner = await openClient(joiner);
    expect(await fromJoiner.call('GET user:0042')).toBe('value-42');
    expect((await fromJoiner.call('PREFIX user:')).split(' ')).toHaveLength(600);

    // Leave: decommission kvstore-1, then it leaves DNS.
    const reader2 = readLoop(await openClient(nodes[0]!), values);
    const leaving = nodes[1]!;
    const admin = `http://${leaving.host}:${leaving.proc.httpPort}/admin/decommission`;
    expect((await fetch(admin, { method: 'POST' })).status).toBe(202);
    await expect
      .poll(async () => ((await (await fetch(admin)).json()) as { status: string }).status, {
        timeout: 20_000,
      })
      .toBe('decommissioned');
    const rest = four.filter((n) => n !== leaving);
    await waitSettled(rest, ['kvstore-0', 'kvstore-2', 'kvstore-3']);
    dns.setA(SERVICE, [hosts[0]!, hosts[2]!, hosts[3]!]);
    await leaving.proc.stop('SIGTERM');
    await expect.poll(() => storedTotal(rest), { timeout: 15_000 }).toBe(3 * 600);
    const duringLeave = await reader2.finish();
    expect(duringLeave.wrong).toEqual([]);
    const after = await openClient(nodes[2]!);
    expect((await after.call('PREFIX user:')).split(' ')).toHaveLength(600);
    expect(await after.call('GET user:0599')).toBe('value-599');
  });

  it('resumes a throttled transfer where it stopped after the sending node restarts', async () => {
    const slow = ['--rebalance-rate-bytes', '4000'];
    const { dns, hosts, nodes } = await threeOfFour(slow);
    const w = await openClient(nodes[0]!);
    const value = 'x'.repeat(100);
    const puts = Array.from(
      { length: 400 },
      (_, i) => `PUT r:${String(i).padStart(3, '0')} ${value}`,
    );
    w.send(`${puts.join('\n')}\n`);
    expect(new Set(await w.lines(400))).toEqual(new Set(['OK']));

    const joiner = await dnsMember(dns, 'kvstore-3', hosts[3]!, slow);
    dns.setA(SERVICE, hosts);
    const n0 = nodes[0]!;
    // The first chunk went out (and its cursor is durable); the throttle holds the rest back.
    await expect
      .poll(() => metric(n0, 'kvstore_rebalance_keys_sent_total'), { timeout: 15_000 })
      .toBeGreaterThan(0);
    expect(await metric(n0, 'kvstore_rebalance_active')).toBe(1);
    await n0.proc.stop('SIGKILL');
    n0.proc = (await dnsMember(dns, n0.name, n0.host, [...slow, '--data-dir', n0.dataDir])).proc;
    const all = [...nodes, joiner];
    await waitSettled(all, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'], 60_000);
    // After the restart n0 read only what was left after its saved cursor.
    const rescanned = await metric(n0, 'kvstore_rebalance_keys_scanned_total');
    expect(rescanned).toBeGreaterThan(0);
    expect(rescanned).toBeLessThan(400);
    await expect.poll(() => storedTotal(all), { timeout: 15_000 }).toBe(3 * 400);
    const c = await openClient(joiner);
    expect((await c.call('PREFIX r:')).split(' ')).toHaveLength(400);
  });

  it('streams large values a few at a time: read, sent, throttled and reported by bytes', async () => {
    // A chunk was 256 records whatever their size: with 1 MiB values 256 MiB held at once, sent
    // at full speed before the throttle's first wait, and no progress until all of it was sent.
    const slow = ['--rebalance-rate-bytes', String(4_000_000)];
    const { dns, hosts, nodes } = await threeOfFour(slow);
    const w = await openClient(nodes[0]!);
    for (let i = 0; i < 30; i++) {
      const k = `big:${String(i).padStart(2, '0')}`;
      expect(await w.call(`PUT ${k} ${k.padEnd(1_000_000, '.')}`)).toBe('OK');
    }
    const joiner = await dnsMember(dns, 'kvstore-3', hosts[3]!, slow);
    dns.setA(SERVICE, hosts);
    const n0 = nodes[0]!;
    await expect
      .poll(() => metric(n0, 'kvstore_rebalance_keys_scanned_total'), {
        timeout: 15_000,
        interval: 50,
      })
      .toBeGreaterThan(0);
    // The first chunk ended at 4 MiB (5 records of 1 MB); the throttle holds the rest back.
    expect(await metric(n0, 'kvstore_rebalance_keys_scanned_total')).toBeLessThanOrEqual(10);
    expect(await metric(n0, 'kvstore_rebalance_active')).toBe(1);
    const all = [...nodes, joiner];
    await waitSettled(all, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'], 60_000);
    await expect.poll(() => storedTotal(all), { timeout: 15_000 }).toBe(3 * 30);
    const c = await openClient(joiner);
    expect((await c.call('GET big:29')) === 'big:29'.padEnd(1_000_000, '.')).toBe(true);
  });

  it('streams again to a ring it streamed to before (A -> B -> A): records written meanwhile reach the new owner', async () => {
    const { dns, hosts, nodes } = await threeOfFour();
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2'];
    const w = await openClient(nodes[0]!);
    const put = async (prefix: string) => {
      const lines = Array.from({ length: 200 }, (_, i) => `PUT ${prefix}:${i} v${i}`);
      w.send(`${lines.join('\n')}\n`);
      expect(new Set(await w.lines(200))).toEqual(new Set(['OK']));
    };
    await put('early');
    // kvstore-3 is listed, so every node streams to it, but it routes by a ring of its own and
    // never reports the four-node ring: that ring never settles. Then it goes away again.
    const stray = await startMember('kvstore-3', hosts[3]!, [
      '--peers',
      `kvstore-3=${hosts[3]}:7946`,
    ]);
    dns.setA(SERVICE, hosts);
    await expect
      .poll(
        async () =>
          (
            await Promise.all(nodes.map((n) => metric(n, 'kvstore_rebalance_keys_sent_total')))
          ).every((x) => x > 0),
        { timeout: 15_000 },
      )
      .toBe(true);
    dns.setA(SERVICE, hosts.slice(0, 3));
    await stray.proc.stop('SIGKILL');
    await waitSettled(nodes, names);
    // Written while the three-node ring is the target again: the next stream must carry these.
    await put('late');
    const joiner = await dnsMember(dns, 'kvstore-3', hosts[3]!, SHORT_GRACE);
    dns.setA(SERVICE, hosts);
    const four = [...nodes, joiner];
    await waitSettled(four, [...names, 'kvstore-3'], 30_000);
    await expect.poll(() => storedTotal(four), { timeout: 15_000 }).toBe(3 * 400);
  });

  it('hands off to the members that remain when a member leaves during a decommission', async () => {
    dns = await startDnsServer();
    const block = loopbackBlock();
    const hosts = [1, 2, 3, 4].map((i) => `${block}.${i}`);
    dns.setA(SERVICE, hosts);
    const [a, b, c, d] = await Promise.all(
      hosts.map((h, i) => dnsMember(dns!, `kvstore-${i}`, h, SHORT_GRACE)),
    );
    const four = [a!, b!, c!, d!];
    await waitAllUp(four);
    await waitSettled(four, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3']);
    const w = await openClient(a!);
    const puts = Array.from({ length: 400 }, (_, i) => `PUT h:${String(i).padStart(3, '0')} v${i}`);
    w.send(`${puts.join('\n')}\n`);
    expect(new Set(await w.lines(400))).toEqual(new Set(['OK']));

    // kvstore-3 dies but is still listed: kvstore-2 starts its hand-off toward a ring that has
    // kvstore-3 in it, and cannot finish while kvstore-3 does not answer.
    await d!.proc.stop('SIGKILL');
    await expect
      .poll(
        async () => (await clusterInfo(c!)).members.find((m) => m.name === 'kvstore-3')?.state,
        { timeout: 15_000 },
      )
      .toBe('down');
    const admin = `http://${c!.host}:${c!.proc.httpPort}/admin/decommission`;
    expect((await fetch(admin, { method: 'POST' })).status).toBe(202);
    await expect
      .poll(() => c!.proc.logs.some((l) => l.msg === 'stream batch not taken; retrying'), {
        timeout: 15_000,
      })
      .toBe(true);
    // Its pod goes away for good: kvstore-3 leaves the records, and once it has answered nowhere
    // for the grace, the member list, and the hand-off must now go to the two members that remain.
    dns.setA(SERVICE, hosts.slice(0, 3));
    await expect
      .poll(async () => ((await (await fetch(admin)).json()) as { status: string }).status, {
        timeout: 20_000,
      })
      .toBe('decommissioned');
    dns.setA(SERVICE, hosts.slice(0, 2));
    await c!.proc.stop('SIGTERM');
    await waitSettled([a!, b!], ['kvstore-0', 'kvstore-1']);
    await expect.poll(() => storedTotal([a!, b!]), { timeout: 15_000 }).toBe(2 * 400);
    const r = await openClient(b!);
    expect((await r.call('PREFIX h:')).split(' ')).toHaveLength(400);
  });

  it('a new node waits while its DNS name lists no member at all, and starts once it is listed', async () => {
    // An answer with no member, not even this node, is no member list (docs/cluster.md): a
    // node with no saved ring that founded on it made a cluster of itself beside the real one.
    dns = await startDnsServer();
    const host = `${loopbackBlock()}.1`;
    const node = spawnDnsMember(dns.port, SERVICE, 'kvstore-0', host);
    const resolves = () => dns!.queries.filter((q) => q.name === SERVICE && q.type === 'A').length;
    await expect.poll(resolves, { timeout: 30_000 }).toBeGreaterThanOrEqual(4);
    expect(node.spawned.logs.some((l) => l.msg === 'node listening')).toBe(false);
    dns.setA(SERVICE, [host]);
    const c = await openClient(await node.started);
    expect(await c.call('PUT alone yes')).toBe('OK');
    expect(await c.call('GET alone')).toBe('yes');
    const info = await clusterInfo(await node.started);
    expect(info.members.map((m) => m.name)).toEqual(['kvstore-0']);
  });
});
