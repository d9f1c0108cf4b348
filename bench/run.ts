// `npm run bench`: kvstore vs Redis side by side on one machine; prints a table, writes bench/results.

import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { crosscheck } from './crosscheck.ts';
import { Histogram } from './histogram.ts';
import type { FromWorker, LoadTarget, Op, ToWorker, WorkerInit, WorkerResult } from './loadgen.ts';
import {
  cleanupSync,
  fsyncProbe,
  processCpuMs,
  ROOT,
  type Server,
  startKvstore,
  startRedis,
  stopServer,
} from './procs.ts';
import type { ProtocolName } from './protocols.ts';
import {
  type Cell,
  type CellResult,
  loadAverage,
  machineInfo,
  type Report,
  renderTables,
  TARGETS,
  type TargetName,
  type TargetResult,
  writeReport,
} from './report.ts';

const USAGE = `Usage: node bench/run.ts [options]
  --duration-s N    measured seconds per cell and server (default 5; --quick: 1)
  --warmup-s N      unmeasured seconds before each measurement (default 1; --quick: 0.25)
  --keys N          key space, pre-filled on every server (default 100000; --quick: 10000)
  --value-bytes N   value size in bytes (default 100)
  --workers N       load generator threads (default 2)
  --out DIR         where the reports go (default bench/results)
  --data-root DIR   where temp data dirs are made (default the OS temp dir)
  --quick           4 cells instead of 8, short runs, no redis-benchmark check (a smoke test)
  --no-crosscheck   skip the redis-benchmark comparison
  --help            print this text`;

interface Options {
  readonly durationS: number;
  readonly warmupS: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly workers: number;
  readonly out: string;
  readonly dataRoot: string;
  readonly quick: boolean;
  readonly crosscheck: boolean;
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n > 0) || !Number.isFinite(n))
    throw new Error(`bench: --${name} must be a positive number, got '${raw}'`);
  return n;
}

