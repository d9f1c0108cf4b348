// How long a client that reads small keys waits for its replies while others hold the node's
// budget of replies in the making (src/server/reply-budget.ts): a 3-node cluster, and beside one
// client that GETs 100-byte values one at a time, either (`read`) N clients that each keep
// --depth GETs of a 1 MiB value in flight and read their replies, or (`stuck`) N clients that
// pipeline --gets GETs of a 1 MiB value and never read (one closed by the node is replaced at
// once, so N are always there). A measurement, not a test:
// `node bench/reply-fairness.ts [--mode read|stuck|both] [--clients 40] [--seconds 10]
// [--node-flags='--max-client-output-bytes 16777216'] [--script other/src/main.ts] [--trace]`
// prints the small client's p50/p99/max, what the large readers got, the coordinator's
// resident peak (VmHWM) over its size before, and the clients the output bound closed.

import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.ts';
import { Histogram } from './histogram.ts';
import {
  cleanupSync,
  positiveInt,
  runBench,
  type Server,
  scrapeMetrics,
  stopServer,
  tempDir,
} from './procs.ts';
import { respCall } from './respload.ts';

const MiB = 1024 * 1024;
const BIG_KEYS = 8;
const SMALL_KEYS = 100;
const SMALL_BYTES = 100;
const EVICTED = 'kvstore_connections_rejected_total{reason="output_full"}';
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
async function smallClient(node: Server, stop: Stop) {
  const s = await open(node);
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

/** N clients keeping `depth` GETs of 1 MiB in flight each, reading; MiB received in all. */
async function readers(node: Server, stop: Stop) {
  let received = 0;
  const sockets = await Promise.all(Array.from({ length: clients }, () => open(node)));
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

async function run(mode: 'read' | 'stuck', nodes: Server[]) {
  const coord = nodes[0]!;
  const before = resident(coord);
  const closedBefore = (await scrapeMetrics(coord.host, ports[1]!)).get(EVICTED) ?? 0;
  const stop: Stop = { done: false };
  const load = mode === 'read' ? await readers(coord, stop) : stuck(coord, stop);
  const small = smallClient(coord, stop);
  for (let t = 0; t < seconds; t++) {
    await sleep(1000);
    if (values.trace) {
      const m = await scrapeMetrics(coord.host, ports[1]!);
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
  const m = await scrapeMetrics(coord.host, ports[1]!);
  const after = resident(coord);
  console.log(
    `${mode}: small GETs ${latency.count} (wrong ${wrong}${closed ? ', CLOSED' : ''}) p50 ${ms(latency.p50Us)} ms, p99 ${ms(latency.p99Us)} ms, max ${ms(latency.maxUs)} ms; ` +
      `${mode === 'read' ? `large read ${(got / seconds).toFixed(0)} MiB/s; ` : ''}` +
      `coordinator peak ${(after.peak / MiB).toFixed(0)} MiB (before ${(before.now / MiB).toFixed(0)}), ` +
      `clients closed ${(m.get(EVICTED) ?? 0) - closedBefore}, waits ${m.get('kvstore_client_reply_waits_total')}`,
  );
  await sleep(3000); // the closed clients' sockets and replies go before the next mode
}

async function main() {
  const root = tempDir(tmpdir(), 'kvstore-fairness-');
  const nodes = await startCluster(root, 3, undefined, {
    ports: ports as [number, number, number],
    args: values['node-flags'].split(' ').filter((a) => a !== ''),
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
