// Profiles of the goals a run fails (issue 17: "a profile for every goal that fails"). The kvstore
// cell behind each failing goal runs again, after the measured cells, against kvstore processes
// started with the inspector (one single node, one 3-node cluster, each started once for all its
// cells), while V8's sampling profiler records every process's main thread and /proc counts the
// CPU of every thread. The measured cells run without the inspector; these runs explain, they
// are not the figures the goals are judged on.

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CLUSTER_START_MS, startCluster } from './cluster.ts';
import { storeload, storeloadBinary } from './etcd.ts';
import type { Goal, GoalCell } from './goals.ts';
import { openInspector } from './inspector.ts';
import {
  cleanupOnExit,
  freePort,
  positiveInt,
  procStat,
  progressLog,
  ROOT,
  runBench,
  type Server,
  SINGLE_NODE_ARGS,
  startKvstore,
  stopServer,
} from './procs.ts';
import { prefillRb, redisBenchmark } from './redisbench.ts';
import { reportStamp } from './report.ts';
import { markdownTable, num, us } from './table.ts';

/** Sampling interval of V8's profiler, in microseconds (its default is 1000). */
const SAMPLING_US = 250;
/** Functions listed per cell. */
const TOP = 15;
const TICKS_PER_SECOND = 100;

export interface ProfileOptions {
  readonly dataRoot: string;
  /** Where the raw `.cpuprofile` files go (a `profiles/` directory under it). */
  readonly out: string;
  /** The report's stamp: the files' names start with it. */
  readonly stamp: string;
  readonly clients: number;
  readonly keys: number;
  readonly valueBytes: number;
  /** Seconds each profiled run lasts (about). */
  readonly durationS: number;
}

/** CPU of one group of threads, per request, split into user and kernel time. */
export interface ThreadShare {
  readonly group: string;
  readonly userUs: number;
  readonly systemUs: number;
}

/** A function's self time, as a share of the main threads' busy time. */
export interface FunctionShare {
  readonly fn: string;
  readonly where: string;
  readonly pct: number;
}

export interface CellProfile {
  /** e.g. `GET P1, 1 node RF=1 (redis-benchmark, 50 conns)`. */
  readonly cell: string;
  /** The failing goals it stands for. */
  readonly goals: readonly string[];
  readonly requests: number;
  readonly opsPerSec: number;
  readonly wallS: number;
  /** Every thread of every kvstore process of the cell, per request. */
  readonly threads: readonly ThreadShare[];
  /** Main threads: sampled time not idle over sampled time, averaged over the processes. */
  readonly mainBusyPct: number;
  /** Self time of the main threads (summed over processes), largest first. */
  readonly top: readonly FunctionShare[];
  /** The `.cpuprofile` files (open them in Chrome DevTools), relative to the repository when in it. */
  readonly files: readonly string[];
  /** Why the cell could not be profiled; null when it was. */
  readonly error: string | null;
}

export interface GoalProfiles {
  readonly samplingUs: number;
  readonly profiles: readonly CellProfile[];
  /** Failing goals with no cell to profile (memory): where to look instead. */
  readonly notes: readonly string[];
}

const cellKey = (c: GoalCell) =>
  c.kind === 'rb' ? `rb-${c.target}-${c.op}-p${c.pipeline}` : `storeload-${c.op}`;

function cellLabel(c: GoalCell, clients: number): string {
  if (c.kind === 'storeload')
    return `${c.op === 'put' ? 'SET' : 'GET'}, 3 nodes RF=3 W=2 R=2 (storeload, ${clients} clients)`;
  const where = c.target === 'kvstore' ? '1 node RF=1' : '3 nodes RF=3 W=2 R=2';
  return `${c.op.toUpperCase()} P${c.pipeline}, ${where} (redis-benchmark, ${clients} conns)`;
}

interface ThreadTicks {
  readonly user: number;
  readonly system: number;
}

const GROUPS: readonly [RegExp, string][] = [
  [/^MainThread$|^node$/, 'main thread'],
  [/^libuv-worker$/, 'libuv pool (log writes, LMDB commits)'],
  [/^V8Worker$/, 'V8 workers (GC, compilers)'],
];

