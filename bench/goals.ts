// The headline: redis-benchmark figures as ratios of Redis's from the same run, and the goals.

import type { MemoryResult } from './memory.ts';
import type { RbCellResult, RbMeasurement, RbOp, RbTargetName } from './redisbench.ts';
import { emptyNodeLines, medianNode } from './startup-memory.ts';
import { markdownTable, mib, ms, num, ratio } from './table.ts';

export const TARGET_LABELS: Record<RbTargetName, string> = {
  redis: 'Redis, no persistence',
  'redis-aof': 'Redis, AOF everysec',
  'redis-always': 'Redis, AOF always',
  kvstore: 'kvstore, 1 node RF=1',
  cluster: 'kvstore, 3 nodes RF=3 W=2 R=2',
};

/**
 * The cell behind a goal: what profile.ts runs again under the profiler when the goal fails.
 * `rb`: redis-benchmark on the single node or the 3-node cluster; `storeload`: the etcd
 * comparison's load generator on the 3-node cluster.
 */
export type GoalCell =
  | {
      readonly kind: 'rb';
      readonly target: 'kvstore' | 'cluster';
      readonly op: RbOp;
      readonly pipeline: number;
    }
  | { readonly kind: 'storeload'; readonly op: 'put' | 'get' };

/** One goal of the issue, with what this run measured. */
export interface Goal {
  readonly goal: string;
  readonly measured: string;
  /** The measured ratio (or seconds, for the restart goal); null when not measured. */
  readonly value: number | null;
  /** null: not measured in this run (e.g. --skip-memory). */
  readonly pass: boolean | null;
  /** The kvstore cell it measures (none for the memory goals). */
  readonly cell?: GoalCell;
}

const workload = (op: RbOp, pipeline: number) => `${op.toUpperCase()} P${pipeline}`;

/** Rows: workload x target; ratios of kvstore (and the cluster) to Redis, and cluster to 1 node. */
export function rbTable(cells: readonly RbCellResult[]): string[][] {
  const head = ['workload', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'ops vs Redis'];
  head.push('ops vs Redis AOF', 'ops vs Redis always', 'ops vs 1 node', 'p99 vs Redis');
  head.push('p99 vs Redis AOF', 'server CPU%');
  const rows = [head];
  for (const { cell, results: r } of cells) {
    for (const [name, m] of Object.entries(r) as [RbTargetName, RbMeasurement][]) {
      const ours = name === 'kvstore' || name === 'cluster';
      rows.push([
        workload(cell.op, cell.pipeline),
        TARGET_LABELS[name] + (m.error === null ? '' : ' (errors!)'),
        num(m.rps),
        ms(m.p50Ms),
        ms(m.p99Ms),
        name === 'redis' ? '' : ratio(m.rps, r.redis.rps),
        ours ? ratio(m.rps, r['redis-aof'].rps) : '',
        ours ? ratio(m.rps, r['redis-always'].rps) : '',
        name === 'cluster' ? ratio(m.rps, r.kvstore.rps) : '',
        name === 'redis' ? '' : ratio(m.p99Ms, r.redis.p99Ms),
        ours ? ratio(m.p99Ms, r['redis-aof'].p99Ms) : '',
        m.serverCpuPct.toFixed(0),
      ]);
    }
  }
  return rows;
}

function find(cells: readonly RbCellResult[], op: RbOp, pipeline: number) {
  return cells.find((c) => c.cell.op === op && c.cell.pipeline === pipeline)?.results;
}

/** A goal on a/b: at least `min` (throughput) or at most `max` (latency). */
export function ratioGoal(
  goal: string,
  a: number | undefined,
  b: number | undefined,
  bound: { readonly min?: number; readonly max?: number },
  unit: (n: number) => string,
  cell?: GoalCell,
): Goal {
  const of = cell === undefined ? {} : { cell };
  if (a === undefined || b === undefined || !(b > 0))
    return { goal, measured: 'not measured', value: null, pass: null, ...of };
  const value = a / b;
  const pass = bound.min !== undefined ? value >= bound.min : value <= bound.max!;
  return { goal, measured: `${value.toFixed(2)}x (${unit(a)} / ${unit(b)})`, value, pass, ...of };
}

const opsUnit = (n: number) => `${num(n)} ops/s`;
const msUnit = (n: number) => `${ms(n)} ms`;

