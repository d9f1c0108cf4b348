// `node bench/ab.ts`: two builds of the node side by side under the same redis-benchmark cells,
// alternating, with the node CPU per request: how a change is measured on a shared machine.

import { spawnSync } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { abPlan, median, perRoundRatios } from './ab-plan.ts';
import { CLUSTER_START_MS, startCluster } from './cluster.ts';
import { storeload, storeloadBinary } from './etcd.ts';
import {
  cleanupSync,
  processCpuMs,
  processSyscalls,
  type Server,
  SINGLE_NODE_ARGS,
  scrapeMetrics,
  startKvstore,
  startRedis,
  stopServer,
  tempDir,
} from './procs.ts';

const USAGE = `Usage: node bench/ab.ts --a SCRIPT --b SCRIPT [options]
  --a, --b SCRIPT    the node entry points to compare, e.g. a worktree of main built with
                     \`npm run build\` (OTHER/dist/src/main.js) against this one's dist/src/main.js,
                     or bench/floor-server.ts (the floor: a bare Node server) against a node
  --cells LIST       op:pipeline pairs (default set:1,set:16; ops: set, get, and del and expire,
                     DEL / EXPIRE 3600 of the filled keys, which are filled again before each
                     such run, outside the measurement); with --nodes 3 also storeload-put and
                     storeload-get: the etcd comparison's cells (bench/storeload, 50 clients
                     spread over the three members, --storeload-s seconds each)
  --rounds N         rounds; each runs every cell on every target in turn, every other round
                     with A and B swapped (default 4)
  --requests N       requests per pipeline-1 run, 4x that at depth (default 60000)
  --warmup N         requests of the unmeasured warm-up run of the same cell on the same target
                     right before each measured one, 4x that at depth (default a quarter of
                     --requests; storeload: a quarter of --storeload-s, at least 1 s; 0: none).
                     Without it a node that sat idle (e.g. through the other target's SET P1
                     run) trims its heap and pays for that in its next run: an A/A measured B/A
                     GET P1 CPU 0.77-0.92 in round 0 (5 runs), where A waited through B's fill
  --keys N           key space, redis-benchmark -r (default 100000)
  --redis-always     also Redis with appendfsync always (the yardstick of the SET cells)
  --redis            also Redis without persistence (the yardstick of the GET cells, and of the
                     SET cells without --redis-always)
  --a-node-args S, --b-node-args S
                     Node/V8 flags for that target's processes, space-separated
                     (e.g. --b-node-args '--lite-mode': what a flag costs the request path)
  --a-args S, --b-args S
                     kvstore flags for that target's nodes, space-separated, after the bench's
                     own (e.g. --b-args='--read-repair-chance 0': what a setting costs)
  --nodes N          1 (default): each target is one node with --replication-factor 1; 3: a
                     3-node cluster (RF=3, W=2, R=2) on its own loopback addresses, the load on
                     its first member (redis-benchmark cells), the CPU of all three counted
  --storeload-s N    seconds per storeload cell (default 5)
Each target is pre-filled with the keys (100 B values).
Prints every run, then per cell the median ops/s and node CPU µs per request, and B/A of
those medians; then per cell the B/A of each round (A and B measured back to back, so the
machine's load moves both) and the median of those per-round ratios. Each run also says the
system calls the nodes made per request (reads and writes of sockets and files, from
/proc/<pid>/io), and every round the 1-minute load average before it. With --nodes 3 each run
also says each member's CPU per request (the load's member first) and, per request, the peer
requests the members sent, the other owners' reads, the reads speculated and the young
collections, and each member's time in young collections per request: a cluster that costs more
than another of the same build shows where.`;

