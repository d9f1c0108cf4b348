// A full disk holds up only the data moves that need it: a member on a full disk still hands its
// data off (its stream cursor, its only write, waits in memory), while a hand-off to a member
// whose disk is full waits for it, says so once (log, metric, kvctl status), and goes on by
// itself once there is room.

import { execFile } from 'node:child_process';
import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { readStateDoc, Storage } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  openClient,
  peersOf,
  restart,
  spawnDnsMember,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, logged, ROOT, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

const run = promisify(execFile);

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await cleanup();
  unmountAll();
  for (const close of closers.splice(0)) await close();
});

/** Writes are refused below 8 MiB free; log segments of 1 MiB. */
const ARGS = ['--min-free-disk-bytes', String(8 << 20), '--wal-segment-bytes', String(1 << 20)];
const KEYS = 300;
/** How long a condition is polled for (ring changes take seconds under load). */
const WAIT_MS = 60_000;

/** Fills the file system of `dir` until 4 MiB are free (below ARGS' guard); returns the file. */
function fill(dir: string): string {
  const s = statfsSync(dir);
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (4 << 20)));
  return filler;
}

/** Three members, kvstore-0 on a 48 MiB tmpfs of its own, holding KEYS keys (RF 3: all of them). */
async function cluster(): Promise<{ fs: string; nodes: [ClusterNode, ClusterNode, ClusterNode] }> {
  const fs = mountTmpfs(48 << 20);
  const nodes = await startStaticCluster(3, ARGS, [join(fs, 'data'), tempDir(), tempDir()]);
  const c = await openClient(nodes[0]!);
  for (let i = 0; i < KEYS; i++) expect(await c.call(`PUT k${i} v${i}`)).toBe('OK');
  return { fs, nodes: nodes as [ClusterNode, ClusterNode, ClusterNode] };
}

/** Fills kvstore-0's disk and waits until it refuses writes. */
async function fillDisk(fs: string, node: ClusterNode): Promise<string> {
  const filler = fill(fs);
  await until(
    async () => (await metric(node, 'kvstore_storage_writable')) === 0,
    WAIT_MS,
    `${node.name} refuses writes`,
    100,
  );
  return filler;
}

const admin = (n: ClusterNode) => `http://${n.host}:${n.proc.httpPort}/admin/decommission`;
const decommissionStatus = async (n: ClusterNode) =>
  ((await (await fetch(admin(n))).json()) as { status: string }).status;
const said = (n: ClusterNode, prefix: string) =>
  n.proc.logs.filter((l) => String(l.msg).startsWith(prefix));

/**
 * The lines said() finds, once there is one: a line comes on stdout, which may reach the test
 * after an HTTP or client answer the node gave later.
 */
async function saidOnce(n: ClusterNode, prefix: string): Promise<Record<string, unknown>[]> {
  await logged(n.proc, (l) => String(l.msg).startsWith(prefix));
  return said(n, prefix);
}

async function kvctlStatus(n: ClusterNode): Promise<string> {
  const cli = join(ROOT, 'src/cli/main.ts');
  const args = ['--host', n.host, '--http-port', String(n.proc.httpPort), 'status'];
  return (await run(process.execPath, [cli, ...args])).stdout;
}

async function expectAllKeys(n: ClusterNode): Promise<void> {
  const c = await openClient(n);
  for (let i = 0; i < KEYS; i++) expect(await c.call(`GET k${i}`)).toBe(`v${i}`);
}