/** utime and stime of every thread of `pid`, summed by GROUPS (the rest is `other`). */
export function threadTicks(pid: number): Map<string, ThreadTicks> {
  const out = new Map<string, ThreadTicks>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    const stat = procStat(`/proc/${pid}/task/${tid}/stat`);
    if (stat === null) continue; // the thread ended
    const group = GROUPS.find(([re]) => re.test(stat.comm))?.[1] ?? 'other';
    const prev = out.get(group) ?? { user: 0, system: 0 };
    out.set(group, { user: prev.user + stat.user, system: prev.system + stat.system });
  }
  return out;
}

function threadShares(
  before: readonly Map<string, ThreadTicks>[],
  after: readonly Map<string, ThreadTicks>[],
  requests: number,
): ThreadShare[] {
  const us = (ticks: number) => (ticks * 1e6) / TICKS_PER_SECOND / requests;
  const sums = new Map<string, ThreadTicks>();
  after.forEach((a, i) => {
    for (const [group, t] of a) {
      const b = before[i]!.get(group) ?? { user: 0, system: 0 };
      const s = sums.get(group) ?? { user: 0, system: 0 };
      sums.set(group, { user: s.user + t.user - b.user, system: s.system + t.system - b.system });
    }
  });
  const order = [...GROUPS.map(([, g]) => g), 'other'];
  return order
    .filter((g) => sums.has(g))
    .map((g) => ({ group: g, userUs: us(sums.get(g)!.user), systemUs: us(sums.get(g)!.system) }));
}

/** The parts of V8's CPU profile (Chrome DevTools' `Profiler.Profile`) read here. */
export interface V8Profile {
  readonly nodes: readonly {
    readonly id: number;
    readonly children?: readonly number[];
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
  }[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

function where(url: string, line: number): string {
  const path = url.startsWith('file://') ? relative(ROOT, fileURLToPath(url)) : url;
  return `${path}:${line + 1}`;
}

type CallFrame = V8Profile['nodes'][number]['callFrame'];

/**
 * Self time by function over every profile (each sample counts the time until the next one),
 * as shares of the busy (not idle) time; and each profile's busy share. A native function (a
 * builtin or an addon's, no script) is named with the JavaScript function that called it, since
 * V8 often leaves it anonymous and its cost belongs to that call (`(native) <- #peek ...`); Node's
 * own modules are passed over, so a socket write is named with the code that wrote.
 */
export function summarize(
  profiles: readonly V8Profile[],
  top = TOP,
): { top: FunctionShare[]; busyPct: number } {
  const self = new Map<string, { fn: string; where: string; us: number }>();
  let busy = 0;
  const busyShares: number[] = [];
  for (const p of profiles) {
    const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    /** The nearest caller from a script outside Node's own (`node:`), for a native frame. */
    const caller = (id: number): CallFrame | undefined => {
      for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
        const cf = byId.get(at)!;
        if (cf.url !== '' && !cf.url.startsWith('node:')) return cf;
      }
      return undefined;
    };
    const samples = p.samples ?? [];
    const deltas = p.timeDeltas ?? [];
    let total = 0;
    let idle = 0;
    for (let i = 0; i < samples.length; i++) {
      const us = i + 1 < deltas.length ? deltas[i + 1]! : 0;
      const id = samples[i]!;
      const cf = byId.get(id);
      if (cf === undefined) continue;
      total += us;
      if (cf.functionName === '(idle)') {
        idle += us;
        continue;
      }
      let fn = cf.functionName === '' ? '(anonymous)' : cf.functionName;
      let at = '';
      if (cf.url !== '') at = where(cf.url, cf.lineNumber);
      else if (!cf.functionName.startsWith('(')) {
        const c = caller(id);
        // Called straight from a package's script: an addon, whose symbols V8 names at random
        // (lmdb's lookup showed as `open`, `xxh32`, `tryDowngradeLock`); one entry per caller.
        // Through Node's own modules: a binding, whose name is right (`writeBuffer`, `now`).
        const direct = byId.get(parent.get(id) ?? -1);
        fn = direct !== undefined && direct === c ? '(native)' : `${fn} (native)`;
        if (c !== undefined)
          at = `<- ${c.functionName || '(anonymous)'} ${where(c.url, c.lineNumber)}`;
      }
      const key = `${fn}\0${at}`;
      const e = self.get(key) ?? { fn, where: at, us: 0 };
      e.us += us;
      self.set(key, e);
    }
    busy += total - idle;
    if (total > 0) busyShares.push((100 * (total - idle)) / total);
  }
  const list = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ fn: e.fn, where: e.where, pct: busy > 0 ? (100 * e.us) / busy : 0 }));
  const busyPct = busyShares.reduce((s, x) => s + x, 0) / Math.max(1, busyShares.length);
  return { top: list, busyPct };
}

