// How long a client that reads small keys waits for its replies while others hold the node's
// budget of replies in the making (src/server/reply-budget.ts): a 3-node cluster, and beside one
// client that GETs 100-byte values one at a time, either (`read`) N clients that each keep
// --depth GETs of a 1 MiB value in flight and read their replies, or (`stuck`) N clients that
// pipeline --gets GETs of a 1 MiB value and never read (one closed by the node is replaced at
// once, so N are always there). A measurement, not a test:
// `node bench/reply-fairness.ts [--mode read|stuck|both] [--clients 40] [--seconds 10]
// [--node-flags='--max-client-output-bytes 16777216'] [--script other/src/main.ts] [--trace]
// [--nodes 1]` (--nodes 1: one node, RF=1, every GET answered from its own copy)
// prints the small client's p50/p99/max, what the large readers got, the coordinator's
// resident peak (VmHWM) over its size before, and the clients the output bound closed.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.ts';
import { Histogram } from './histogram.ts';
import {
  cleanupSync,
  positiveInt,
  processCpuMs,
  runBench,
  type Server,
  scrapeMetrics,
  stopServer,
  tempDir,
  until,
} from './procs.ts';
import { respCall } from './respload.ts';

const MiB = 1024 * 1024;
/** Clock ticks a second, the unit of /proc/<pid>/stat's CPU times. */
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const BIG_KEYS = 8;
const SMALL_KEYS = 100;
const SMALL_BYTES = 100;
const EVICTED = 'kvstore_connections_rejected_total{reason="output_full"}';
/**
 * Connections the node accepted since it started: a count that only grows (the open ones,
 * kvstore_connections, still fall as the last mode's clients close).
 */
