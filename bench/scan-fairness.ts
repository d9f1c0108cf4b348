// How long a client's PING waits while others loop big scans (src/net/turn-budget.ts, the node's
// scan records per turn): a node (or a 3-node cluster) holding --keys keys, N connections that
// each keep --depth scans in flight (`range`: an unpaged RANGE over every key; `prefix`: PREFIX
// with LIMIT 1000), and one client that PINGs one at a time, beside a new connection's PING every
// 500 ms. A measurement, not a test:
// `node bench/scan-fairness.ts [--mode range|prefix] [--clients 20] [--depth 4] [--keys 9000]
// [--seconds 10] [--nodes 1|3] [--script other/src/main.ts]`
// prints the PING's p50/p99/max, the new connections' PING, the scans answered per second and
// the node's CPU.

import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.ts';
import { Histogram } from './histogram.ts';
import {
  cleanupOnExit,
  cleanupSync,
  positiveInt,
  processCpuMs,
  runBench,
  type Server,
  SINGLE_NODE_ARGS,
  scrapeMetrics,
  startKvstore,
  stopServer,
  tempDir,
} from './procs.ts';

const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'range' },
    clients: { type: 'string', default: '20' },
    depth: { type: 'string', default: '4' },
    keys: { type: 'string', default: '9000' },
    seconds: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '1' },
    /** The nodes' entry module (another build's src/main.ts, to compare). */
    script: { type: 'string' },
    /** Client, HTTP and peer ports of every member (each has its own loopback address). */
    ports: { type: 'string', default: '27081,27090,27946' },
  },
});
const tool = 'scan-fairness';
const clients = positiveInt(tool, 'clients', values.clients);
const depth = positiveInt(tool, 'depth', values.depth);
const keyCount = positiveInt(tool, 'keys', values.keys);
const seconds = positiveInt(tool, 'seconds', values.seconds);
const ports = values.ports.split(',').map((p) => positiveInt(tool, 'ports', p)) as [
  number,
  number,
  number,
];
const SCAN =
  values.mode === 'prefix' ? 'PREFIX key: LIMIT 1000\n' : 'RANGE key:000000 key:999999\n';
/** Reply lines of one scan: a paged reply adds END / MORE. */
const SCAN_LINES = values.mode === 'prefix' ? 2 : 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (us: number) => (us / 1000).toFixed(1);

function open(node: Server): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: node.host, port: node.port }, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

/** Calls `onLine(line)` for each reply line on `s`. */
function onLines(s: Socket, onLine: (line: string) => void): void {
  let rest = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    const parts = (rest + d).split('\n');
    rest = parts.pop()!;
    for (const p of parts) onLine(p);
  });
}

/**
 * Writes key:000000 .. through `node`, 200 pipelined PUTs at a time; a PUT that failed (a peer
 * timed out on the loaded machine) is sent again.
 */
async function load(node: Server): Promise<void> {
  const s = await open(node);
  let replies: string[] = [];
  let wanted = 0;
  let done: () => void = () => {};
  onLines(s, (line) => {
    replies.push(line);
    if (replies.length === wanted) done();
  });
  let left = Array.from({ length: keyCount }, (_, i) => i);
  for (let tries = 0; left.length > 0; tries++) {
    if (tries === 5) throw new Error(`${tool}: ${left.length} PUTs failed five times`);
    const failed: number[] = [];
    for (let at = 0; at < left.length; at += 200) {
      const batch = left.slice(at, at + 200);
      replies = [];
      wanted = batch.length;
      const answered = new Promise<void>((r) => {
        done = r;
      });
      s.write(batch.map((i) => `PUT key:${String(i).padStart(6, '0')} v${i}\n`).join(''));
      await answered;
      replies.forEach((line, j) => {
        if (line !== 'OK') failed.push(batch[j]!);
      });
    }
    left = failed;
  }
  s.destroy();
}