/** The single-node and memory goals of issue 17, in its order (the 3-node ones of issue 6). */
export function evaluateGoals(cells: readonly RbCellResult[], memory: MemoryResult | null): Goal[] {
  const at = (op: RbOp, p: number, t: RbTargetName) => find(cells, op, p)?.[t];
  // [goal, op, pipeline, compared with, field, bound]: kvstore's figure over that target's.
  const single: [
    string,
    RbOp,
    number,
    RbTargetName,
    'rps' | 'p99Ms',
    { min?: number; max?: number },
  ][] = [
    ['GET P16: kvstore >= 0.5x Redis', 'get', 16, 'redis', 'rps', { min: 0.5 }],
    ['GET P1: kvstore >= 0.9x Redis', 'get', 1, 'redis', 'rps', { min: 0.9 }],
    ['p99, 50 conns, GET P1: kvstore <= 1.5x Redis', 'get', 1, 'redis', 'p99Ms', { max: 1.5 }],
    ['durable SET P1: kvstore >= 1x Redis AOF always', 'set', 1, 'redis-always', 'rps', { min: 1 }],
    [
      'durable SET P16: kvstore >= 1x Redis AOF always',
      'set',
      16,
      'redis-always',
      'rps',
      { min: 1 },
    ],
    [
      'durable SET P1: kvstore >= 0.5x Redis AOF everysec',
      'set',
      1,
      'redis-aof',
      'rps',
      { min: 0.5 },
    ],
  ];
  const goals = single.map(([goal, op, p, target, field, bound]) =>
    ratioGoal(
      goal,
      at(op, p, 'kvstore')?.[field],
      at(op, p, target)?.[field],
      bound,
      field === 'rps' ? opsUnit : msUnit,
      { kind: 'rb', target: 'kvstore', op, pipeline: p },
    ),
  );
  for (const op of ['set', 'get'] as const) {
    for (const p of [1, 16]) {
      goals.push(
        ratioGoal(
          `3-node cluster ${workload(op, p)}: >= 0.25x 1 node`,
          at(op, p, 'cluster')?.rps,
          at(op, p, 'kvstore')?.rps,
          { min: 0.25 },
          opsUnit,
          { kind: 'rb', target: 'cluster', op, pipeline: p },
        ),
      );
    }
  }
  const keys = memory === null ? '1,000,000 keys' : `${num(memory.keys)} keys`;
  const emptyGoal = 'empty node RSS <= 64 MiB';
  if (memory === null)
    goals.push({ goal: emptyGoal, measured: 'not measured', value: null, pass: null });
  else {
    // The compiled node, as the image runs it, without the probe's inspector; the .ts node is
    // beside it in the memory lines.
    const rss = medianNode(memory.emptyNode.js).rss.rss;
    const measured = `${mib(rss)} (compiled; from the .ts sources ${mib(medianNode(memory.emptyNode.ts).rss.rss)})`;
    goals.push({ goal: emptyGoal, measured, value: rss, pass: rss <= 64 * 1024 * 1024 });
  }
  goals.push(
    ratioGoal(
      `${keys} x 100 B: node RSS after idle <= 1.5x raw data`,
      memory?.settled.rss,
      memory?.rawBytes,
      { max: 1.5 },
      mib,
    ),
  );
  const restartGoal = 'restart to serving (spawn to PONG) < 2 s';
  if (memory === null)
    goals.push({ goal: restartGoal, measured: 'not measured', value: null, pass: null });
  else {
    const s = memory.restart.pingMs / 1000;
    const measured = `${s.toFixed(2)} s (node listening at ${(memory.restart.listeningMs / 1000).toFixed(2)} s)`;
    goals.push({ goal: restartGoal, measured, value: s, pass: s < 2 && memory.restart.readBack });
  }
  const crashGoal = 'restart after SIGKILL (log replay, tree check) to serving < 2 s';
  if (memory === null)
    goals.push({ goal: crashGoal, measured: 'not measured', value: null, pass: null });
  else {
    const c = memory.crashRestart;
    const measured = `${(c.pingMs / 1000).toFixed(2)} s (node listening at ${(c.listeningMs / 1000).toFixed(2)} s)`;
    goals.push({
      goal: crashGoal,
      measured,
      value: c.pingMs / 1000,
      pass: c.pingMs < 2000 && c.readBack,
    });
  }
  return goals;
}

