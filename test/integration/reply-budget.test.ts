import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_TURN_BYTES } from '../../src/server/turn-budget.ts';
import {
  type ClusterNode,
  loopbackBlock,
  metric,
  openClient,
  startMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import type { LineClient } from '../helpers/line-client.ts';
import { untilStill } from '../helpers/node-memory.ts';
import { cleanup, type NodeProcess } from '../helpers/node-process.ts';
import { RawResp } from '../helpers/resp-tools.ts';
import {
  infoStat,
  peerRequestsReceived,
  resumeUntilAnswered,
  stop,
} from '../helpers/stopped-node.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;
const CLIENTS = 40;
const GETS = 400;
/** GETs and PUTs the reading client makes while the others do not read. */
const READER_ROUNDS = 20;
/**
 * --max-client-output-bytes, raised at start to what one connection may hold (16 MiB + 64 MiB +
 * 1 MiB): at most 81 MiB of replies in the making and about as much held in sockets.
 */
const BOUND = ['--max-client-output-bytes', String(64 * MiB)];
const EVICTED = 'kvstore_connections_rejected_total{reason="output_full"}';

/**
 * The most resident memory the node had at any moment (/proc VmHWM, kept by the kernel: a burst
 * that lasts milliseconds counts, which polling misses), and what it has now (VmRSS).
 */
function residentMemory(node: NodeProcess): { peak: number; now: number } {
  const status = readFileSync(`/proc/${node.child.pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { peak: kb('VmHWM'), now: kb('VmRSS') };
}

/** `n` connections to `node`, open and paused (they never read). */
async function quietClients(node: ClusterNode, n: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ port: node.proc.port, host: node.host }, () => {
            s.pause();
            resolve(s);
          });
          s.on('error', () => {});
          s.once('error', reject);
          defer(() => s.destroy());
        }),
    ),
  );
}

/** The 3-node test of the turn bound: readers, and GETs of 1 MiB each. */
const READERS = 20;
const READER_GETS = 4;
/** New connections made while the coordinator is stopped. */
const NEWCOMERS = 4;
const INFO = '*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n';

/**
 * A new connection to `node` that sends INFO once connected (the kernel completes a connection
 * in the listen queue of a stopped process: `connected`) and reads its total_net_output_bytes.
 */
function newcomer(node: ClusterNode): { connected: Promise<void>; written: Promise<number> } {
  let connected: () => void = () => {};
  const made = new Promise<void>((r) => {
    connected = r;
  });
  const written = new Promise<number>((resolve, reject) => {
    let data = '';
    const s: Socket = connect({ host: node.host, port: node.proc.port }, () => {
      s.write(INFO);
      connected();
    });
    defer(() => s.destroy());
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
      const head = /^\$(\d+)\r\n/.exec(data);
      if (head === null || data.length < head[0].length + Number(head[1]) + 2) return;
      resolve(Number(/total_net_output_bytes:(\d+)/.exec(data)?.[1] ?? Number.NaN));
      s.destroy();
    });
    s.once('error', reject);
  });
  return { connected: made, written };
}

/**
 * Three members with `args` (after --peers), settled, and eight values of 1 MiB, big0..big7,
 * written through the first; `env` runs each node under it.
 */
async function threeNodes(args: string[], env?: string[]): Promise<ClusterNode[]> {
  const block = loopbackBlock();
  const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
  const peers = hosts.map((h, i) => `kvstore-${i}=${h}:7946`).join(',');
  const nodes = await Promise.all(
    hosts.map((h, i) =>
      startMember(`kvstore-${i}`, h, ['--peers', peers, ...args], undefined, env),
    ),
  );
  await waitAllUp(nodes);
  await waitSettled(
    nodes,
    nodes.map((n) => n.name),
  );
  await putBig(nodes[0]!);
  return nodes;
}

/** Writes big0..big7, 1 MiB each, through `node`; returns the client that wrote them. */
async function putBig(node: ClusterNode): Promise<LineClient> {
  const setup = await openClient(node);
  const value = 'v'.repeat(MiB);
  for (let i = 0; i < 8; i++) expect(await setup.call(`PUT big${i} ${value}`)).toBe('OK');
  return setup;
}

describe('the node-wide budget of replies in the making', () => {
  it('bounds the coordinator while 40 clients that never read pipeline 400 GETs of 1 MiB at once through a 3-node cluster, and a reading client is served meanwhile', async () => {
    // As the image runs them: glibc gives freed large buffers back (MALLOC_MMAP_THRESHOLD_), so
    // the peak is what the node held, not what glibc kept of what it freed.
    const nodes = await threeNodes(BOUND, ['env', 'MALLOC_MMAP_THRESHOLD_=131072']);
    const coord = nodes[0]!;

    const stuck = await quietClients(coord, CLIENTS);
    const reader = await openClient(coord);
    const before = residentMemory(coord.proc).now;
    const gets = Buffer.from(Array.from({ length: GETS }, (_, i) => `GET big${i % 8}\n`).join(''));
    // Every client's requests reach the node together: written while it is stopped, read in
    // one pass once it goes on (the kernel holds them meanwhile).
    const pid = stop(coord);
    await Promise.all(stuck.map((s) => new Promise((done) => s.write(gets, done))));
    process.kill(pid, 'SIGCONT');
    // Meanwhile a client that reads its replies: 1 MiB GETs (the other owner sends a header,
    // this node reads the value) and small writes.
    let rounds = 0;
    let slowest = 0;
    const call = async (line: string) => {
      const t0 = performance.now();
      reader.send(`${line}\n`);
      const [reply] = await reader.lines(1, 60_000);
      slowest = Math.max(slowest, performance.now() - t0);
      return reply!;
    };
    const reading = (async () => {
      for (; rounds < READER_ROUNDS; rounds++) {
        expect((await call(`GET big${rounds % 8}`)).length).toBe(MiB);
        expect(await call(`PUT r${rounds} ${rounds}`)).toBe('OK');
      }
    })();
    const readFailure = reading.then(
      () => null,
      (err: unknown) => err,
    );
    const started = () => metric(coord, 'kvstore_requests_total{command="get"}');
    await untilStill(
      coord.proc,
      async () => (await started()) + (await metric(coord, EVICTED)) + rounds,
      'the node to stop starting GETs and closing clients',
      { stillMs: 2000, ms: 60_000 },
    );
    const { peak } = residentMemory(coord.proc);
    console.log(
      `peak +${((peak - before) / MiB).toFixed(0)} MiB, reader rounds ${rounds} (slowest reply ${slowest.toFixed(0)} ms), closed ${await metric(coord, EVICTED)}`,
    );
    // Without a node-wide budget the 40 clients start up to 16 GETs each at once: the peak
    // grew by 477 to 652 MiB (with the default bound, 128 MiB: 474 and 565); with it, by 203 to
    // 293 (216 to 422 with the default bound).
    expect(peak - before).toBeLessThan(360 * MiB);
    expect(await readFailure).toBe(null);
    expect(reader.closed).toBe(false);
  }, 120_000);

  it('answers a client that holds nothing of the budget while it is used up by GETs its peers have not answered, before any of them', async () => {
    // The GETs wait for a peer's answer as long as the test needs them to.
    const nodes = await threeNodes(['--peer-timeout-ms', '120000']);
    const [coord, ...others] = nodes as [ClusterNode, ...ClusterNode[]];
    // The coordinator reads its copy and waits for one of the stopped peers (R=2).
    for (const peer of others) stop(peer);
    // 12 clients of 32 GETs of 1 MiB: 16 run on each connection, 8 connections' fill the
    // node's 128 MiB, the rest wait.
    const heavy = await Promise.all(Array.from({ length: 12 }, () => openClient(coord)));
    const gets = Array.from({ length: 32 }, (_, i) => `GET big${i % 8}\n`).join('');
    for (const c of heavy) c.send(gets);
    const waiting = () => metric(coord, 'kvstore_client_reply_waiting_connections');
    await until(async () => (await waiting()) >= 1, 30_000, 'connections to wait for the budget');
    expect(await metric(coord, 'kvstore_client_reply_reserved_bytes')).toBeGreaterThanOrEqual(
      128 * MiB,
    );
    // A client holding nothing is answered now, not once the GETs before it are.
    const small = await openClient(coord);
    for (let i = 0; i < 10; i++) {
      small.send('PING\n');
      expect(await small.lines(1, 30_000)).toEqual(['PONG']);
    }
    expect(heavy.map((c) => c.socket.bytesRead)).toEqual(heavy.map(() => 0));
    expect(await waiting()).toBeGreaterThanOrEqual(1);
    // Once the peers answer, the GETs finish and the waiting connections go on (or are closed by
    // the output bound, as they read slower than 12 x 16 MiB arrive): none is left waiting.
    for (const peer of others) process.kill(peer.proc.child.pid!, 'SIGCONT');
    const reserved = () => metric(coord, 'kvstore_client_reply_reserved_bytes');
    await until(
      async () => (await waiting()) === 0 && (await reserved()) === 0,
      60_000,
      'the budget to be given back',
    );
    expect(heavy.some((c) => c.socket.bytesRead >= MiB)).toBe(true);
  }, 180_000);

  it('answers a client beside 20 that read 16 GETs of 1 MiB each, arrived together, after 8 MiB of their GETs and one more at most', async () => {
    const node = await startMember('kvstore-0', `${loopbackBlock()}.1`, []);
    const setup = await putBig(node);
    const readers = await Promise.all(Array.from({ length: 20 }, () => openClient(node)));
    const small = await RawResp.open(node.host, node.proc.port);
    defer(() => small.socket.destroy());
    // The node takes one connection a turn: each is its connection before it is stopped.
    await until(
      async () => (await metric(node, 'kvstore_connections')) >= 22,
      30_000,
      'the node to accept every client',
    );
    // INFO's count of commands started, as the node runs it.
    const started = () => infoStat(small, 'total_commands_processed');
    const before = await started();
    expect(before).toBeGreaterThan(0);
    // A round trip of another client after it: the node's poll since then dropped the small
    // client's socket from epoll's list of ready ones (level-triggered, it stays listed until a
    // later poll finds it idle), so its next request is read after the readers' that came first.
    expect(await setup.call('PING')).toBe('PONG');
    // Every reader's 16 GETs and the small client's INFO, last, reach the node together:
    // written while it is stopped, read in one pass once it goes on.
    const pid = stop(node);
    const gets = Array.from({ length: 16 }, (_, i) => `GET big${i % 8}`).join('\n');
    for (const r of readers) r.send(`${gets}\n`);
    await until(async () => readers.every((r) => r.socket.writableLength === 0), 10_000, 'sent');
    const answer = started();
    process.kill(pid, 'SIGCONT');
    const ahead = (await answer) - before - 1;
    console.log(`GETs started before the small client's INFO: ${ahead}`);
    // Before each connection's turn was bounded (connection.ts TURN_REPLY_BYTES), a reader ran
    // GETs as long as its socket took their replies, in the turn the INFO waited for: 83 GETs
    // ran first (and beside 40 readers, 368 MiB of replies in one turn, 3.3 s at load 18). With
    // that bound alone a turn ran one 1 MiB GET a reader (19-20 here); with the node's bound
    // over every connection (turn-budget.ts) it runs 8 MiB of them and one more at most.
    expect(ahead).toBeLessThanOrEqual(NODE_TURN_BYTES / MiB + 2);
    const all = await Promise.all(readers.map((r) => r.lines(16, 60_000)));
    expect(all.flat().every((l) => l.length === MiB)).toBe(true);
  }, 120_000);
});

