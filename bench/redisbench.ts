// Runs redis-benchmark (the SET/GET workload) against every target, sized to a duration.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { processCpuMs } from './procs.ts';
import { respLoad } from './respload.ts';

const execFileAsync = promisify(execFile);

export type RbOp = 'set' | 'get';
/**
 * Redis without persistence, Redis with AOF everysec, Redis with AOF always (the same guarantee
 * as kvstore's OK: on disk), one kvstore node, a 3-node kvstore cluster.
 */
export type RbTargetName = 'redis' | 'redis-aof' | 'redis-always' | 'kvstore' | 'cluster';
export const RB_TARGETS: readonly RbTargetName[] = [
  'redis',
  'redis-aof',
  'redis-always',
  'kvstore',
  'cluster',
];

/** Where redis-benchmark connects, and the processes whose CPU time the cell accounts. */
export interface RbTarget {
  readonly name: RbTargetName;
  readonly host: string;
  readonly port: number;
  readonly pids: readonly number[];
}

export interface RbCell {
  readonly op: RbOp;
  readonly pipeline: number;
}

/** SET and GET, pipeline 1 and 16 (with 50 connections, 100-byte values, -r keys). */
export const RB_CELLS: readonly RbCell[] = [
  { op: 'set', pipeline: 1 },
  { op: 'set', pipeline: 16 },
  { op: 'get', pipeline: 1 },
  { op: 'get', pipeline: 16 },
];

/** One line of `redis-benchmark --csv` (version 7: rps, then latencies in ms). */
export interface RbRow {
  readonly test: string;
  readonly rps: number;
  readonly avgMs: number;
  readonly minMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface RbMeasurement extends RbRow {
  readonly requests: number;
  readonly wallMs: number;
  /** CPU of the target's server processes during the run, percent of one core (summed). */
  readonly serverCpuPct: number;
  /** The first `Error from server` line redis-benchmark printed (it counts errors as replies). */
  readonly error: string | null;
}

export interface RbCellResult {
  readonly cell: RbCell;
  readonly clients: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly results: Record<RbTargetName, RbMeasurement>;
}

export interface RbRun {
  readonly host: string;
  readonly port: number;
  /** `-t` list, e.g. `set` or `set,get`. */
  readonly tests: string;
  readonly requests: number;
  readonly clients: number;
  readonly pipeline: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly timeoutMs: number;
}

/** Parses `--csv` output; `Error from server` lines come back as `errors`. */
export function parseCsv(stdout: string): { rows: RbRow[]; errors: string[] } {
  const rows: RbRow[] = [];
  const errors: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('Error')) errors.push(line.trim());
    const f = line.split(',').map((s) => s.replaceAll('"', ''));
    if (f.length !== 8 || f[0] === 'test') continue;
    const [rps, avgMs, minMs, p50Ms, p95Ms, p99Ms, maxMs] = f.slice(1).map(Number);
    if (!Number.isFinite(rps)) continue;
    rows.push({
      test: f[0]!,
      rps: rps!,
      avgMs: avgMs!,
      minMs: minMs!,
      p50Ms: p50Ms!,
      p95Ms: p95Ms!,
      p99Ms: p99Ms!,
      maxMs: maxMs!,
    });
  }
  return { rows, errors };
}

/** Runs redis-benchmark once with `-r keys -d valueBytes --csv`; one row per test. */
export async function redisBenchmark(run: RbRun): Promise<{ rows: RbRow[]; errors: string[] }> {
  const args = ['-h', run.host, '-p', String(run.port), '-t', run.tests];
  args.push('-n', String(run.requests), '-c', String(run.clients), '-P', String(run.pipeline));
  args.push('-r', String(run.keys), '-d', String(run.valueBytes), '--csv');
  const { stdout } = await execFileAsync('redis-benchmark', args, {
    timeout: run.timeoutMs,
    maxBuffer: 16 * 2 ** 20,
  });
  const parsed = parseCsv(stdout);
  if (parsed.rows.length !== run.tests.split(',').length)
    throw new Error(`bench: redis-benchmark ${args.join(' ')} printed no result:\n${stdout}`);
  return parsed;
}

export interface RbOptions {
  readonly clients: number;
  readonly keys: number;
  readonly valueBytes: number;
  /** The measured run is sized to last about this long. */
  readonly durationS: number;
  /** Instead: one run of clients x pipeline x this many requests, no warm-up (--quick). */
  readonly fixedRequests: number | null;
}