export function goalsTable(goals: readonly Goal[]): string[][] {
  const verdict = (p: boolean | null) => (p === null ? 'SKIPPED' : p ? 'PASS' : 'FAIL');
  return [
    ['goal', 'measured', 'result'],
    ...goals.map((g) => [g.goal, g.measured, verdict(g.pass)]),
  ];
}

/** The memory/restart probe as Markdown lines. */
export function memoryLines(m: MemoryResult): string[] {
  const rss = (r: { rss: number; anon: number; file: number }) =>
    `${mib(r.rss)} (anon ${mib(r.anon)}, file-backed ${mib(r.file)})`;
  return [
    ...emptyNodeLines(m.emptyNode),
    '',
    `- Loaded ${num(m.keys)} distinct keys (\`key:%012d\`, ${m.valueBytes}-byte values; raw ${mib(m.rawBytes)}) into a fresh compiled node`,
    `  with pipelined MSETs in ${(m.loadMs / 1000).toFixed(1)} s (${num((m.keys * 1000) / m.loadMs)} keys/s); DBSIZE ${num(m.dbsize)}.`,
    `- Node RSS empty (with the inspector) ${rss(m.empty)}; right after the load ${rss(m.afterLoad)}, peak ${mib(m.afterLoad.peak)};`,
    `  ${(m.settleMs / 1000).toFixed(0)} s later, 6 s after its CPU went quiet, ${rss(m.settled)}: **${ratio(m.settled.rss, m.rawBytes)} the raw data**`,
    '  (an idle node runs one full GC after a burst and returns the freed heap: `kvstore_heap_trims_total`).',
    ...(m.afterGc === null
      ? []
      : [
          `- Diagnosis: V8 heap ${mib(m.afterGc.heapUsedBefore)} used of ${mib(m.afterGc.heapTotalBefore)} before a full GC forced over the`,
          `  inspector, ${mib(m.afterGc.heapUsed)} of ${mib(m.afterGc.heapTotal)} after; RSS then ${rss(m.afterGc.rss)}, ${ratio(m.afterGc.rss.rss, m.rawBytes)} raw.`,
        ]),
    ...(m.afterMallocTrim === null
      ? []
      : [
          `- Diagnosis: glibc's \`malloc_trim(0)\` called in the node over gdb after that: RSS ${rss(m.afterMallocTrim)},`,
          `  ${ratio(m.afterMallocTrim.rss, m.rawBytes)} raw (the anon it gave back is memory the load freed that glibc's allocator kept).`,
        ]),
    `- Data dir ${mib(m.dataDirBytes)} (${ratio(m.dataDirBytes, m.rawBytes)} raw).`,
    `- SIGTERM to exit ${(m.stopMs / 1000).toFixed(2)} s; restart: \`node listening\` after ${(m.restart.listeningMs / 1000).toFixed(2)} s,`,
    `  first PONG after ${(m.restart.pingMs / 1000).toFixed(2)} s; DBSIZE ${num(m.restart.dbsize)}, read-back ${m.restart.readBack ? 'ok' : 'FAILED'};`,
    `  RSS after the restart ${rss(m.restart.rss)}.`,
    `- One more SET, SIGKILL, start again (a log to replay and the LMDB tree check): \`node listening\` after`,
    `  ${(m.crashRestart.listeningMs / 1000).toFixed(2)} s, first PONG after ${(m.crashRestart.pingMs / 1000).toFixed(2)} s; DBSIZE ${num(m.crashRestart.dbsize)}, the last SET ${m.crashRestart.readBack ? 'read back' : 'LOST'}.`,
    `- Redis (no persistence) with the same keys: RSS ${mib(m.redis.rss.rss)} (${ratio(m.redis.rss.rss, m.rawBytes)} raw),`,
    `  used_memory ${mib(m.redis.usedMemory)}; kvstore/Redis RSS ${ratio(m.settled.rss, m.redis.rss.rss)}.`,
  ];
}

/** The goals and the redis-benchmark table, as printed on the console and in the report. */
export function renderHeadline(
  cells: readonly RbCellResult[],
  goals: readonly Goal[],
  memory: MemoryResult | null,
): string {
  const parts = [markdownTable(rbTable(cells), 2), '', markdownTable(goalsTable(goals), 2)];
  if (memory !== null) parts.push('', ...memoryLines(memory));
  return parts.join('\n');
}
