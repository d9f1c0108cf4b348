// A disk that hangs is not a failed one: nothing ever errors. One member's data directory is on
// powerlossfs with every sync hung (a dead network volume, a stuck controller) while its event
// loop keeps answering probes. It must notice (--storage-stall-timeout-ms), say so (/readyz, a
// metric, a log line, ERR STORAGE_STALLED to its own clients, its hello), be routed around by
// its peers (hints, no waits on it) while it stays a member, and catch up once the disk answers.

import { expect, it } from 'vitest';
import {
  type ClusterInfo,
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  NO_ANTI_ENTROPY,
  openClient,
  startMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { logged, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

/** The stalled member's --storage-stall-timeout-ms. */
const STALL_MS = 1500;

async function readyz(n: ClusterNode): Promise<number> {
  return (await fetch(`http://${n.host}:${n.proc.httpPort}/readyz`)).status;
}

/** A client of a node started alone on 127.0.0.1, closed when the test ends. */
async function clientOf(node: NodeProcess): Promise<LineClient> {
  const c = await LineClient.connect(node.port, '127.0.0.1');
  defer(() => c.close());
  return c;
}

function memberOf(info: ClusterInfo, name: string) {
  return info.members.find((m) => m.name === name) as
    | (ClusterInfo['members'][number] & { storageStalled?: boolean })
    | undefined;
}

/**
 * Writes `count` keys `prefix:i` through `c` one after the other; records each acknowledged one
 * in `acked`, and resolves with the replies that were not OK.
 */
async function writeSeq(
  c: LineClient,
  prefix: string,
  count: number,
  acked: Map<string, string>,
): Promise<string[]> {
  const bad: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = `${prefix}:${i}`;
    c.send(`PUT ${key} v-${key}\r\n`);
    const [reply] = await c.lines(1, 30_000);
    if (reply === 'OK') acked.set(key, `v-${key}`);
    else bad.push(reply!);
  }
  return bad;
}

it('a member whose disk hangs is not ready, refuses its clients at once, is down for data to its peers, and catches up once the disk answers', async () => {
  const block = loopbackBlock();
  const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
  const names = hosts.map((_, i) => `kvstore-${i}`);
  const args = [
    '--peers',
    hosts.map((h, i) => `${names[i]}=${h}:7946`).join(','),
    '--hint-interval-ms',
    '200',
    // Hints alone bring the stalled member up to date.
    ...NO_ANTI_ENTROPY,
  ];
  // The short bound on the member whose disk hangs only: the others keep the default (a loaded
  // machine's slow sync is not a stall).
  const stallArgs = ['--storage-stall-timeout-ms', String(STALL_MS)];
  const { disk, dataDir } = await diskWithDataDir(binary());
  const nodes: ClusterNode[] = await Promise.all(
    hosts.map((h, i) =>
      i === 2
        ? startMember(names[i]!, h, [...args, ...stallArgs], dataDir)
        : startMember(names[i]!, h, args),
    ),
  );
  await waitAllUp(nodes);
  await waitSettled(nodes, names);
  const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
  const acked = new Map<string, string>();
  const [c0, c1, c2] = await Promise.all(nodes.map((n) => openClient(n)));
  expect(await writeSeq(c0!, 'before', 50, acked)).toEqual([]);

  await disk.hang();
  // Writes through the healthy members replicate to the hung one: its log's sync never returns.
  // They keep being acknowledged (W=2) while it notices.
  const during = writeSeq(c0!, 'during', 400, acked);
  await until(async () => (await readyz(n2)) === 503, 30_000, 'the hung member is not ready', 50);
  expect(await metric(n2, 'kvstore_storage_stalled')).toBe(1);
  expect(await metric(n2, 'kvstore_storage_outstanding_seconds')).toBeGreaterThan(STALL_MS / 1000);
  await logged(n2.proc, 'storage: disk stalled: refusing commands, not ready');

  // Its own clients get a clear error at once, not a write that waits on the disk.
  c2!.send('PUT mine v\r\nGET before:1\r\n');
  const refused = await c2!.lines(2, 5000);
  for (const r of refused) expect(r).toMatch(/^ERR STORAGE_STALLED storage: stalled: /);

  // Its peers learn it from its hello: down for data, still a member of the ring.
  for (const n of [n0, n1]) {
    await until(
      async () => {
        return memberOf(await clusterInfo(n), 'kvstore-2')?.storageStalled === true;
      },
      30_000,
      `${n.name} sees kvstore-2's disk stalled`,
      50,
    );
    const m = memberOf(await clusterInfo(n), 'kvstore-2')!;
    expect({ state: m.state, inRing: m.share > 0 }).toEqual({ state: 'up', inRing: true });
  }
  expect(await during).toEqual([]);

  // From now on a write through a healthy member is not sent to the hung one at all (it refuses
  // none, no request to it times out): each keeps a hint for it instead.
  const timeouts = async () =>
    (await metric(n0, 'kvstore_peer_errors_total{code="PEER_TIMEOUT",side="client"}')) || 0;
  const refusals = async () =>
    (await metric(n2, 'kvstore_peer_errors_total{code="STORAGE_STALLED",side="server"}')) || 0;
  const [timeoutsBefore, refusalsBefore] = [await timeouts(), await refusals()];
  const hintsBefore = await metric(n1, 'kvstore_hints_stored');
  expect(await writeSeq(c1!, 'after', 200, acked)).toEqual([]);
  await until(
    async () => {
      return (await metric(n1, 'kvstore_hints_stored')) === hintsBefore + 200;
    },
    30_000,
    'kvstore-1 keeps a hint of each write for kvstore-2',
    50,
  );
  expect(await writeSeq(c0!, 'after0', 100, acked)).toEqual([]);
  expect({ timeouts: await timeouts(), refusals: await refusals() }).toEqual({
    timeouts: timeoutsBefore,
    refusals: refusalsBefore,
  });
  // Reads through the healthy members answer from the others.
  c0!.send('GET after:7\r\n');
  expect(await c0!.lines(1, 5000)).toEqual(['v-after:7']);

  // The disk answers again: the member takes commands again by itself, its peers deliver what
  // they kept for it, and every acknowledged write is there, on it too.
  await disk.resume();
  await until(async () => (await readyz(n2)) === 200, 30_000, 'the member is ready again', 50);
  expect(await metric(n2, 'kvstore_storage_stalled')).toBe(0);
  await logged(n2.proc, 'storage: disk answers again');
  for (const n of [n0, n1]) {
    await until(
      async () => {
        const stalled = memberOf(await clusterInfo(n), 'kvstore-2')?.storageStalled;
        return stalled === false && (await metric(n, 'kvstore_hints_stored')) === 0;
      },
      30_000,
      `${n.name} delivered its hints`,
      50,
    );
  }
  for (const c of [c0!, c1!, c2!]) {
    const keys = [...acked.keys()];
    c.send(keys.map((k) => `GET ${k}\r\n`).join(''));
    const values = await c.lines(keys.length, 30_000);
    expect(values).toEqual(keys.map((k) => acked.get(k)));
  }
  // RF 3 over 3 members: each holds every key.
  const held = await Promise.all(nodes.map((n) => metric(n, 'kvstore_storage_keys')));
  expect(held[2]).toBe(held[0]);
  expect(held[2]).toBeGreaterThanOrEqual(acked.size);
}, 180_000);

it('a node alone on a disk that hangs answers the writes waiting on it with ERR STORAGE_STALLED, and after the disk answers and a SIGKILL keeps every acknowledged write', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const args = ['--storage-stall-timeout-ms', String(STALL_MS)];
  const node = await startNodeProcess({ dataDir, args });
  const c = await clientOf(node);
  const acked = new Map<string, string>();
  expect(await writeSeq(c, 'before', 20, acked)).toEqual([]);

  await disk.hang();
  // The write's log sync hangs: it is answered once that is a stall, not when the disk answers.
  c.send('PUT hung v\r\n');
  expect((await c.lines(1, 20_000))[0]).toMatch(/^ERR STORAGE_STALLED storage: stalled: /);
  c.send('PUT next v\r\nGET before:3\r\n');
  for (const r of await c.lines(2, 5000)) expect(r).toMatch(/^ERR STORAGE_STALLED /);
  const http = `http://127.0.0.1:${node.httpPort}`;
  expect((await fetch(`${http}/readyz`)).status).toBe(503);

  await disk.resume();
  await until(
    async () => {
      return (await fetch(`${http}/readyz`)).status === 200;
    },
    30_000,
    'the node is ready again',
    50,
  );
  expect(await writeSeq(c, 'after', 20, acked)).toEqual([]);
  await node.stop('SIGKILL');
  const again = await startNodeProcess({ dataDir, args });
  const c2 = await clientOf(again);
  const keys = [...acked.keys()];
  c2.send(keys.map((k) => `GET ${k}\r\n`).join(''));
  expect(await c2.lines(keys.length, 10_000)).toEqual(keys.map((k) => acked.get(k)));
}, 60_000);