describe('data moves while a disk is full', { timeout: 150_000 }, () => {
  it('a member whose disk is full hands its data off all the same', async () => {
    const { fs, nodes } = await cluster();
    const [full, other] = nodes;
    const filler = await fillDisk(fs, full);

    expect((await fetch(admin(full), { method: 'POST' })).status).toBe(202);
    // Before: the stream failed at its first cursor write and started again every 5 s, for good.
    await until(
      async () => (await decommissionStatus(full)) === 'decommissioned',
      WAIT_MS,
      'the full member decommissioned',
      200,
    );
    expect(await saidOnce(full, 'stream cursor not saved')).toHaveLength(1);
    expect(said(full, 'stream failed')).toEqual([]);
    await expectAllKeys(other);

    // Room again: the status kept in memory is saved, and a restart still knows it handed off.
    unlinkSync(filler);
    await until(() => said(full, 'node status saved').length > 0, WAIT_MS, 'status saved', 100);
    await full.proc.stop();
    await restart(full, ['--peers', peersOf(nodes), ...ARGS]);
    expect(await decommissionStatus(full)).toBe('decommissioned');
  });

  it('a hand-off to a member whose disk is full waits, says so once, and goes on once there is room', async () => {
    const { fs, nodes } = await cluster();
    const [full, other, leaving] = nodes;
    const filler = await fillDisk(fs, full);

    expect((await fetch(admin(leaving), { method: 'POST' })).status).toBe(202);
    await until(
      async () => (await metric(leaving, 'kvstore_rebalance_waiting_members')) === 1,
      WAIT_MS,
      'the hand-off waits for the full member',
      100,
    );
    // Several batches refused (200, 400, 800 ms apart and more), one line said.
    await until(
      async () => (await metric(leaving, 'kvstore_rebalance_batch_retries_total')) >= 4,
      WAIT_MS,
      'batches retried',
      100,
    );
    const waits = await saidOnce(leaving, 'stream waits');
    expect(waits).toHaveLength(1);
    expect(waits[0]).toMatchObject({ target: full.name });
    expect(String(waits[0]!.reason)).toMatch(/disk full/);
    expect(said(leaving, 'stream batch not taken')).toEqual([]);
    // A member that cannot store the data does not take it over: the hand-off is not done.
    expect(await decommissionStatus(leaving)).toBe('decommissioning');
    expect((await clusterInfo(other)).ring.moving).toBe(true);
    // kvctl status through another member says who waits for whom and why.
    let text = '';
    await until(
      async () => {
        text = await kvctlStatus(other);
        return text.includes('waits for kvstore-0');
      },
      WAIT_MS,
      () => `kvctl status names the wait:\n${text}`,
      200,
    );
    expect(text).toMatch(
      /^kvstore-2's decommission waits for kvstore-0, which refuses writes \(not writable: disk full/m,
    );

    unlinkSync(filler);
    await until(
      async () => (await decommissionStatus(leaving)) === 'decommissioned',
      WAIT_MS,
      'the hand-off finished',
      200,
    );
    expect(await metric(leaving, 'kvstore_rebalance_waiting_members')).toBe(0);
    expect(await saidOnce(leaving, 'stream goes on')).toHaveLength(1);
    await expectAllKeys(full);
  });

  it('a member joins while a member that hands it data has a full disk', async () => {
    const SERVICE = 'kvstore-headless.test.svc.cluster.local';
    const dns = await startDnsServer();
    closers.push(() => dns.close());
    const block = loopbackBlock();
    const hosts = [1, 2, 3, 4].map((i) => `${block}.${i}`);
    dns.setA(SERVICE, hosts.slice(0, 3));
    const fs = mountTmpfs(48 << 20);
    const dirs = [join(fs, 'data'), tempDir(), tempDir(), tempDir()];
    const member = (i: number) =>
      spawnDnsMember(dns.port, SERVICE, `kvstore-${i}`, hosts[i]!, ARGS, dirs[i]).started;
    const nodes = await Promise.all([0, 1, 2].map(member));
    await waitAllUp(nodes);
    await waitSettled(nodes, ['kvstore-0', 'kvstore-1', 'kvstore-2']);
    const c = await openClient(nodes[0]!);
    for (let i = 0; i < KEYS; i++) expect(await c.call(`PUT k${i} v${i}`)).toBe('OK');
    const filler = await fillDisk(fs, nodes[0]!);

    // kvstore-0 holds keys kvstore-3 will own: its stream starts fresh (a cursor reset it cannot
    // write) and sends them. Before, it failed there and every 5 s after: the ring never settled.
    const joiner = await member(3);
    dns.setA(SERVICE, hosts);
    const four = [...nodes, joiner];
    await waitSettled(four, ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'], WAIT_MS);
    expect(await saidOnce(nodes[0]!, 'stream cursor not saved')).toHaveLength(1);
    expect(await metric(joiner, 'kvstore_storage_keys')).toBeGreaterThan(0);
    await expectAllKeys(joiner);

    // Room again, and no further change: what kvstore-0 kept in memory (its last cursor, the
    // settled ring) is saved within a retry, so a restart then finds them. Before, both waited
    // for the next batch or ring change (none came: 30 s without either save), and the store
    // kept the 3-member ring; a cursor kept so could be an earlier stream's of the same transfer
    // (A -> B -> A), which a restart would resume.
    const n0 = nodes[0]!;
    unlinkSync(filler);
    await until(
      () =>
        said(n0, 'stream cursor saved again').length > 0 &&
        said(n0, 'settled ring saved').length > 0,
      30_000,
      'kvstore-0 saved its cursor and ring',
      100,
    );
    await n0.proc.stop('SIGKILL');
    const store = Storage.open({ path: dirs[0]!, nodeName: n0.name });
    defer(() => store.close());
    expect(readStateDoc(store, 'settled-ring')).toMatchObject({
      members: ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'],
    });
    // The last cursor asked for: the reset once the ring settled (no stream resumes from it).
    expect(readStateDoc(store, 'stream:rebalance')).toBeNull();
  });
});
