// Benchmark report: machine info, the text-protocol tables, the whole Markdown report and its files.

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { type EtcdComparison, etcdSection } from './etcd.ts';
import { type Goal, renderHeadline } from './goals.ts';
import type { LatencySummary } from './histogram.ts';
import type { Op } from './loadgen.ts';
import type { MemoryResult } from './memory.ts';
import type { FsyncProbe } from './procs.ts';
import { type GoalProfiles, profilesSection } from './profile.ts';
import type { RbCellResult } from './redisbench.ts';
import { markdownTable, num, ratio, us } from './table.ts';

export type TargetName = 'kvstore' | 'redis' | 'redis-aof';
export const TARGETS: readonly TargetName[] = ['kvstore', 'redis', 'redis-aof'];

export interface Cell {
  readonly op: Op;
  readonly connections: number;
  readonly depth: number;
}

/** One server's measurement of one cell. */
export interface TargetResult {
  readonly opsPerSec: number;
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly misses: number;
  readonly firstError: string | null;
  readonly windowMs: number;
  /** Server process CPU during the window, percent of one core. */
  readonly serverCpuPct: number;
  /** All load generator threads' CPU during the window, percent of one core. */
  readonly loadgenCpuPct: number;
  /** Highest event-loop utilization among the generator threads (1 = saturated). */
  readonly loadgenMaxElu: number;
}

export interface CellResult {
  readonly cell: Cell;
  readonly results: Record<TargetName, TargetResult>;
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly redis: string;
  readonly dataFs: string;
  readonly loadAvgAtStart: readonly number[];
  readonly gitCommit: string;
}