/** kvstore processes with their inspectors, started on first use and kept for every cell. */
interface Targets {
  single: { server: Server; inspectPort: number } | null;
  cluster: { servers: Server[]; inspectPort: number } | null;
}

/**
 * The cell's processes, and the port their inspectors listen on, each on its server's own
 * address (the single node on 127.0.0.1, the cluster's members on 127.x.y.1-3).
 */
async function processesFor(
  cell: GoalCell,
  t: Targets,
  o: ProfileOptions,
): Promise<{ servers: Server[]; inspectPort: number }> {
  if (cell.kind === 'rb' && cell.target === 'kvstore') {
    if (t.single === null) {
      const inspectPort = await freePort();
      const server = await startKvstore(o.dataRoot, {
        name: 'kvstore-profiled',
        args: SINGLE_NODE_ARGS,
        nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
      });
      t.single = { server, inspectPort };
      await prefillRb(server, o.keys, o.valueBytes);
    }
    return { servers: [t.single.server], inspectPort: t.single.inspectPort };
  }
  if (t.cluster === null) {
    const inspectPort = 9229;
    const servers = await startCluster(o.dataRoot, 3, CLUSTER_START_MS, { inspectPort });
    t.cluster = { servers, inspectPort };
    await prefillRb(servers[0]!, o.keys, o.valueBytes);
  }
  return t.cluster;
}

/** Runs the cell's load once (unprofiled, to warm up), then again while profiling. */
async function profileCell(
  cell: GoalCell,
  goals: readonly string[],
  t: Targets,
  o: ProfileOptions,
): Promise<CellProfile> {
  const label = cellLabel(cell, o.clients);
  const { servers, inspectPort } = await processesFor(cell, t, o);
  let run: () => Promise<{ requests: number }>;
  if (cell.kind === 'rb') {
    const target = servers[0]!;
    const rb = (requests: number) =>
      redisBenchmark({
        host: target.host,
        port: target.port,
        tests: cell.op,
        requests,
        clients: o.clients,
        pipeline: cell.pipeline,
        keys: o.keys,
        valueBytes: o.valueBytes,
        timeoutMs: Math.max(120_000, o.durationS * 20_000),
      });
    const t0 = performance.now();
    const warm = o.clients * cell.pipeline * 50;
    await rb(warm);
    const rate = (warm * 1000) / Math.max(1, performance.now() - t0);
    const requests = Math.max(warm, Math.round(rate * o.durationS));
    run = async () => {
      const { errors } = await rb(requests);
      if (errors.length > 0) throw new Error(`redis-benchmark: ${errors[0]}`);
      return { requests };
    };
  } else {
    const bin = await storeloadBinary();
    const load = (durationS: number) =>
      storeload(bin, 'kvstore', servers, cell.op, {
        dataRoot: o.dataRoot,
        clients: o.clients,
        keys: o.keys,
        valueBytes: o.valueBytes,
        durationS,
        warmupS: 0,
      });
    await load(Math.min(1, o.durationS));
    run = async () => {
      const { result } = await load(o.durationS);
      if (result.errors > 0) throw new Error(`storeload: ${result.firstError}`);
      return { requests: result.requests };
    };
  }
  const inspectors = await Promise.all(servers.map((s) => openInspector(inspectPort, s.host)));
  try {
    for (const i of inspectors) {
      await i.call('Profiler.enable');
      await i.call('Profiler.setSamplingInterval', { interval: SAMPLING_US });
    }
    await Promise.all(inspectors.map((i) => i.call('Profiler.start')));
    const before = servers.map((s) => threadTicks(s.child.pid!));
    const t0 = performance.now();
    const { requests } = await run();
    const wallS = (performance.now() - t0) / 1000;
    const after = servers.map((s) => threadTicks(s.child.pid!));
    const profiles = (await Promise.all(inspectors.map((i) => i.call('Profiler.stop')))).map(
      (r) => (r as { profile: V8Profile }).profile,
    );
    const dir = join(o.out, 'profiles');
    mkdirSync(dir, { recursive: true });
    const files = profiles.map((p, i) => {
      const file = join(dir, `${o.stamp}-${cellKey(cell)}-${servers[i]!.name}.cpuprofile`);
      writeFileSync(file, JSON.stringify(p));
      const inRepo = relative(ROOT, file);
      return inRepo.startsWith('..') || isAbsolute(inRepo) ? file : inRepo;
    });
    const { top, busyPct } = summarize(profiles);
    return {
      cell: label,
      goals,
      requests,
      opsPerSec: requests / wallS,
      wallS,
      threads: threadShares(before, after, requests),
      mainBusyPct: busyPct,
      top,
      files,
      error: null,
    };
  } finally {
    for (const i of inspectors) i.close();
  }
}

