import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  metric,
  openClient,
  peersOf,
  restart,
  startStaticCluster,
} from '../helpers/cluster.ts';
import { cleanup, NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);
afterEach(cleanup);

/** The shortest grace the defaults allow: more than the peer timeout (2 s) + clock offset (0.5 s). */
const GC = ['--tombstone-grace-ms', '2600', '--gc-interval-ms', '200', '--hint-interval-ms', '200'];

describe('tombstone collection', () => {
  it('collects a tombstone once every replica has it, never while one is missing', async () => {
    const nodes = await startStaticCluster(3, GC);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    expect(await a.call('PUT quick v')).toBe('OK');
    expect(await a.call('PUT slow v')).toBe('OK');
    expect(await a.call('REMOVE quick')).toBe('OK');
    for (const n of nodes) {
      await expect.poll(() => metric(n, 'kvstore_storage_tombstones'), { timeout: 10_000 }).toBe(0);
    }
    expect(await a.call('GET quick')).toBe('NOT_FOUND');

    await n2.proc.stop('SIGKILL');
    expect(await a.call('REMOVE slow')).toBe('OK');
    // Several collection intervals pass the grace period while n2 lacks the tombstone: with a
    // member down the cluster is not at rest, nothing is collected, and n0 keeps it.
    const skipped = await metric(n0, 'kvstore_gc_skipped_total');
    await expect
      .poll(() => metric(n0, 'kvstore_gc_skipped_total'), { timeout: 10_000 })
      .toBeGreaterThan(skipped + 4);
    expect(await metric(n0, 'kvstore_storage_tombstones')).toBe(1);

    await restart(n2, ['--peers', peersOf(nodes), ...GC]);
    for (const n of nodes) {
      await expect.poll(() => metric(n, 'kvstore_storage_tombstones'), { timeout: 15_000 }).toBe(0);
      expect(await metric(n, 'kvstore_storage_keys')).toBe(0);
    }
    const c = await openClient(n2);
    expect(await c.call('GET slow')).toBe('NOT_FOUND');
    expect(await c.call('PREFIX s')).toBe('');
  }, 90_000);
});

describe('tombstone collection during a decommission', () => {
  it('collects nothing while a member hands its data off: the hand-off may carry older values', async () => {
    const nodes = await startStaticCluster(4, GC);
    const [a, , c, d] = nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const w = await openClient(a);
    const keys = Array.from({ length: 40 }, (_, i) => `handoff:${String(i).padStart(2, '0')}`);
    w.send(`${keys.map((k) => `PUT ${k} old`).join('\n')}\n`);
    expect(new Set(await w.lines(keys.length))).toEqual(new Set(['OK']));
    // With c stopped, d's hand-off (to every owner in the ring without d) reads its records now
    // and waits for c to take them.
    process.kill(c.proc.child.pid!, 'SIGSTOP');
    const admin = `http://${d.host}:${d.proc.httpPort}/admin/decommission`;
    try {
      expect((await fetch(admin, { method: 'POST' })).status).toBe(202);
      w.send(`${keys.map((k) => `REMOVE ${k}`).join('\n')}\n`);
      expect(new Set(await w.lines(keys.length))).toEqual(new Set(['OK']));
      // Many collection intervals past the grace period (nothing to poll: nothing may happen).
      await new Promise((r) => setTimeout(r, 4000));
    } finally {
      process.kill(c.proc.child.pid!, 'SIGCONT');
    }
    await expect
      .poll(async () => ((await (await fetch(admin)).json()) as { status: string }).status, {
        timeout: 20_000,
      })
      .toBe('decommissioned');
    const rest = nodes.filter((n) => n !== d);
    for (const n of rest) {
      await expect
        .poll(async () => (await clusterInfo(n)).ring.moving, { timeout: 15_000 })
        .toBe(false);
    }
    // The old values d sent late lost to the tombstones: no key came back.
    const r = await openClient(rest[1]!);
    expect(await r.call('PREFIX handoff:')).toBe('');
    for (const n of rest) {
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 10_000 }).toBe(0);
    }
  }, 90_000);
});