const { values: o } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string' },
    cells: { type: 'string', default: 'set:1,set:16' },
    rounds: { type: 'string', default: '4' },
    requests: { type: 'string', default: '60000' },
    warmup: { type: 'string' },
    keys: { type: 'string', default: '100000' },
    'redis-always': { type: 'boolean', default: false },
    redis: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '1' },
    'storeload-s': { type: 'string', default: '5' },
    'a-node-args': { type: 'string', default: '' },
    'b-node-args': { type: 'string', default: '' },
    'a-args': { type: 'string', default: '' },
    'b-args': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help || !o.a || !o.b) {
  console.log(USAGE);
  process.exit(o.help ? 0 : 2);
}
const cells = o.cells.split(',').map((c) => {
  if (c === 'storeload-put' || c === 'storeload-get') {
    if (o.nodes !== '3') throw new Error(`bench/ab: ${c} needs --nodes 3`);
    return { op: c, pipeline: 1 };
  }
  const [op, pipeline] = c.split(':');
  if (op === undefined || !['set', 'get', 'del', 'expire'].includes(op)) {
    throw new Error(`bench/ab: bad cell ${c} (want set:1, get:16, ...)`);
  }
  if (!/^\d+$/.test(pipeline ?? '')) throw new Error(`bench/ab: bad cell ${c} (want set:1, ...)`);
  return { op, pipeline: Number(pipeline) };
});
const warmupRequests =
  o.warmup === undefined ? Math.ceil(Number(o.requests) / 4) : Number(o.warmup);
if (!Number.isInteger(warmupRequests) || warmupRequests < 0) {
  throw new Error(`bench/ab: bad --warmup ${o.warmup}`);
}
const keys = Number(o.keys);
if (!Number.isInteger(keys) || keys < 1) throw new Error(`bench/ab: bad --keys ${o.keys}`);
if (o.nodes !== '1' && o.nodes !== '3') throw new Error(`bench/ab: --nodes must be 1 or 3`);
if ((o.redis || o['redis-always']) && cells.some((c) => c.op.startsWith('storeload'))) {
  throw new Error('bench/ab: the storeload cells have no Redis yardstick (drop --redis)');
}
const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const root = tempDir(tmpdir(), 'kvstore-ab-');
const servers: Server[] = [];
const cellName = (op: string, pipeline: number) =>
  op.startsWith('storeload') ? op : `${op.toUpperCase()} P${pipeline}`;
/** What a run changed on each member of a 3-node target: where its CPU per request went. */
interface MemberCounts {
  peerRequests: number;
  otherReads: number;
  speculations: number;
  minorGcs: number;
  /** Seconds in young collections: a coordinator found paying 3-4.5x per collection (2026-12-07). */
  minorGcSeconds: number;
}

/** A member's counters (scrapeMetrics), each summed over its labelled series. */
async function memberCounts(m: Server): Promise<MemberCounts> {
  const metrics = await scrapeMetrics(m.host, 9090);
  const sum = (prefix: string) => {
    let n = 0;
    for (const [series, value] of metrics) if (series.startsWith(prefix)) n += value;
    return n;
  };
  return {
    peerRequests: sum('kvstore_peer_requests_sent_total{'),
    otherReads: sum('kvstore_replica_reads_total{replica="other"}'),
    speculations: sum('kvstore_read_speculations_total'),
    minorGcs: sum('nodejs_gc_duration_seconds_count{kind="minor"}'),
    minorGcSeconds: sum('nodejs_gc_duration_seconds_sum{kind="minor"}'),
  };
}

/** The members of the cluster whose first member is `t.server`. */
const clusterOf = (t: { server: Server }) => {
  const i = servers.indexOf(t.server);
  return servers.slice(i, i + 3);
};

function rb(host: string, port: number, op: string, pipeline: number, requests: number): string[] {
  const args = ['-h', host, '-p', String(port), '-c', '50', '-P', String(pipeline)];
  args.push('-r', String(keys), '-d', '100', '-n', String(requests), '--csv');
  // redis-benchmark's SET writes key:__rand_int__ (the filled keys); DEL and EXPIRE take them.
  if (op === 'del') args.push('DEL', 'key:__rand_int__');
  else if (op === 'expire') args.push('EXPIRE', 'key:__rand_int__', '3600');
  else args.push('-t', op);
  const out = spawnSync('redis-benchmark', args, { encoding: 'utf8' });
  const row = out.stdout.trim().split('\n').at(-1) ?? '';
  const fields = row.split(',').map((s) => s.replaceAll('"', ''));
  if (!Number(fields[1]))
    throw new Error(`bench/ab: redis-benchmark said ${out.stdout}${out.stderr}`);
  return fields;
}