/** N scanners keeping `depth` scans in flight each, until stop; scans answered. */
async function scanners(node: Server, stop: { done: boolean }) {
  let answered = 0;
  let wrong = 0;
  let firstError = '';
  const sockets = await Promise.all(Array.from({ length: clients }, () => open(node)));
  for (const s of sockets) {
    let lines = 0;
    s.on('error', () => {});
    onLines(s, (line) => {
      if (line.startsWith('ERR') && wrong++ === 0) firstError = line.slice(0, 200);
      if (++lines % SCAN_LINES !== 0) return;
      answered++;
      if (!stop.done) s.write(SCAN);
    });
    s.write(SCAN.repeat(depth));
  }
  return () => {
    for (const s of sockets) s.destroy();
    return { answered, wrong, firstError };
  };
}

/** PING one at a time on one connection until stop. */
async function pinger(node: Server, stop: { done: boolean }) {
  const s = await open(node);
  const hist = new Histogram();
  let answer: () => void = () => {};
  onLines(s, () => answer());
  while (!stop.done) {
    const t0 = performance.now();
    await new Promise<void>((r) => {
      answer = r;
      s.write('PING\n');
    });
    hist.record((performance.now() - t0) * 1e6);
  }
  s.destroy();
  return hist.summary();
}

/** Every 500 ms a new connection's first PING, timed from connect(). */
function newcomers(node: Server, stop: { done: boolean }) {
  const hist = new Histogram();
  const pending: Promise<void>[] = [];
  const timer = setInterval(() => {
    if (stop.done) return;
    const t0 = performance.now();
    pending.push(
      new Promise<void>((resolve) => {
        const s = connect({ host: node.host, port: node.port }, () => s.write('PING\n'));
        s.once('data', () => {
          hist.record((performance.now() - t0) * 1e6);
          s.destroy();
          resolve();
        });
        s.once('error', () => resolve());
      }),
    );
  }, 500);
  return async () => {
    clearInterval(timer);
    await Promise.all(pending);
    return hist.summary();
  };
}

async function main(): Promise<void> {
  // A stop (timeout's SIGTERM, ^C) or a crash stops the nodes too.
  cleanupOnExit();
  const root = tempDir(tmpdir(), 'kvstore-scan-fairness-');
  const opts = values.script === undefined ? {} : { script: values.script };
  const nodes =
    values.nodes === '3'
      ? await startCluster(root, 3, undefined, { ...opts, ports })
      : [await startKvstore(root, { ...opts, args: SINGLE_NODE_ARGS })];
  try {
    const node = nodes[0]!;
    await load(node);
    const stop = { done: false };
    const cpu0 = nodes.map((n) => processCpuMs(n.child.pid, TICKS));
    const finishScans = await scanners(node, stop);
    await sleep(1000); // the scans under way
    const t0 = performance.now();
    const pings = pinger(node, stop);
    const finishNew = newcomers(node, stop);
    await sleep(seconds * 1000);
    stop.done = true;
    const elapsed = (performance.now() - t0) / 1000;
    const { answered, wrong, firstError } = finishScans();
    const ping = await pings;
    const fresh = await finishNew();
    const cpu = nodes.map((n, i) => processCpuMs(n.child.pid, TICKS) - cpu0[i]!);
    const load1 = (await import('node:os')).loadavg()[0]!.toFixed(1);
    let waits = 'n/a';
    if (values.nodes !== '3') {
      // Metrics only for a node started with a known HTTP port (a 3-node cluster's).
    } else {
      const m = await scrapeMetrics(node.host, ports[1]);
      waits = String(m.get('kvstore_scan_turn_waits_total') ?? 'n/a');
    }
    console.log(
      JSON.stringify({
        mode: values.mode,
        nodes: nodes.length,
        clients,
        depth,
        keys: keyCount,
        script: values.script ?? 'src/main.ts',
        pingP50ms: ms(ping.p50Us),
        pingP99ms: ms(ping.p99Us),
        pingMaxms: ms(ping.maxUs),
        pings: ping.count,
        newP50ms: ms(fresh.p50Us),
        newMaxms: ms(fresh.maxUs),
        scansPerSec: (answered / elapsed).toFixed(1),
        scanErrors: wrong,
        firstError,
        cpuSecondsPerNode: cpu.map((c) => (c / 1000).toFixed(1)),
        scanWaits: waits,
        load1,
      }),
    );
  } finally {
    await Promise.all(nodes.map(stopServer));
    cleanupSync();
  }
}

runBench(main);