/**
 * Profiles the cell of every failing goal (goals sharing a cell share its profile). A cell that
 * cannot be profiled is reported with its error; the others are still profiled. Every process
 * started here is stopped before it returns.
 */
export async function profileFailingGoals(
  goals: readonly Goal[],
  o: ProfileOptions,
  say: (line: string) => void,
): Promise<GoalProfiles> {
  const cells = new Map<string, { cell: GoalCell; goals: string[] }>();
  const notes: string[] = [];
  for (const g of goals) {
    if (g.pass !== false) continue;
    if (g.cell === undefined) {
      // The memory and restart goals: the probe's own lines break them down.
      notes.push(
        `${g.goal}: no CPU profile; the memory and restart lines above break it down (anon, file-backed, the node binary's pages, V8's heap; the restart's phases).`,
      );
      continue;
    }
    const key = cellKey(g.cell);
    const entry = cells.get(key) ?? { cell: g.cell, goals: [] };
    entry.goals.push(g.goal);
    cells.set(key, entry);
  }
  const t: Targets = { single: null, cluster: null };
  const profiles: CellProfile[] = [];
  try {
    for (const { cell, goals: names } of cells.values()) {
      say(`profiling ${cellLabel(cell, o.clients)} (failing: ${names.join('; ')})`);
      profiles.push(
        await profileCell(cell, names, t, o).catch((err: unknown) => ({
          cell: cellLabel(cell, o.clients),
          goals: names,
          requests: 0,
          opsPerSec: 0,
          wallS: 0,
          threads: [],
          mainBusyPct: 0,
          top: [],
          files: [],
          error: err instanceof Error ? err.message : String(err),
        })),
      );
    }
  } finally {
    const servers = [
      ...(t.single === null ? [] : [t.single.server]),
      ...(t.cluster?.servers ?? []),
    ];
    await Promise.all(servers.map(stopServer));
  }
  return { samplingUs: SAMPLING_US, profiles, notes };
}