try {
  const targets: { name: string; server: Server; pids: number[] }[] = [];
  for (const [name, script, flags, kvFlags] of [
    ['A', o.a, o['a-node-args'], o['a-args']],
    ['B', o.b, o['b-node-args'], o['b-args']],
  ] as const) {
    const nodeArgs = flags.split(' ').filter((f) => f !== '');
    const args = kvFlags.split(' ').filter((f) => f !== '');
    if (o.nodes === '3') {
      const members = await startCluster(root, 3, CLUSTER_START_MS, {
        script: resolve(script),
        nodeArgs,
        args,
      });
      servers.push(...members);
      targets.push({ name, server: members[0]!, pids: members.map((m) => m.child!.pid!) });
      continue;
    }
    const server = await startKvstore(root, {
      name,
      script: resolve(script),
      args: [...SINGLE_NODE_ARGS, ...args],
      nodeArgs,
    });
    servers.push(server);
    targets.push({ name, server, pids: [server.child!.pid!] });
  }
  if (o.redis) {
    const server = await startRedis(root, false);
    servers.push(server);
    targets.push({ name: 'Redis', server, pids: [server.child!.pid!] });
  }
  if (o['redis-always']) {
    const server = await startRedis(root, true, 'always');
    servers.push(server);
    targets.push({ name: 'Redis always', server, pids: [server.child!.pid!] });
  }
  for (const t of targets) rb(t.server.host, t.server.port, 'set', 16, 4 * keys); // fill (nearly) every key
  const results = new Map<string, { ops: number[]; cpu: number[]; p99: number[] }>();
  const storeloadBin = cells.some((c) => c.op.startsWith('storeload'))
    ? await storeloadBinary()
    : null;
  // Every other round with A and B swapped (yardsticks after them, reversed): a target that runs
  // after another pays for the other's dirty pages being written back (writes) and was measured up
  // to 0.8x for it. And each measured run right after a warm-up of its own (bench/ab-plan.ts says
  // why).
  let lastRound = -1;
  for (const step of abPlan(targets, cells, Number(o.rounds), warmupRequests > 0)) {
    const { round, target: t } = step;
    const { op, pipeline } = step.cell;
    if (round !== lastRound) {
      lastRound = round;
      console.log(
        `round ${round}: load ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}`,
      );
    }
    if (!step.measured) {
      await runCell(t, op, pipeline, true);
      continue;
    }
    if (op === 'del' || op === 'expire') rb(t.server.host, t.server.port, 'set', 16, 4 * keys);
    const cpu = () => t.pids.reduce((sum, pid) => sum + processCpuMs(pid, ticks), 0);
    const syscalls = () => t.pids.reduce((sum, pid) => sum + processSyscalls(pid), 0);
    const members = o.nodes === '3' ? clusterOf(t) : [];
    const memberCpu = () => t.pids.map((pid) => processCpuMs(pid, ticks));
    const counts0 = await Promise.all(members.map(memberCounts));
    const each0 = memberCpu();
    const cpu0 = cpu();
    const sys0 = syscalls();
    const f = await runCell(t, op, pipeline, false);
    const cpuUs = ((cpu() - cpu0) * 1000) / f.requests;
    const perRequest = (syscalls() - sys0) / f.requests;
    const each1 = memberCpu();
    const counts1 = await Promise.all(members.map(memberCounts));
    const key = `${cellName(op, pipeline)}|${t.name}`;
    const r = results.get(key) ?? { ops: [], cpu: [], p99: [] };
    r.ops.push(f.ops);
    r.cpu.push(cpuUs);
    r.p99.push(f.p99);
    results.set(key, r);
    console.log(
      `round ${round} ${key.replace('|', ' ')}: ${Math.round(f.ops)} ops/s p50 ${f.p50} ms p99 ${f.p99} ms, ${cpuUs.toFixed(1)} µs CPU/request, ${perRequest.toFixed(2)} syscalls/request`,
    );
    if (members.length > 0) {
      const cpus = each1.map((c, i) => (((c - each0[i]!) * 1000) / f.requests).toFixed(1));
      const youngUs = counts1.map((c, i) =>
        (((c.minorGcSeconds - counts0[i]!.minorGcSeconds) * 1e6) / f.requests).toFixed(2),
      );
      const per = (k: keyof MemberCounts) =>
        (counts1.reduce((s, c, i) => s + c[k] - counts0[i]![k], 0) / f.requests).toFixed(4);
      console.log(
        `  members: ${cpus.join(' / ')} µs CPU/request; per request: ${per('peerRequests')} peer requests, ${per('otherReads')} other owners' reads, ${per('speculations')} speculations, ${per('minorGcs')} young collections; µs of them per request ${youngUs.join(' / ')}`,
      );
    }
  }

  /** One run of a cell on `t` (a warm-up: a shorter one): its requests, ops/s and latency (ms). */
  async function runCell(
    t: { server: Server; pids: number[] },
    op: string,
    pipeline: number,
    warmup: boolean,
  ): Promise<{ requests: number; ops: number; p50: number; p99: number }> {
    if (storeloadBin !== null && op.startsWith('storeload')) {
      const seconds = Number(o['storeload-s']);
      const { result } = await storeload(
        storeloadBin,
        'kvstore',
        clusterOf(t),
        op === 'storeload-put' ? 'put' : 'get',
        {
          dataRoot: root,
          clients: 50,
          keys,
          valueBytes: 100,
          durationS: warmup ? Math.max(1, Math.round(seconds / 4)) : seconds,
          warmupS: 0,
        },
      );
      if (result.errors > 0) throw new Error(`bench/ab: storeload: ${result.firstError}`);
      const l = result.latencyMs;
      return { requests: result.requests, ops: result.opsPerSec, p50: l.p50, p99: l.p99 };
    }
    const requests = (warmup ? warmupRequests : Number(o.requests)) * (pipeline === 1 ? 1 : 4);
    const f = rb(t.server.host, t.server.port, op, pipeline, requests);
    return { requests, ops: Number(f[1]), p50: Number(f[5]), p99: Number(f[7]) };
  }

  // The yardstick of the ratios in the last columns, as the goals have it: Redis always for a
  // SET (the same guarantee as kvstore's OK) when it ran, else plain Redis, else Redis always.
  const yardstickOf = (op: string): string | null => {
    if (op === 'set' && o['redis-always']) return 'Redis always';
    if (o.redis) return 'Redis';
    return o['redis-always'] ? 'Redis always' : null;
  };
  console.log(
    '\n| cell | target | ops/s (median) | CPU µs/request (median) | p99 ms (median) | B/A ops | B/A CPU | ops / yardstick | p99 / yardstick |',
  );
  console.log('|---|---|--:|--:|--:|--:|--:|--:|--:|');
  for (const { op, pipeline } of cells) {
    const cell = cellName(op, pipeline);
    const a = results.get(`${cell}|A`)!;
    for (const t of targets) {
      const r = results.get(`${cell}|${t.name}`)!;
      const ratio =
        t.name === 'B'
          ? `${(median(r.ops) / median(a.ops)).toFixed(2)}x | ${(median(r.cpu) / median(a.cpu)).toFixed(2)}x`
          : ' | ';
      const yardstick = yardstickOf(op);
      const y = yardstick === null ? undefined : results.get(`${cell}|${yardstick}`);
      const vsYardstick = y
        ? `${(median(r.ops) / median(y.ops)).toFixed(2)}x | ${(median(r.p99) / median(y.p99)).toFixed(2)}x`
        : ' | ';
      console.log(
        `| ${cell} | ${t.name} | ${Math.round(median(r.ops)).toLocaleString('en-US')} | ${median(r.cpu).toFixed(1)} | ${median(r.p99).toFixed(2)} | ${ratio} | ${vsYardstick} |`,
      );
    }
  }
  // Per-round ratios: each round measures A and B back to back, so a load that comes and goes
  // between rounds moves both; their median is steadier than the ratio of the medians.
  console.log(
    '\n| cell | B/A ops per round | median | B/A CPU per round | median | B/A p99 per round | median |',
  );
  console.log('|---|---|--:|---|--:|---|--:|');
  for (const { op, pipeline } of cells) {
    const cell = cellName(op, pipeline);
    const a = results.get(`${cell}|A`)!;
    const b = results.get(`${cell}|B`)!;
    const ops = perRoundRatios(a.ops, b.ops);
    const cpu = perRoundRatios(a.cpu, b.cpu);
    const p99 = perRoundRatios(a.p99, b.p99);
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ');
    console.log(
      `| ${cell} | ${list(ops)} | ${median(ops).toFixed(2)}x | ${list(cpu)} | ${median(cpu).toFixed(2)}x | ${list(p99)} | ${median(p99).toFixed(2)}x |`,
    );
  }
} finally {
  for (const s of servers) await stopServer(s).catch(() => {});
  cleanupSync();
}