function parseOptions(argv: string[]): Options | null {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      keys: { type: 'string' },
      'value-bytes': { type: 'string' },
      workers: { type: 'string' },
      out: { type: 'string' },
      'data-root': { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-crosscheck': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) return null;
  const quick = v.quick === true;
  return {
    durationS: positive('duration-s', v['duration-s'], quick ? 1 : 5),
    warmupS: positive('warmup-s', v['warmup-s'], quick ? 0.25 : 1),
    keys: Math.floor(positive('keys', v.keys, quick ? 10_000 : 100_000)),
    valueBytes: Math.floor(positive('value-bytes', v['value-bytes'], 100)),
    workers: Math.floor(positive('workers', v.workers, 2)),
    out: resolve(v.out ?? join(ROOT, 'bench/results')),
    dataRoot: resolve(v['data-root'] ?? tmpdir()),
    quick,
    crosscheck: !quick && v['no-crosscheck'] !== true,
  };
}

function cellsFor(quick: boolean): Cell[] {
  const shapes = quick
    ? [
        [1, 1],
        [50, 16],
      ]
    : [
        [1, 1],
        [1, 16],
        [50, 1],
        [50, 16],
      ];
  const ops: Op[] = ['put', 'get'];
  return ops.flatMap((op) =>
    shapes.map(([connections, depth]) => ({ op, connections: connections!, depth: depth! })),
  );
}

/** A load generator thread with a queue of its replies. */
class LoadWorker {
  readonly worker: Worker;
  readonly #inbox: FromWorker[] = [];
  readonly #waiters: { resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] = [];
  #dead: Error | null = null;

  constructor(init: WorkerInit) {
    this.worker = new Worker(new URL('./loadgen.ts', import.meta.url), { workerData: init });
    this.worker.on('message', (m: FromWorker) => {
      const w = this.#waiters.shift();
      if (w) w.resolve(m);
      else this.#inbox.push(m);
    });
    const die = (err: Error) => {
      this.#dead = err;
      for (const w of this.#waiters.splice(0)) w.reject(err);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`bench: load generator exited (${code})`)));
  }

  send(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  /** The next reply; a `failed` reply or a dead worker rejects. */
  async next<T extends FromWorker['type']>(type: T): Promise<Extract<FromWorker, { type: T }>> {
    const m =
      this.#inbox.shift() ??
      (await new Promise<FromWorker>((resolve, reject) => {
        if (this.#dead) reject(this.#dead);
        else this.#waiters.push({ resolve, reject });
      }));
    if (m.type === 'failed') throw new Error(m.message);
    if (m.type !== type)
      throw new Error(`bench: expected '${type}' from load generator, got '${m.type}'`);
    return m as Extract<FromWorker, { type: T }>;
  }
}

/** Splits n connections over the workers as evenly as possible; workers with 0 stay idle. */
function split(n: number, workers: number): number[] {
  return Array.from(
    { length: workers },
    (_, i) => Math.floor(n / workers) + (i < n % workers ? 1 : 0),
  );
}

/** The framing the main cells use: kvstore text lines, Redis inline commands. */
function protocolOf(server: Server): ProtocolName {
  return server.name === 'kvstore' ? 'kvstore' : 'redis';
}

/** Writes every key once (unmeasured) so GETs find values. */
async function fill(workers: LoadWorker[], server: Server, keys: number): Promise<void> {
  const protocol = protocolOf(server);
  const per = Math.ceil(keys / workers.length);
  workers.forEach((w, i) => {
    const from = Math.min(keys, i * per);
    w.send({
      type: 'fill',
      port: server.port,
      protocol,
      connections: 8,
      depth: 32,
      from,
      to: Math.min(keys, from + per),
    });
  });
  for (const w of workers) {
    const done = await w.next('filled');
    if (done.errors > 0)
      throw new Error(`bench: ${done.errors} errors while filling ${server.name}`);
  }
}

/** Runs one cell on one server: start, warm up, measure, stop, merge the workers' results. */
async function measure(
  workers: LoadWorker[],
  server: Server,
  protocol: ProtocolName,
  cell: Cell,
  timing: { readonly warmupS: number; readonly durationS: number },
): Promise<TargetResult> {
  const active = split(cell.connections, workers.length)
    .map((connections, i) => ({ w: workers[i]!, connections }))
    .filter((a) => a.connections > 0);
  for (const { w, connections } of active) {
    const target: LoadTarget = { port: server.port, protocol, connections, depth: cell.depth };
    w.send({ type: 'start', op: cell.op, ...target });
  }
  for (const { w } of active) await w.next('started');
  await sleep(timing.warmupS * 1000);
  const ticks = 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux
  const cpu0 = processCpuMs(server.child.pid, ticks);
  const t0 = performance.now();
  for (const { w } of active) w.send({ type: 'record' });
  await sleep(timing.durationS * 1000);
  for (const { w } of active) w.send({ type: 'stop' });
  const serverCpuMs = processCpuMs(server.child.pid, ticks) - cpu0;
  const wallMs = performance.now() - t0;
  const results: WorkerResult[] = [];
  for (const { w } of active) results.push((await w.next('result')).result);
  return combine(results, serverCpuMs, wallMs);
}

function combine(results: WorkerResult[], serverCpuMs: number, wallMs: number): TargetResult {
  const hist = new Histogram();
  for (const r of results) hist.merge(r);
  const sum = (f: (r: WorkerResult) => number) => results.reduce((s, r) => s + f(r), 0);
  return {
    opsPerSec: sum((r) => r.ops / (r.windowMs / 1000)),
    latency: hist.summary(),
    errors: sum((r) => r.errors),
    misses: sum((r) => r.misses),
    firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
    windowMs: wallMs,
    serverCpuPct: (100 * serverCpuMs) / wallMs,
    loadgenCpuPct: (100 * sum((r) => r.cpuMs)) / wallMs,
    loadgenMaxElu: Math.max(...results.map((r) => r.elu)),
  };
}

function progress(cell: Cell, name: TargetName, r: TargetResult): void {
  const what = `${cell.op.padEnd(3)} c=${String(cell.connections).padStart(2)} d=${String(cell.depth).padStart(2)} ${name.padEnd(9)}`;
  const lat = `p50 ${r.latency.p50Us.toFixed(0)} µs p99 ${r.latency.p99Us.toFixed(0)} µs`;
  const err = r.errors > 0 ? ` ERRORS ${r.errors} (${r.firstError})` : '';
  process.stderr.write(
    `${what} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s ${lat}${err}\n`,
  );
}

/** Every cell on every server in turn (kvstore, redis, redis-aof), so they share conditions. */
async function runCells(
  workers: LoadWorker[],
  servers: Map<TargetName, Server>,
  opts: Options,
): Promise<CellResult[]> {
  const cells: CellResult[] = [];
  for (const cell of cellsFor(opts.quick)) {
    const results = {} as Record<TargetName, TargetResult>;
    for (const t of TARGETS) {
      const server = servers.get(t)!;
      results[t] = await measure(workers, server, protocolOf(server), cell, opts);
      progress(cell, t, results[t]);
    }
    cells.push({ cell, results });
  }
  return cells;
}

/** redis-benchmark vs this harness speaking RESP, on the no-persistence Redis (shorter runs). */
function checkGenerator(
  workers: LoadWorker[],
  redis: Server,
  cells: CellResult[],
  opts: Options,
): Promise<string[]> {
  if (!opts.crosscheck) return Promise.resolve([]);
  process.stderr.write('generator check: redis-benchmark vs this harness (RESP)\n');
  const timing = { warmupS: Math.min(opts.warmupS, 0.5), durationS: Math.min(opts.durationS, 2) };
  return crosscheck(redis.port, cells, opts, (cell) =>
    measure(workers, redis, 'redis-resp', cell, timing),
  );
}

async function bench(opts: Options): Promise<void> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo(opts.dataRoot, ROOT);
  const fsyncAtStart = fsyncProbe(opts.dataRoot);
  const m = machine;
  process.stderr.write(
    `${m.cpuModel} x${m.nproc}, node ${m.node}, redis ${m.redis}, data on ${m.dataFs}, fsync p50 ${fsyncAtStart.p50Us} µs p99 ${fsyncAtStart.p99Us} µs, load ${m.loadAvgAtStart.join(' ')}\n`,
  );
  const servers = new Map<TargetName, Server>();
  const workers: LoadWorker[] = [];
  try {
    servers.set('kvstore', await startKvstore(opts.dataRoot));
    servers.set('redis', await startRedis(opts.dataRoot, false));
    servers.set('redis-aof', await startRedis(opts.dataRoot, true));
    for (let i = 0; i < opts.workers; i++)
      workers.push(new LoadWorker({ keys: opts.keys, valueBytes: opts.valueBytes }));
    for (const t of TARGETS) {
      process.stderr.write(`filling ${t} with ${opts.keys} keys\n`);
      await fill(workers, servers.get(t)!, opts.keys);
    }
    const cells = await runCells(workers, servers, opts);
    const checks = await checkGenerator(workers, servers.get('redis')!, cells, opts);
    const report: Report = {
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { ...opts },
      machine,
      cells,
      crosscheck: checks,
      conditions: {
        fsyncAtStart,
        fsyncAtEnd: fsyncProbe(opts.dataRoot),
        loadAvgAtEnd: loadAverage(),
      },
    };
    process.stdout.write(`\n${renderTables(cells)}\n\n${checks.join('\n')}\n`);
    process.stdout.write(`\nreport: ${writeReport(report, opts.out)}\n`);
    if (cells.some((c) => TARGETS.some((t) => c.results[t].errors > 0))) process.exitCode = 1;
  } finally {
    await Promise.all(workers.map((w) => w.worker.terminate()));
    await Promise.all([...servers.values()].map(stopServer));
    cleanupSync();
  }
}

function main(): void {
  let opts: Options | null;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (opts === null) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, cleaning up\n`);
      cleanupSync();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
  process.once('exit', cleanupSync);
  bench(opts).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}

main();