describe('kvctl admin commands', () => {
  it('decommissions a node with kvctl, showing records against the total, and the others keep every key', async () => {
    // Throttled so the hand-off of 2000 records takes several polls of --wait.
    const nodes = await startStaticCluster(3, [
      '--replication-factor',
      '2',
      '--rebalance-rate-bytes',
      '40000',
    ]);
    const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const N = 2000;
    // In batches of 200: a loaded machine must not time the peers out.
    for (let from = 0; from < N; from += 200) {
      const puts = Array.from({ length: 200 }, (_, j) => from + j).map(
        (i) => `PUT d:${String(i).padStart(4, '0')} v${i}`,
      );
      a.send(`${puts.join('\n')}\n`);
      expect(new Set(await a.lines(200))).toEqual(new Set(['OK']));
    }
    const kvctl = (...args: string[]) =>
      run(NODE, [
        join(ROOT, 'src/cli/main.ts'),
        '--host',
        n1.host,
        '--port',
        '8081',
        '--http-port',
        '9090',
        ...args,
      ]);
    // The status table: every member up, owning a third of the ring, and N * RF keys between them
    // (each member's figures arrive with its next hello).
    await expect
      .poll(
        async () => {
          const rows = (await kvctl('status')).stdout.trim().split('\n').slice(2);
          return rows.reduce((n, r) => n + Number(r.split(/\s+/)[4]), 0);
        },
        { timeout: 10_000 },
      )
      .toBe(2 * N);
    const table = (await kvctl('status')).stdout.trim().split('\n');
    expect(table[0]).toMatch(/^as seen by kvstore-1 \(active\); ring: settled/);
    expect(table[1]).toMatch(
      /^NAME\s+ADDRESS\s+STATE\s+PHASE\s+KEYS\s+BYTES\s+OWNS\s+HINTS\s+TRANSFER$/,
    );
    for (const [i, row] of table.slice(2).entries()) {
      expect(row).toMatch(
        new RegExp(
          `^kvstore-${i}\\s+${nodes[i]!.host.replaceAll('.', '\\.')}:7946\\s+up\\s+normal\\s+\\d+\\s+\\S+ \\S+\\s+\\d+\\.\\d%\\s+0\\s+-$`,
        ),
      );
    }
    const json = JSON.parse((await kvctl('status', '--json')).stdout) as {
      members: { name: string; keys: number }[];
    };
    expect(json.members.map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    const own = await metric(n1, 'kvstore_storage_keys');

    const { stdout } = await kvctl('decommission', '--wait');
    const lines = stdout.trim().split('\n');
    // Piped: one plain line per poll; the total is known from the first one on.
    expect(lines.at(-1)).toMatch(
      new RegExp(`^decommissioned: ${own}/${own} records \\(100%\\), [\\d.]+ KiB sent, done$`),
    );
    const running = lines.filter((l) => l.startsWith('decommissioning: '));
    expect(running.length).toBeGreaterThan(1);
    for (const l of running) {
      expect(l).toMatch(
        new RegExp(
          `^decommissioning: \\d+/${own} records \\([\\d.]+%\\), [\\d.]+ K?i?B sent, (\\d+ records/s, )?ETA (unknown|\\d+s)$`,
        ),
      );
    }
    expect(running.some((l) => / ETA \d+s$/.test(l))).toBe(true);
    expect((await kvctl('decommission-status')).stdout).toMatch(/^decommissioned/);
    const cluster = JSON.parse((await kvctl('cluster')).stdout) as {
      members: { name: string; share: number; phase: string }[];
    };
    expect(cluster.members.find((m) => m.name === 'kvstore-1')).toMatchObject({
      share: 0,
      phase: 'decommissioned',
    });
    // The two remaining members settle and hold two copies of every key between them.
    await expect
      .poll(
        async () =>
          (await metric(n0, 'kvstore_storage_keys')) + (await metric(n2, 'kvstore_storage_keys')),
        {
          timeout: 15_000,
        },
      )
      .toBe(2 * N);
    await n1.proc.stop('SIGTERM');
    const c = await openClient(n2);
    expect((await c.call('PREFIX d:')).split(' ')).toHaveLength(N);
    expect(await c.call('GET d:1234')).toBe('v1234');
    expect((await clusterInfo(n2)).ring.moving).toBe(false);
  }, 60_000);

  it('recommission: a decommissioned node rejoins with its directory and gets its share again', async () => {
    const nodes = await startStaticCluster(3, ['--replication-factor', '2']);
    const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const puts = Array.from({ length: 200 }, (_, i) => `PUT r:${String(i).padStart(3, '0')} v${i}`);
    a.send(`${puts.join('\n')}\n`);
    expect(new Set(await a.lines(200))).toEqual(new Set(['OK']));
    const kvctl = (...args: string[]) =>
      run(NODE, [join(ROOT, 'src/cli/main.ts'), '--host', n1.host, '--http-port', '9090', ...args]);
    const refused = await kvctl('recommission').catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/not decommissioned/) });
    await kvctl('decommission', '--wait');
    const keys = async (ns: ClusterNode[]) => {
      let sum = 0;
      for (const n of ns) sum += await metric(n, 'kvstore_storage_keys');
      return sum;
    };
    await expect.poll(() => keys([n0, n2]), { timeout: 30_000 }).toBe(400);
    // Stopped while decommissioned (a pod scaled away, its volume kept), keys deleted meanwhile,
    // then back with the same directory: still decommissioned until told otherwise.
    await n1.proc.stop('SIGTERM');
    for (let i = 0; i < 20; i++)
      expect(await a.call(`REMOVE r:${String(i).padStart(3, '0')}`)).toBe('OK');
    await restart(n1, ['--peers', peersOf(nodes), '--replication-factor', '2']);
    expect((await clusterInfo(n1)).status).toBe('decommissioned');
    const { stdout } = await kvctl('recommission', '--wait');
    expect(stdout.split('\n')[0]).toMatch(/^active: \d+ stale records dropped, rejoining$/);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^active: ring settled, share 0\.\d+, done$/);
    // It holds its share again: two copies of each of the 180 live keys among the three.
    await expect.poll(() => keys(nodes), { timeout: 30_000 }).toBe(360);
    expect(await metric(n1, 'kvstore_storage_keys')).toBeGreaterThan(0);
    const c = await openClient(n1);
    for (let i = 0; i < 200; i++) {
      const k = String(i).padStart(3, '0');
      expect(await c.call(`GET r:${k}`)).toBe(i < 20 ? 'NOT_FOUND' : `v${i}`);
    }
  }, 120_000);

  it('refuses to decommission the last member', async () => {
    const [only] = await startStaticCluster(1);
    const res = await fetch(`http://${only!.host}:9090/admin/decommission`, { method: 'POST' });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/no other member/);
  });
});