const cpuMs = (pids: readonly number[]) => pids.reduce((s, p) => s + processCpuMs(p, 100), 0);

/** One redis-benchmark run of `requests` requests of one cell against one target. */
async function runOnce(
  target: RbTarget,
  cell: RbCell,
  requests: number,
  opts: RbOptions,
): Promise<RbMeasurement> {
  const cpu0 = cpuMs(target.pids);
  const t0 = performance.now();
  const { rows, errors } = await redisBenchmark({
    host: target.host,
    port: target.port,
    tests: cell.op,
    requests,
    clients: opts.clients,
    pipeline: cell.pipeline,
    keys: opts.keys,
    valueBytes: opts.valueBytes,
    timeoutMs: Math.max(120_000, opts.durationS * 20_000),
  });
  const wallMs = performance.now() - t0;
  const serverCpuPct = (100 * (cpuMs(target.pids) - cpu0)) / wallMs;
  return { ...rows[0]!, requests, wallMs, serverCpuPct, error: errors[0] ?? null };
}

/**
 * Short runs (which also warm up) grow the request count until one lasts a good fraction of the
 * duration; the measured run then asks for rps x duration requests (once more if it ended early).
 */
export async function measureRb(
  target: RbTarget,
  cell: RbCell,
  opts: RbOptions,
): Promise<RbMeasurement> {
  const floor = opts.clients * cell.pipeline * (opts.fixedRequests ?? 4);
  if (opts.fixedRequests !== null) return runOnce(target, cell, floor, opts);
  const enoughMs = Math.min(1000, (opts.durationS * 1000) / 3);
  let requests = floor;
  let rps = 0;
  for (let round = 0; round < 6; round++) {
    const m = await runOnce(target, cell, requests, opts);
    rps = m.rps;
    if (m.wallMs >= enoughMs) break;
    requests = Math.ceil(requests * Math.min(20, Math.max(2, (1.5 * enoughMs) / m.wallMs)));
  }
  const sized = (r: number) => Math.max(floor, Math.round(r * opts.durationS));
  const m = await runOnce(target, cell, sized(rps), opts);
  // A warmer server can be much faster than the estimate: size once more from this run.
  if (m.wallMs >= 0.6 * opts.durationS * 1000) return m;
  return runOnce(target, cell, sized(m.rps), opts);
}

/** A cell redis-benchmark could not finish: no figures (NaN fails every goal), the reason. */
function failed(err: unknown): RbMeasurement {
  const message = err instanceof Error ? err.message : String(err);
  const reason = message.match(/Error from server: .*/)?.[0] ?? message.split('\n')[0]!;
  const none = Number.NaN;
  return {
    test: '',
    rps: none,
    avgMs: none,
    minMs: none,
    p50Ms: none,
    p95Ms: none,
    p99Ms: none,
    maxMs: none,
    requests: 0,
    wallMs: 0,
    serverCpuPct: none,
    error: reason,
  };
}

/** Every cell on every target in turn (the order of RB_TARGETS): shared conditions. */
export async function runRbCells(
  targets: readonly RbTarget[],
  opts: RbOptions,
  progress: (cell: RbCell, name: RbTargetName, m: RbMeasurement) => void,
): Promise<RbCellResult[]> {
  const out: RbCellResult[] = [];
  for (const cell of RB_CELLS) {
    const results = {} as Record<RbTargetName, RbMeasurement>;
    for (const t of targets) {
      // A target that fails a cell (a cluster timing out on a loaded machine) is reported as
      // such; the other targets and cells are still measured.
      results[t.name] = await measureRb(t, cell, opts).catch(failed);
      progress(cell, t.name, results[t.name]);
    }
    const { clients, keys, valueBytes } = opts;
    out.push({ cell, clients, keys, valueBytes, results });
  }
  return out;
}

/** Writes redis-benchmark's keys `key:000000000000` .. once (MSET batches) so GETs hit. */
export async function prefillRb(
  target: { readonly name: string; readonly host: string; readonly port: number },
  keys: number,
  valueBytes: number,
) {
  const r = await respLoad({
    host: target.host,
    port: target.port,
    from: 0,
    to: keys,
    valueBytes,
    connections: 8,
    depth: 16,
    pairs: 20,
  });
  if (r.errors > 0)
    throw new Error(`bench: ${r.errors} errors filling ${target.name}: ${r.firstError}`);
  return r;
}