export interface Report {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly options: Record<string, unknown>;
  readonly machine: MachineInfo;
  /** redis-benchmark cells: the issue's workload on Redis, Redis AOF, kvstore, a 3-node cluster. */
  readonly rb: readonly RbCellResult[];
  readonly goals: readonly Goal[];
  /** The 3-node comparison with etcd (bench/etcd.ts); null with --skip-etcd. */
  readonly etcd: EtcdComparison | null;
  /** The 1M-key memory and restart probe; null with --skip-memory or --quick. */
  readonly memory: MemoryResult | null;
  /** Where the failing goals' cells spend their CPU (bench/profile.ts); null with --skip-profiles. */
  readonly profiles: GoalProfiles | null;
  /** The text-protocol generator cells (issue 2). */
  readonly cells: readonly CellResult[];
  readonly crosscheck: readonly string[];
  /** Conditions around the run: the machine is shared, so these explain much of the variance. */
  readonly conditions: {
    readonly fsyncAtStart: FsyncProbe;
    readonly fsyncAtEnd: FsyncProbe;
    readonly loadAvgAtEnd: readonly number[];
  };
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** 1, 5 and 15 minute load averages, rounded. */
export function loadAverage(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

export function machineInfo(dataRoot: string, root: string): MachineInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const redis = /v=(\S+)/.exec(run('redis-server', ['--version']))?.[1] ?? 'unknown';
  const dirty = run('git', ['-C', root, 'status', '--porcelain']).length > 0 ? '+dirty' : '';
  // findmnt tells ext4 apart; `stat -f` says ext2/ext3 for all three.
  const fs = run('findmnt', ['-n', '-o', 'FSTYPE', '--target', dataRoot]);
  return {
    nproc: availableParallelism(),
    cpuModel: model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    redis,
    dataFs: fs === 'unknown' || fs === '' ? run('stat', ['-f', '-c', '%T', dataRoot]) : fs,
    loadAvgAtStart: loadAverage(),
    gitCommit: run('git', ['-C', root, 'rev-parse', '--short', 'HEAD']) + dirty,
  };
}

const cellName = (c: Cell) => [
  c.op === 'put' ? 'PUT/SET' : 'GET',
  String(c.connections),
  String(c.depth),
];

/** Rows of the main table: ops/s and latency side by side, ratios kvstore/Redis. */
function mainTable(cells: readonly CellResult[]): string[][] {
  const head = ['op', 'conns', 'depth', 'kvstore ops/s', 'kv p50 µs', 'kv p99 µs', 'redis ops/s'];
  head.push(
    'redis p50 µs',
    'redis p99 µs',
    'redis-aof ops/s',
    'kv/redis ops',
    'kv/redis p99',
    'kv/aof ops',
  );
  const rows = cells.map(({ cell, results: r }) => {
    const kv = r.kvstore;
    const rd = r.redis;
    const aof = r['redis-aof'];
    return [
      ...cellName(cell),
      num(kv.opsPerSec),
      us(kv.latency.p50Us),
      us(kv.latency.p99Us),
      num(rd.opsPerSec),
      us(rd.latency.p50Us),
      us(rd.latency.p99Us),
      num(aof.opsPerSec),
      ratio(kv.opsPerSec, rd.opsPerSec),
      ratio(kv.latency.p99Us, rd.latency.p99Us),
      ratio(kv.opsPerSec, aof.opsPerSec),
    ];
  });
  return [head, ...rows];
}

/** Rows of the resource table: server and generator CPU, generator saturation, errors. */
function resourceTable(cells: readonly CellResult[]): string[][] {
  const head = ['op', 'conns', 'depth'];
  for (const t of TARGETS) head.push(`${t} CPU%`, `gen CPU% / ELU (${t})`);
  head.push('errors', 'GET misses');
  const rows = cells.map(({ cell, results: r }) => {
    const row = cellName(cell);
    for (const t of TARGETS) {
      row.push(
        r[t].serverCpuPct.toFixed(0),
        `${r[t].loadgenCpuPct.toFixed(0)} / ${r[t].loadgenMaxElu.toFixed(2)}`,
      );
    }
    row.push(String(TARGETS.reduce((s, t) => s + r[t].errors, 0)));
    row.push(String(TARGETS.reduce((s, t) => s + r[t].misses, 0)));
    return row;
  });
  return [head, ...rows];
}

export function renderTextTables(cells: readonly CellResult[]): string {
  return `${markdownTable(mainTable(cells))}\n\nResource use during each window (CPU% of one core; gen = load generator threads):\n\n${markdownTable(resourceTable(cells))}`;
}

export function renderMarkdown(report: Report): string {
  const m = report.machine;
  const o = report.options;
  const c = report.conditions;
  const rb = report.rb[0];
  const lines = [
    '# kvstore benchmark: kvstore vs Redis, side by side',
    '',
    `Run ${report.startedAt} – ${report.finishedAt}, commit ${m.gitCommit}${o.quick ? ' (--quick: a smoke test, not a measurement)' : ''}.`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpuModel}, nproc ${m.nproc}, memory ${m.memoryGiB} GiB, kernel ${m.kernel}`,
    `- Node ${m.node}, Redis ${m.redis} (redis-server and redis-benchmark from Debian); data dirs on ${m.dataFs}`,
    `- Load average ${m.loadAvgAtStart.join(' ')} at start, ${c.loadAvgAtEnd.join(' ')} at end (others share this machine)`,
    `- 4 KiB write + fdatasync in the data dir: p50 ${c.fsyncAtStart.p50Us} µs, p99 ${c.fsyncAtStart.p99Us} µs at start;`,
    `  p50 ${c.fsyncAtEnd.p50Us} µs, p99 ${c.fsyncAtEnd.p99Us} µs at end (bounds every write-ahead log group commit)`,
    '',
    '## redis-benchmark: kvstore as a ratio of Redis, and the goals',
    '',
    `\`redis-benchmark -t set|get -c ${rb?.clients ?? 50} -P 1|16 -r ${rb?.keys ?? 0} -d ${rb?.valueBytes ?? 0} --csv\`, ${o.quick ? 'one short run' : 'each run sized to'}`,
    `${o.quick ? 'of 4 x clients x pipeline requests (--quick)' : `about ${o.durationS} s after short warm-up runs`}; the keys \`key:000000000000\`.. are pre-filled on`,
    'every target so GETs hit. Targets, each cell measured on all five in turn: Redis `--save "" --appendonly no`;',
    'Redis `--appendonly yes --appendfsync everysec`; Redis `--appendonly yes --appendfsync always` (fsynced',
    "before it replies: the same guarantee as kvstore's OK); one kvstore node with `--replication-factor 1`",
    '(`OK` = durable: in the write-ahead log, one O_DSYNC write per group of writes); three kvstore nodes on 127.x.y.1-3, RF=3 W=2 R=2, with',
    'redis-benchmark driving node 1 (which forwards). Latency is per request, or per pipeline of 16 with',
    '-P 16 (redis-benchmark times a batch). Ratios are kvstore/Redis from this run: ops > 1 and p99 < 1',
    'favour kvstore. Server CPU% is of one core (the cluster row sums three nodes); redis-benchmark',
    'itself takes most of the other core.',
    '',
    renderHeadline(report.rb, report.goals, report.memory),
    '',
    ...(report.etcd === null ? [] : etcdSection(report.etcd)),
  ];
  if (report.cells.length > 0) {
    lines.push(
      '## Text-protocol generator cells',
      '',
      `- Key space ${o.keys} keys (\`key:<8 hex>\`, pre-filled on every server), values ${o.valueBytes} bytes;`,
      `  uniformly random keys; ${o.warmupS} s warm-up then ${o.durationS} s measured per cell and server.`,
      '- kvstore: the single node above, text protocol (`PUT k v` / `GET k`), durable writes.',
      '- redis, redis-aof: as above, spoken to with inline commands (`SET k v` / `GET k`), RESP replies.',
      `- Load generator: ${o.workers} worker_threads splitting the connections; each connection keeps \`depth\``,
      '  requests outstanding; latency = reply read time − request write time, log-bucket histogram (<1% error).',
      '',
      renderTextTables(report.cells),
      '',
      'Reading it: kv/redis ops < 1 means kvstore serves fewer ops/s than Redis; kv/redis p99 > 1 means',
      "kvstore's p99 is higher. Latency includes time queued behind the connection's other outstanding",
      "requests, so with many requests in flight p50 ≈ in-flight requests / ops/s (Little's law).",
      "Single-connection cells are round-trip bound: the generator's own turnaround (Node event loop",
      'in a worker thread, tens of µs) is part of every round trip for both servers.',
      '',
    );
  }
  if (report.profiles !== null) lines.push(...profilesSection(report.profiles));
  if (report.crosscheck.length > 0) {
    lines.push(
      '## Generator check (redis-benchmark against the no-persistence Redis)',
      '',
      ...report.crosscheck,
      '',
    );
  }
  return lines.join('\n');
}

/** The date part of a report's file name: the run's ISO start, seconds only, `:` as `-`. */
export function reportStamp(startedAt: string): string {
  return startedAt.replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
}

/** Writes `<stamp>-bench.md/.json` and `latest-bench.md/.json` into `outDir`; returns the .md path. */
export function writeReport(report: Report, outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const stamp = reportStamp(report.startedAt);
  const md = join(outDir, `${stamp}-bench.md`);
  const json = join(outDir, `${stamp}-bench.json`);
  writeFileSync(md, renderMarkdown(report));
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  copyFileSync(md, join(outDir, 'latest-bench.md'));
  copyFileSync(json, join(outDir, 'latest-bench.json'));
  return md;
}