const ACCEPTED = 'kvstore_connections_accepted_total';
const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'both' },
    clients: { type: 'string', default: '40' },
    depth: { type: 'string', default: '16' },
    gets: { type: 'string', default: '400' },
    seconds: { type: 'string', default: '10' },
    /** More flags for every node, space-separated (e.g. a smaller --max-client-output-bytes). */
    'node-flags': { type: 'string', default: '' },
    /** Prints the coordinator's reply metrics every second. */
    trace: { type: 'boolean', default: false },
    /** Members: 3 (RF=3 W=2 R=2), or 1 (RF=1: the coordinator's local path alone). */
    nodes: { type: 'string', default: '3' },
    /** The nodes' entry module (another build's src/main.ts, to compare). */
    script: { type: 'string' },
    /** Client, HTTP and peer ports of every member (each has its own loopback address). */
    ports: { type: 'string', default: '26081,26090,26946' },
  },
});
const tool = 'reply-fairness';
const clients = positiveInt(tool, 'clients', values.clients);
const depth = positiveInt(tool, 'depth', values.depth);
const seconds = positiveInt(tool, 'seconds', values.seconds);
const ports = values.ports.split(',').map((p) => positiveInt(tool, 'ports', p));
if (ports.length !== 3) throw new Error(`${tool}: --ports takes client,http,peer`);
/** The run's end: `done` once the time is up, `stopped` called then. */
interface Stop {
  done: boolean;
  stopped?: () => void;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The node's resident memory now and at its peak (/proc VmRSS, VmHWM). */
function resident(node: Server): { now: number; peak: number } {
  const status = readFileSync(`/proc/${node.child.pid}/status`, 'utf8');
  const kb = (f: string) => Number(new RegExp(`${f}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

/** An open text-protocol connection to `node`. */
function open(node: Server): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: node.host, port: node.port }, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

/** Counts reply lines on `s` (values hold no newline), calling `onReply` per line. */
function onLines(s: Socket, onReply: (bytes: number) => void): void {
  let bytes = 0;
  s.on('data', (d: Buffer) => {
    let from = 0;
    for (let nl = d.indexOf(10); nl !== -1; nl = d.indexOf(10, from)) {
      onReply(bytes + nl - from);
      bytes = 0;
      from = nl + 1;
    }
    bytes += d.length - from;
  });
}

/** The small client: GET small<i>, one at a time, until `stop`; each reply's wait recorded. */
async function smallClient(s: Socket, stop: Stop) {
  const hist = new Histogram();
  let wrong = 0;
  let i = 0;
  let sentAt = 0;
  let resolveReply: (() => void) | null = null;
  s.on('error', () => {});
  onLines(s, (bytes) => {
    hist.record((performance.now() - sentAt) * 1e6);
    sentAt = -1;
    if (bytes !== SMALL_BYTES) wrong++;
    resolveReply?.();
  });
  const stopped = new Promise<void>((r) => {
    stop.stopped = r;
  });
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  while (!stop.done && !s.destroyed) {
    const reply = new Promise<void>((r) => {
      resolveReply = r;
    });
    sentAt = performance.now();
    s.write(`GET small${i++ % SMALL_KEYS}\n`);
    await Promise.race([reply, stopped, closed]);
  }
  // A request still unanswered at the end counts what it waited so far.
  if (sentAt >= 0) hist.record((performance.now() - sentAt) * 1e6);
  s.destroy();
  return { latency: hist.summary(), wrong, closed: s.destroyed && !stop.done };
}

/**
 * Resolves once the node accepted `n` client connections since it started (ACCEPTED). Node
 * takes one connection off the listen queue per event-loop turn, and a turn beside 40 large
 * readers took 0.5-2 s at load 20: a client that connected behind them was accepted 10 s later,
 * and measured as a GET that waited 10 s (the s29 A/B's `read` rows).
 */
async function accepted(node: Server, n: number): Promise<void> {
  await until(tool, `${n} connections accepted`, 60_000, async () => {
    const m = await scrapeMetrics(node.host, ports[1]!);
    return (m.get(ACCEPTED) ?? 0) >= n;
  });
}

/** N clients keeping `depth` GETs of 1 MiB in flight each, reading; MiB received in all. */
async function readers(node: Server, stop: Stop, connected: number) {
  let received = 0;
  const sockets = await Promise.all(Array.from({ length: clients }, () => open(node)));
  // Every reader is a connection of the node before any sends: the load starts at once.
  await accepted(node, connected + clients);
  sockets.forEach((s, c) => {
    let n = c;
    s.on('error', () => {});
    onLines(s, (bytes) => {
      received += bytes;
      if (!stop.done) s.write(`GET big${n++ % BIG_KEYS}\n`);
    });
    s.write(Array.from({ length: depth }, () => `GET big${n++ % BIG_KEYS}\n`).join(''));
  });
  return {
    finish: () => {
      for (const s of sockets) s.destroy();
      return received / MiB;
    },
  };
}

/** N clients that pipeline --gets GETs of 1 MiB and never read, each replaced once closed. */
function stuck(node: Server, stop: Stop) {
  const req = Buffer.from(
    Array.from({ length: Number(values.gets) }, (_, i) => `GET big${i % BIG_KEYS}\n`).join(''),
  );
  const sockets = new Set<Socket>();
  const one = () => {
    const s = connect({ host: node.host, port: node.port }, () => {
      s.pause();
      s.write(req);
    });
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => {
      sockets.delete(s);
      if (!stop.done) one();
    });
  };
  for (let i = 0; i < clients; i++) one();
  return {
    finish: () => {
      for (const s of sockets) s.destroy();
      return 0;
    },
  };
}

const ms = (us: number) => (us / 1000).toFixed(1);

/** Milliseconds from connect() to the PONG of a new connection's first PING (accept included). */
function newcomer(node: Server): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = connect({ host: node.host, port: node.port }, () => s.write('PING\n'));
    s.once('data', () => {
      resolve(performance.now() - t0);
      s.destroy();
    });
    s.once('error', () => resolve(Number.NaN));
  });
}

/** Milliseconds a /metrics scrape takes on a new connection (as Prometheus makes one). */
function scrape(node: Server): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = get({ host: node.host, port: ports[1], path: '/metrics', agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(performance.now() - t0));
    });
    req.once('error', () => resolve(Number.NaN));
  });
}

/**
 * New clients while the load runs: every 500 ms a new connection's first PING and a /metrics
 * scrape on a new connection, each timed from connect() (a node that takes one connection per
 * event-loop turn makes them wait for its turns); summarized once `stop` is done.
 */
function newcomers(node: Server, stop: Stop) {
  const pings = new Histogram();
  const scrapes = new Histogram();
  const pending: Promise<void>[] = [];
  let failed = 0;
  const into = (h: Histogram) => (t: number) => {
    if (Number.isFinite(t)) h.record(t * 1e6);
    else failed++;
  };
  const timer = setInterval(() => {
    if (stop.done) return;
    pending.push(newcomer(node).then(into(pings)));
    pending.push(scrape(node).then(into(scrapes)));
  }, 500);
  return async () => {
    clearInterval(timer);
    await Promise.all(pending);
    return { pings: pings.summary(), scrapes: scrapes.summary(), failed };
  };
}

async function run(mode: 'read' | 'stuck', nodes: Server[]) {
  const coord = nodes[0]!;
  const before = resident(coord);
  const cpuBefore = processCpuMs(coord.child.pid, TICKS);
  const closedBefore = (await scrapeMetrics(coord.host, ports[1]!)).get(EVICTED) ?? 0;
  const stop: Stop = { done: false };
  // The small client is a connection of the node before the load's: it measures its GETs' waits,
  // not its wait for the node to accept it (accepted()).
  const connected = (await scrapeMetrics(coord.host, ports[1]!)).get(ACCEPTED) ?? 0;
  const smallSocket = await open(coord);
  await accepted(coord, connected + 1);
  const load = mode === 'read' ? await readers(coord, stop, connected + 1) : stuck(coord, stop);
  const small = smallClient(smallSocket, stop);
  const joiners = newcomers(coord, stop);
  for (let t = 0; t < seconds; t++) {
    await sleep(1000);
    if (values.trace) {
      // The node's HTTP port waits for its event loop too: a scrape may fail under the load.
      const m = await scrapeMetrics(coord.host, ports[1]!).catch(() => null);
      if (m === null) {
        console.log(`  ${t + 1} s: metrics unanswered`);
        continue;
      }
      const mib = (k: string) => ((m.get(k) ?? 0) / MiB).toFixed(0);
      console.log(
        `  ${t + 1} s: in the making ${mib('kvstore_client_reply_reserved_bytes')} MiB (${m.get('kvstore_client_reply_waiting_connections')} waiting), held ${mib('kvstore_client_output_bytes')} MiB, GETs ${m.get('kvstore_requests_total{command="get"}')}, closed ${m.get(EVICTED)}`,
      );
    }
  }
  stop.done = true;
  stop.stopped?.();
  const got = load.finish();
  const { latency, wrong, closed } = await small;
  const { pings, scrapes, failed } = await joiners();
  const m = await scrapeMetrics(coord.host, ports[1]!);
  const after = resident(coord);
  const cpu = (processCpuMs(coord.child.pid, TICKS) - cpuBefore) / 1000;
  console.log(
    `${mode}: small GETs ${latency.count} (wrong ${wrong}${closed ? ', CLOSED' : ''}) p50 ${ms(latency.p50Us)} ms, p99 ${ms(latency.p99Us)} ms, max ${ms(latency.maxUs)} ms; ` +
      `${mode === 'read' ? `large read ${(got / seconds).toFixed(0)} MiB/s (coordinator CPU ${(cpu / seconds).toFixed(2)} s/s, ${((cpu * 1000) / Math.max(got, 1)).toFixed(1)} ms/MiB); ` : ''}` +
      `coordinator peak ${(after.peak / MiB).toFixed(0)} MiB (before ${(before.now / MiB).toFixed(0)}), ` +
      `clients closed ${(m.get(EVICTED) ?? 0) - closedBefore}, waits ${m.get('kvstore_client_reply_waits_total')}`,
  );
  console.log(
    `  new connections: first PING p50 ${ms(pings.p50Us)} ms, max ${ms(pings.maxUs)} ms (${pings.count}); ` +
      `/metrics p50 ${ms(scrapes.p50Us)} ms, max ${ms(scrapes.maxUs)} ms (${scrapes.count}); failed ${failed}`,
  );
  await sleep(3000); // the closed clients' sockets and replies go before the next mode
}

async function main() {
  const root = tempDir(tmpdir(), 'kvstore-fairness-');
  const members = positiveInt(tool, 'nodes', values.nodes);
  if (members !== 1 && members !== 3) throw new Error(`${tool}: --nodes takes 1 or 3`);
  const alone = ['--replication-factor', '1', '--write-quorum', '1', '--read-quorum', '1'];
  const nodes = await startCluster(root, members, undefined, {
    ports: ports as [number, number, number],
    args: [
      ...(members === 1 ? alone : []),
      ...values['node-flags'].split(' ').filter((a) => a !== ''),
    ],
    ...(values.script === undefined ? {} : { script: values.script }),
  });
  try {
    const coord = nodes[0]!;
    const big = 'v'.repeat(MiB);
    for (let i = 0; i < BIG_KEYS; i++)
      await respCall(coord.host, coord.port, ['SET', `big${i}`, big]);
    const small = 's'.repeat(SMALL_BYTES);
    for (let i = 0; i < SMALL_KEYS; i++)
      await respCall(coord.host, coord.port, ['SET', `small${i}`, small]);
    const load = (await readFileSync('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
    console.log(`load ${load}; ${clients} clients, depth ${depth}, ${seconds} s each`);
    if (values.mode !== 'stuck') await run('read', nodes);
    if (values.mode !== 'read') await run('stuck', nodes);
  } finally {
    await Promise.all(nodes.map(stopServer));
    cleanupSync();
  }
}

runBench(main);
