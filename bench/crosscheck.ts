// Runs redis-benchmark (C, RESP multibulk) on the same Redis to show how close our generator gets.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type CellResult, markdownTable } from './report.ts';

const execFileAsync = promisify(execFile);

interface BenchmarkRow {
  readonly op: 'put' | 'get';
  readonly rps: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

/** `redis-benchmark -t set,get --csv` with a bounded request count; parses its CSV lines. */
async function redisBenchmark(
  port: number,
  connections: number,
  depth: number,
  requests: number,
  keys: number,
  valueBytes: number,
): Promise<BenchmarkRow[]> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', 'set,get', '-n', String(requests)];
  args.push(
    '-c',
    String(connections),
    '-P',
    String(depth),
    '-d',
    String(valueBytes),
    '-r',
    String(keys),
    '--csv',
  );
  const { stdout } = await execFileAsync('redis-benchmark', args, { timeout: 120_000 });
  const rows: BenchmarkRow[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.split(',').map((s) => s.replaceAll('"', ''));
    if (f[0] !== 'SET' && f[0] !== 'GET') continue;
    const ms = (s: string | undefined) => Number(s) * 1000;
    rows.push({
      op: f[0] === 'SET' ? 'put' : 'get',
      rps: Number(f[1]),
      p50Us: ms(f[4]),
      p99Us: ms(f[6]),
    });
  }
  return rows;
}

const fmt = (n: number | undefined) =>
  n === undefined ? 'n/a' : Math.round(n).toLocaleString('en-US');

/** One table row: redis-benchmark's numbers beside this harness's for the same Redis cell. */
function row(
  b: BenchmarkRow,
  connections: number,
  depth: number,
  cells: readonly CellResult[],
): string[] {
  const r = cells.find(
    (c) => c.cell.op === b.op && c.cell.connections === connections && c.cell.depth === depth,
  )?.results.redis;
  const ratio = r === undefined || b.rps <= 0 ? Number.NaN : r.opsPerSec / b.rps;
  const verdict = Number.isNaN(ratio)
    ? 'n/a'
    : `${ratio.toFixed(2)}x${ratio < 0.8 ? ' (harness-limited)' : ''}`;
  const name = b.op === 'put' ? 'SET' : 'GET';
  return [name, String(connections), String(depth), fmt(b.rps), fmt(b.p50Us), fmt(b.p99Us)].concat(
    fmt(r?.opsPerSec),
    fmt(r?.latency.p50Us),
    fmt(r?.latency.p99Us),
    verdict,
  );
}

/**
 * Markdown lines comparing redis-benchmark with this harness against the no-persistence Redis, for
 * each (connections, depth) measured; request counts sized to take a few seconds at most.
 */
export async function crosscheck(
  port: number,
  cells: readonly CellResult[],
  keys: number,
  valueBytes: number,
): Promise<string[]> {
  const head = ['op', 'conns', 'depth', 'redis-benchmark ops/s', 'p50 µs', 'p99 µs'];
  const rows = [head.concat('harness ops/s', 'p50 µs', 'p99 µs', 'harness / redis-benchmark')];
  const shapes = new Map(cells.map((c) => [`${c.cell.connections}x${c.cell.depth}`, c.cell]));
  for (const { connections, depth } of shapes.values()) {
    const requests = Math.min(400_000, 20_000 * connections * depth);
    for (const b of await redisBenchmark(port, connections, depth, requests, keys, valueBytes)) {
      rows.push(row(b, connections, depth, cells));
    }
  }
  return [
    'redis-benchmark (C, single thread, RESP multibulk, sends each pipeline as one batch; its latency',
    'is per batch) run right after the cells against the same no-persistence Redis. Where this',
    'harness reaches clearly fewer ops/s (< 0.8x, "harness-limited"), the generator, not Redis, bounds',
    "that row's Redis numbers, so the kvstore/Redis ratios there flatter kvstore. Both runs are single",
    'samples on a shared machine, so differences within ~20% are noise.',
    '',
    markdownTable(rows),
  ];
}
