// An expired key never comes back, with real node processes: through hinted handoff, a returning
// replica, read repair and rebalancing (a node joining through DNS).

import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  dnsDiscoveryArgs,
  loopbackBlock,
  metric,
  NO_ANTI_ENTROPY,
  peersOf,
  restart,
  startMember,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';
import { closeResp, ioredis } from '../helpers/resp-tools.ts';

const SWEEP = ['--expiry-sweep-interval-ms', '200'];
let dns: TestDnsServer | null = null;

afterEach(async () => {
  closeResp();
  await cleanup();
  await dns?.close();
  dns = null;
});

const resp = (n: ClusterNode): Promise<Redis> => ioredis(n.host, n.proc.port);

/** Every read path of `key` through `r`, as one comparable value. */
async function readPaths(r: Redis, key: string) {
  const [, scanned] = await r.scan('0', 'MATCH', `${key}*`, 'COUNT', '1000');
  return {
    get: await r.get(key),
    exists: await r.exists(key),
    mget: await r.mget(key),
    keys: await r.keys(`${key}*`),
    scan: scanned,
    prefix: await r.call('PREFIX', key),
    ttl: await r.ttl(key),
  };
}

const ABSENT = { get: null, exists: 0, mget: [null], keys: [], scan: [], prefix: [], ttl: -2 };

/** Waits until `key` has expired as `r` sees it (its TTL reads -2). */
async function expired(r: Redis, key: string): Promise<void> {
  await expect.poll(() => r.pttl(key), { timeout: 20_000, interval: 100 }).toBe(-2);
}