describe('the node-wide bound of large replies in one event-loop turn', () => {
  it('writes 1 MiB GETs that complete together over several turns, and answers a new connection after the first', async () => {
    // The GETs wait for a peer's answer as long as the test needs them to.
    const nodes = await threeNodes(['--peer-timeout-ms', '120000']);
    const [coord, ...others] = nodes as [ClusterNode, ...ClusterNode[]];
    const readers = await Promise.all(Array.from({ length: READERS }, () => openClient(coord)));
    await until(
      async () => (await metric(coord, 'kvstore_connections')) >= READERS + 1,
      30_000,
      'the node to accept every reader',
    );
    const received = await peerRequestsReceived(others);
    // The coordinator reads its copy of each value and waits for a stopped peer's header (R=2).
    for (const peer of others) stop(peer);
    const gets = Array.from({ length: READER_GETS }, (_, i) => `GET big${i % 8}\n`).join('');
    const started = await metric(coord, 'kvstore_requests_total{command="get"}');
    for (const r of readers) r.send(gets);
    const asked = 'kvstore_peer_requests_in_flight{side="client"}';
    await until(
      async () =>
        (await metric(coord, 'kvstore_requests_total{command="get"}')) >=
          started + READERS * READER_GETS && (await metric(coord, asked)) >= 1,
      30_000,
      'every GET to start and wait for a peer',
    );
    expect(readers.map((r) => r.socket.bytesRead)).toEqual(readers.map(() => 0));
    const inFlight = await metric(coord, asked);
    const before = await newcomer(coord).written;
    // The peers answer while the coordinator is stopped: every header reaches it at once.
    const pid = stop(coord);
    await resumeUntilAnswered(others, received, inFlight, 30_000);
    // New clients wait in the listen queue; the node takes one a turn once it goes on, and reads
    // its INFO in the turn after: the first INFO says what the node wrote in its first turn.
    const infos = Array.from({ length: NEWCOMERS }, () => newcomer(coord));
    await Promise.all(infos.map((i) => i.connected));
    process.kill(pid, 'SIGCONT');
    const written = (await Promise.all(infos.map((i) => i.written)))
      .map((b) => b - before)
      .sort((a, b) => a - b);
    console.log(
      `MiB written before each new client's INFO: ${written.map((b) => (b / MiB).toFixed(1)).join(', ')}`,
    );
    // Before the bound (turn-budget.ts) the turn that took the headers wrote every reply: 80 MiB
    // before the first new client's INFO ran. Now a turn writes 8 MiB and one reply at most.
    expect(written[0]!).toBeLessThanOrEqual(NODE_TURN_BYTES + 2 * MiB);
    const all = await Promise.all(readers.map((r) => r.lines(READER_GETS, 60_000)));
    expect(all.flat().every((l) => l.length === MiB)).toBe(true);
  }, 180_000);
});
