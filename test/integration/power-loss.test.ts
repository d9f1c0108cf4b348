// Power loss, not only process crashes: nodes whose data directories are on powerlossfs lose
// every write they did not sync when the power is cut; every acknowledged write must survive.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.ts';
import {
  type ClusterNode,
  loopbackBlock,
  restart,
  startMember,
  waitAllUp,
  waitFormed,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import {
  type CutReport,
  diskWithDataDir,
  type PowerlossDisk,
  usePowerlossfs,
} from '../helpers/powerloss.ts';
import { readAll, until, WriteLog, writeLoad } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

async function client(host: string, port: number): Promise<KvClient> {
  const c = await KvClient.connect({ host, port, timeoutMs: 10_000 });
  defer(() => c.destroy());
  return c;
}

/** Unmounts and mounts again: the machine is back, with what its disk kept. */
async function powerOn(disk: PowerlossDisk): Promise<void> {
  await disk.unmount();
  await disk.mount();
}

/**
 * Values of 400..4400 bytes: each round writes several 4 MiB log segments, so segments are
 * retired (deleted or recycled) while LMDB holds their writes: only LMDB's own sync keeps those.
 */
const SCALE = 4;

const keysOf = (writer: number, n: number) =>
  Array.from({ length: n }, (_, i) => `power:${writer}:${String(i).padStart(3, '0')}`);

// Each round cuts with another seed; keep is the chance an unsynced page write reached the disk
// anyway (0: none did; otherwise a random subset, as a disk reorders writes).
const ROUNDS = [
  { seed: 11, keep: 0 },
  { seed: 12, keep: 0.5 },
  { seed: 13, keep: 0.9 },
];

describe('power loss', () => {
  it('a single node keeps every acknowledged write and delete when the power is cut under load, and again at start-up', async () => {
    const { disk, dataDir } = await diskWithDataDir(binary());
    let node: NodeProcess = await startNodeProcess({ dataDir });
    const log = new WriteLog();
    const writers = [0, 1, 2, 3].map((w) => keysOf(w, 200));
    const lost: CutReport[] = [];
    for (const [round, { seed, keep }] of ROUNDS.entries()) {
      const conns = await Promise.all(writers.map(() => client('127.0.0.1', node.port)));
      const loads = conns.map((c, w) => writeLoad(c, writers[w]!, log, 64, SCALE));
      const target = log.acks + 3000 + round * 1000;
      await until(
        () => log.acks >= target,
        60_000,
        () => log.awaiting(target),
      );
      // The power goes: the disk keeps only what was synced, then the process is gone too.
      lost.push(await disk.cut(seed, keep));
      await node.stop('SIGKILL');
      await Promise.all(loads.map((l) => l.stop()));
      await powerOn(disk);
      node = await startNodeProcess({ dataDir });
      // And again as soon as it is up: the replayed log's segments are being retired and the
      // spare segment written behind the node's back.
      lost.push(await disk.cut(seed + 100, keep));
      await node.stop('SIGKILL');
      await powerOn(disk);
      node = await startNodeProcess({ dataDir });
      const read = await readAll(await client('127.0.0.1', node.port), log);
      expect({ round, bad: log.check(read) }).toEqual({ round, bad: [] });
    }
    // The cuts did take back writes the node had made but not synced.
    expect(lost.reduce((n, r) => n + r.pagesReverted, 0)).toBeGreaterThan(0);
    expect(log.errors).toBeGreaterThan(0); // writes were in flight at every cut
  }, 180_000);

  it('a node restarted after a SIGKILL that left its last log write unsynced starts again after a later power cut', async () => {
    // The killed process's last log group reached the file but not the disk (its O_DSYNC write
    // had not returned). The next start replays it from the page cache and seals that segment at
    // its end in the next one; unless the start makes it durable first, a power cut takes the
    // group back, the log has a hole before its last group, and the node refuses to start
    // (before the fix, 3 runs of 3: "write-ahead log damaged ... before its last group: 20
    // records would be lost"; chaos seed 26007 met it on a member killed, then cut).
    const { disk, dataDir } = await diskWithDataDir(binary());
    let node: NodeProcess = await startNodeProcess({ dataDir });
    const c1 = await client('127.0.0.1', node.port);
    for (let i = 0; i < 20; i++) await c1.put(`before:${i}`, `v${i}`);
    await disk.slow(5000);
    const unacked = c1.put('in-flight', 'x').catch(() => null); // its log write waits 5 s
    const wal = join(dataDir, 'wal');
    const inLog = () =>
      readdirSync(wal).some(
        (f) => !f.startsWith('spare') && readFileSync(join(wal, f)).includes('in-flight'),
      );
    await until(inLog, 4000, 'the log write in the file (its sync still waiting)');
    await node.stop('SIGKILL');
    await unacked;
    await disk.slow(0);
    node = await startNodeProcess({ dataDir }); // same disk, no power cut: the page cache holds it
    const c2 = await client('127.0.0.1', node.port);
    for (let i = 0; i < 20; i++) await c2.put(`after:${i}`, `v${i}`);
    await disk.cut(1, 0);
    await node.stop('SIGKILL');
    await powerOn(disk);
    node = await startNodeProcess({ dataDir });
    const c3 = await client('127.0.0.1', node.port);
    for (const k of ['before', 'after']) {
      for (let i = 0; i < 20; i++) expect(await c3.get(`${k}:${i}`)).toBe(`v${i}`);
    }
  }, 60_000);

  it('a 3-node cluster keeps every acknowledged write and delete when all three lose power at once', async () => {
    const block = loopbackBlock();
    const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
    const names = hosts.map((_, i) => `kvstore-${i}`);
    const peers = ['--peers', hosts.map((h, i) => `${names[i]}=${h}:7946`).join(',')];
    const disks = await Promise.all(hosts.map(() => diskWithDataDir(binary())));
    const nodes: ClusterNode[] = await Promise.all(
      hosts.map((h, i) => startMember(names[i]!, h, peers, disks[i]!.dataDir)),
    );
    await waitFormed(nodes);
    const log = new WriteLog();
    // One writer per node, each on its own keys: a key's writes go through one coordinator.
    const writers = nodes.map((_, w) => keysOf(w, 100));
    const lost: CutReport[] = [];
    for (const [round, { seed, keep }] of ROUNDS.slice(0, 2).entries()) {
      const conns = await Promise.all(nodes.map((n) => client(n.host, n.proc.port)));
      const loads = conns.map((c, w) => writeLoad(c, writers[w]!, log, 32, SCALE));
      const target = log.acks + 2500;
      await until(
        () => log.acks >= target,
        60_000,
        () => log.awaiting(target),
      );
      lost.push(...(await Promise.all(disks.map(({ disk }, i) => disk.cut(seed * 10 + i, keep)))));
      await Promise.all(nodes.map((n) => n.proc.stop('SIGKILL')));
      await Promise.all(loads.map((l) => l.stop()));
      await Promise.all(disks.map(({ disk }) => powerOn(disk)));
      await Promise.all(nodes.map((n) => restart(n, peers)));
      await waitAllUp(nodes, 20_000);
      for (const n of nodes) {
        const read = await readAll(await client(n.host, n.proc.port), log);
        expect({ round, node: n.name, bad: log.check(read) }).toEqual({
          round,
          node: n.name,
          bad: [],
        });
      }
    }
    expect(lost.reduce((n, r) => n + r.pagesReverted, 0)).toBeGreaterThan(0);
    expect(log.errors).toBeGreaterThan(0);
  }, 180_000);
});
