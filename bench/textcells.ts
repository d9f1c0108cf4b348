// The text-protocol cells (issue 2): worker_threads load generators against kvstore, Redis, Redis AOF.

import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { crosscheck } from './crosscheck.ts';
import { Histogram } from './histogram.ts';
import type { FromWorker, LoadTarget, Op, ToWorker, WorkerInit, WorkerResult } from './loadgen.ts';
import { processCpuMs, type Server } from './procs.ts';
import type { ProtocolName } from './protocols.ts';
import {
  type Cell,
  type CellResult,
  TARGETS,
  type TargetName,
  type TargetResult,
} from './report.ts';

/** What the text cells need from the command line. */
export interface TextOptions {
  readonly durationS: number;
  readonly warmupS: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly quick: boolean;
  readonly crosscheck: boolean;
}

export function cellsFor(quick: boolean): Cell[] {
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
export class LoadWorker {
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
export async function fill(workers: LoadWorker[], server: Server, keys: number): Promise<void> {
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
export async function runCells(
  workers: LoadWorker[],
  servers: Map<TargetName, Server>,
  opts: TextOptions,
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
export function checkGenerator(
  workers: LoadWorker[],
  redis: Server,
  cells: CellResult[],
  opts: TextOptions,
): Promise<string[]> {
  if (!opts.crosscheck) return Promise.resolve([]);
  process.stderr.write('generator check: redis-benchmark vs this harness (RESP)\n');
  const timing = { warmupS: Math.min(opts.warmupS, 0.5), durationS: Math.min(opts.durationS, 2) };
  return crosscheck(redis.port, cells, opts, (cell) =>
    measure(workers, redis, 'redis-resp', cell, timing),
  );
}