describe('an expired key never comes back', () => {
  it('through hinted handoff: the hint carries the absolute expiry', async () => {
    // W=1 and R=1 with no random read repair: a read through kvstore-2 sees only its own copy.
    const extra = [...SWEEP, '--read-quorum', '1', '--write-quorum', '1'];
    const args = [
      ...extra,
      '--read-repair-chance',
      '0',
      '--hint-interval-ms',
      '200',
      ...NO_ANTI_ENTROPY,
    ];
    const nodes = await startStaticCluster(3, args);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ra = await resp(a);
    expect(await ra.set('hint:k', 'old')).toBe('OK');
    const rc = await resp(c);
    await expect.poll(() => rc.get('hint:k'), { timeout: 10_000 }).toBe('old');
    closeResp();

    await c.proc.stop();
    const ra2 = await resp(a);
    // Written while kvstore-2 is down: it gets a hint, kept on the coordinator.
    expect(await ra2.set('hint:k', 'new', 'PX', 1500)).toBe('OK');
    await expect.poll(() => metric(a, 'kvstore_hints_stored'), { timeout: 10_000 }).toBe(1);
    await expired(ra2, 'hint:k');

    await restart(c, ['--peers', peersOf(nodes), ...args]);
    await waitAllUp(nodes);
    await expect.poll(() => metric(a, 'kvstore_hints_stored'), { timeout: 20_000 }).toBe(0);
    expect(await metric(a, 'kvstore_hints_delivered_total')).toBeGreaterThanOrEqual(1);
    // kvstore-2 now holds the hinted record: expired, not the value it had before.
    const rc2 = await resp(c);
    expect(await readPaths(rc2, 'hint:k')).toEqual(ABSENT);
    await expect.poll(() => metric(c, 'kvstore_storage_keys'), { timeout: 10_000 }).toBe(0);
    expect(await metric(c, 'kvstore_storage_tombstones')).toBe(1);
  }, 120_000);

  it('through a returning replica that missed the expiry, and read repair then replaces its copy', async () => {
    // No hints: kvstore-2 comes back holding the value without an expiry.
    const args = [...SWEEP, '--max-hints', '0', '--read-repair-chance', '0', ...NO_ANTI_ENTROPY];
    const nodes = await startStaticCluster(3, args);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ra = await resp(a);
    expect(await ra.set('back:k', 'v')).toBe('OK');
    await expect.poll(() => metric(c, 'kvstore_storage_keys'), { timeout: 10_000 }).toBe(1);

    await c.proc.stop();
    const ra2 = await resp(a);
    expect(await ra2.pexpire('back:k', 1000)).toBe(1);
    await expired(ra2, 'back:k');
    // The two replicas that took the expiry turned their copies into tombstones.
    for (const n of [a, b]) {
      await expect.poll(() => metric(n, 'kvstore_storage_tombstones'), { timeout: 10_000 }).toBe(1);
    }

    await restart(c, ['--peers', peersOf(nodes), ...args]);
    await waitAllUp(nodes);
    // It is back with the stale copy: live, no expiry.
    expect(await metric(c, 'kvstore_storage_keys')).toBe(1);
    expect(await metric(c, 'kvstore_read_repairs_total')).toBe(0);

    // Returning replica: every read path through it (and through the others) says absent.
    for (const n of [c, a, b]) expect(await readPaths(await resp(n), 'back:k')).toEqual(ABSENT);
    expect(await (await resp(c)).dbsize()).toBe(0);

    // Read repair: the reads through kvstore-2 asked it and a replica with the tombstone, and
    // sent it the newer record; its stale copy is gone.
    await expect.poll(() => metric(c, 'kvstore_storage_keys'), { timeout: 10_000 }).toBe(0);
    expect(await metric(c, 'kvstore_storage_tombstones')).toBe(1);
    expect(await metric(c, 'kvstore_read_repairs_total')).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('through rebalancing: a joining node receives no live copy of an expired key', async () => {
    const SERVICE = 'kvstore-headless.expiry.svc.cluster.local';
    dns = await startDnsServer();
    const server = dns;
    const block = loopbackBlock();
    const hosts = [1, 2, 3, 4].map((i) => `${block}.${i}`);
    const member = (i: number) =>
      startMember(`kvstore-${i}`, hosts[i]!, [...dnsDiscoveryArgs(server.port, SERVICE), ...SWEEP]);
    server.setA(SERVICE, hosts.slice(0, 3));
    const nodes = await Promise.all([0, 1, 2].map(member));
    await waitAllUp(nodes);
    await waitSettled(nodes, ['kvstore-0', 'kvstore-1', 'kvstore-2']);

    const r = await resp(nodes[0]!);
    const pipeline = r.pipeline();
    for (let i = 0; i < 60; i++) {
      const key = `reb:${String(i).padStart(2, '0')}`;
      if (i % 2 === 0) pipeline.set(key, `kept-${i}`);
      else pipeline.set(key, `gone-${i}`, 'PX', 1000);
    }
    await pipeline.exec();
    await expired(r, 'reb:59');

    const joiner = await member(3);
    server.setA(SERVICE, hosts);
    const four = [...nodes, joiner];
    await waitSettled(four, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3']);
    // The stream carried the expired records (or their tombstones) as they are: expired.
    const kept = Array.from({ length: 30 }, (_, i) => `reb:${String(i * 2).padStart(2, '0')}`);
    for (const n of four) {
      const rn = await resp(n);
      expect(await rn.keys('reb:*')).toEqual(kept);
      for (let i = 1; i < 60; i += 2) {
        expect(await rn.get(`reb:${String(i).padStart(2, '0')}`)).toBeNull();
      }
    }
    // Once swept and cleaned up, the cluster holds 3 live copies of each kept key, none of the rest.
    const live = () =>
      Promise.all(four.map((n) => metric(n, 'kvstore_storage_keys'))).then((c) =>
        c.reduce((x, y) => x + y, 0),
      );
    await expect.poll(live, { timeout: 20_000 }).toBe(3 * 30);
    expect(await metric(joiner, 'kvstore_storage_keys')).toBeGreaterThan(0);
    expect(await metric(joiner, 'kvstore_expiry_due_keys')).toBe(0);
  }, 180_000);
});