/** The report's section (Markdown). */
export function profilesSection(p: GoalProfiles): string[] {
  const lines = [
    '## Profiles of the failing goals',
    '',
    "Each failing goal's kvstore cell run again after the measured cells, against kvstore processes",
    `started with the inspector: V8's sampling profiler (every ${p.samplingUs} µs) on each process's`,
    "main thread, and every thread's CPU from /proc. CPU is per request, summed over the processes",
    "(µs, user + kernel); functions are self time as a share of the main threads' busy time (not",
    'idle), summed over the processes. `(program)` is native code V8 does not attribute (the event',
    'loop, libuv, system calls outside a JS call); a `(native)` entry is a builtin or addon call',
    "(with the system calls made in it), named after the function outside Node's own modules that called it. The",
    'raw profiles (open them in Chrome DevTools) are beside the report, not committed.',
    '',
  ];
  if (p.profiles.length === 0 && p.notes.length === 0) lines.push('No goal failed.', '');
  for (const c of p.profiles) {
    lines.push(`### ${c.cell}`, '', `For: ${c.goals.join('; ')}.`, '');
    if (c.error !== null) {
      lines.push(`**Not profiled**: ${c.error}`, '');
      continue;
    }
    const total = c.threads.reduce((s, x) => s + x.userUs + x.systemUs, 0);
    const threads = c.threads
      .map((x) => `${x.group} ${us(x.userUs + x.systemUs)} (kernel ${us(x.systemUs)})`)
      .join(', ');
    lines.push(
      `${num(c.requests)} requests in ${c.wallS.toFixed(1)} s (${num(c.opsPerSec)} ops/s under the profiler); main threads busy ${c.mainBusyPct.toFixed(0)}% of the time.`,
      `CPU per request ${us(total)} µs: ${threads}.`,
      '',
      markdownTable(
        [
          ['function', 'where', 'self % of busy'],
          ...c.top.map((f) => [f.fn, f.where, f.pct.toFixed(1)]),
        ],
        2,
      ),
      '',
      `Profiles: ${c.files.map((f) => `\`${f}\``).join(', ')}`,
      '',
    );
  }
  for (const n of p.notes) lines.push(`- ${n}`);
  if (p.notes.length > 0) lines.push('');
  return lines;
}

const USAGE = `Usage: node bench/profile.ts [options]
Profiles kvstore cells as \`npm run bench\` does for its failing goals, and prints the section.
  --cells LIST       comma-separated, of get:1 get:16 set:1 set:16 (one node, redis-benchmark),
                     cluster-get:1 ... cluster-set:16 (3 nodes), storeload-put storeload-get
                     (3 nodes, the etcd comparison's generator) (default get:1,get:16,set:1,set:16)
  --duration-s N     seconds per profiled run (default 5)
  --keys N           key space, pre-filled (default 100000)
  --clients N        connections / clients (default 50)
  --out DIR          where profiles/ goes (default bench/results)
  --data-root DIR    where temp data dirs are made (default the OS temp dir)`;

/** A --cells entry as the cell it names; throws on anything else. */
export function parseCell(s: string): GoalCell {
  const rb = /^(cluster-)?(get|set):(1|16)$/.exec(s);
  if (rb !== null)
    return {
      kind: 'rb',
      target: rb[1] === undefined ? 'kvstore' : 'cluster',
      op: rb[2] as 'get' | 'set',
      pipeline: Number(rb[3]),
    };
  if (s === 'storeload-put' || s === 'storeload-get')
    return { kind: 'storeload', op: s === 'storeload-put' ? 'put' : 'get' };
  throw new Error(`profile: unknown cell '${s}'\n\n${USAGE}`);
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      cells: { type: 'string', default: 'get:1,get:16,set:1,set:16' },
      'duration-s': { type: 'string', default: '5' },
      keys: { type: 'string', default: '100000' },
      clients: { type: 'string', default: '50' },
      out: { type: 'string', default: join(ROOT, 'bench/results') },
      'data-root': { type: 'string', default: tmpdir() },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  cleanupOnExit();
  const goals: Goal[] = v.cells.split(',').map((c) => ({
    goal: `--cells ${c}`,
    measured: '',
    value: null,
    pass: false,
    cell: parseCell(c),
  }));
  const startedAt = new Date().toISOString();
  const result = await profileFailingGoals(
    goals,
    {
      dataRoot: resolve(v['data-root']),
      out: resolve(v.out),
      stamp: reportStamp(startedAt),
      clients: positiveInt('profile', 'clients', v.clients),
      keys: positiveInt('profile', 'keys', v.keys),
      valueBytes: 100,
      durationS: positiveInt('profile', 'duration-s', v['duration-s']),
    },
    progressLog(),
  );
  process.stdout.write(`${profilesSection(result).join('\n')}\n`);
  if (result.profiles.some((p) => p.error !== null)) process.exitCode = 1;
}

if (import.meta.main) runBench(main);