it('a node that takes no writes finds its disk hung too (the disk probe), and is ready again once it answers', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const node = await startNodeProcess({
    dataDir,
    args: ['--storage-stall-timeout-ms', String(STALL_MS)],
  });
  const http = `http://127.0.0.1:${node.httpPort}`;
  const ready = async () => (await fetch(`${http}/readyz`)).status;
  expect(await ready()).toBe(200);
  await disk.hang();
  // No command is sent: before the probe, nothing was out to time and the node stayed ready.
  await until(async () => (await ready()) === 503, 20_000, 'the idle node not ready', 50);
  const stalled = await logged(node, 'storage: disk stalled: refusing commands, not ready');
  expect(stalled.what).toBe('disk probe');
  await disk.resume();
  await until(async () => (await ready()) === 200, 20_000, 'the node ready again', 50);
  const c = await clientOf(node);
  expect(await c.call('PUT after v')).toBe('OK');
}, 60_000);

it('a node whose disk hangs ends on SIGTERM within the shutdown bound, though a sync never returns', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const shutdownMs = 2000;
  const args = [
    ...['--storage-stall-timeout-ms', String(STALL_MS)],
    ...['--shutdown-timeout-ms', String(shutdownMs)],
  ];
  const node = await startNodeProcess({ dataDir, args });
  const c = await clientOf(node);
  expect(await c.call('PUT before v')).toBe('OK');
  await disk.hang();
  c.send('PUT hung v\r\n');
  expect((await c.lines(1, 20_000))[0]).toMatch(/^ERR STORAGE_STALLED /);

  node.child.kill('SIGTERM');
  const exited = await Promise.race([
    node.exited,
    new Promise((r) => setTimeout(() => r('still running'), shutdownMs + 5000).unref()),
  ]);
  // The stop waits for the log's last sync, which hangs, until its deadline, and exits 1 then.
  // Before, the exit itself waited for the thread blocked in that sync (libuv joins its pool):
  // still running, for as long as the disk hung.
  expect(exited).toBe(1);
  // The line comes through the stdout pipe, which may be read after the exit is seen.
  await logged(node, 'shutdown overran its deadline, exiting', 5000);
  await disk.resume();
}, 60_000);

it("a node whose every thread of libuv's pool waits on the hung disk still writes its log lines", async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  // One pool thread: the first sync that hangs takes all of it. Before, log lines were written
  // by that pool (pino's asynchronous destination): none came out until the disk answered, and
  // one written just before an exit that replaces the process image (exitProcess) was lost.
  const node = await startNodeProcess({
    dataDir,
    args: ['--storage-stall-timeout-ms', String(STALL_MS)],
    env: { UV_THREADPOOL_SIZE: '1' },
  });
  const c = await clientOf(node);
  expect(await c.call('PUT before v')).toBe('OK');
  await disk.hang();
  c.send('PUT hung v\r\n');
  expect((await c.lines(1, 20_000))[0]).toMatch(/^ERR STORAGE_STALLED /);
  await logged(node, 'storage: disk stalled: refusing commands, not ready', 5000);
  await disk.resume();
}, 60_000);
