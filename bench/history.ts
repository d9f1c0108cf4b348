// Every saved `npm run bench` report as one row of a table: the goals of issue 17 run by run.
//
//   node bench/history.ts [--dir bench/results] [--out bench/results/HISTORY.md]
//
// run.ts rewrites the file after each full run; the reports themselves
// (`<stamp>-bench.json`) are the source, so the table cannot drift from them.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { etcdGoals, type StoreCell } from './etcd.ts';
import type { Goal } from './goals.ts';
import { markdownTable } from './table.ts';

/** What history reads of a saved report (older reports lack some fields). */
export interface SavedReport {
  readonly startedAt: string;
  readonly machine?: { readonly gitCommit?: string; readonly loadAvgAtStart?: readonly number[] };
  readonly goals?: readonly Goal[];
  readonly etcd?: {
    readonly goals?: readonly Goal[];
    readonly cells?: readonly StoreCell[];
  } | null;
}

/** Every goal a report judged: the redis-benchmark and memory goals, then the etcd ones. */
export function reportGoals(r: SavedReport): Goal[] {
  const etcd = r.etcd?.goals ?? (r.etcd?.cells ? etcdGoals(r.etcd.cells) : []);
  return [...(r.goals ?? []), ...etcd];
}

/** The figure of a goal as its report printed it, without the operands: `0.49x`, `63 MiB`. */
export function figure(g: Goal): string {
  if (g.pass === null) return 'skipped';
  const head = g.measured
    .split(' (')[0]!
    .trim()
    .replace(/^NaNx?$/, 'n/a');
  return g.pass ? `**${head}**` : head;
}

/** The goals of the newest report: the table's columns, G1.. in this order. */
export function historyGoals(reports: readonly SavedReport[]): string[] {
  const newest = [...reports].sort((a, b) => a.startedAt.localeCompare(b.startedAt)).at(-1);
  return newest ? reportGoals(newest).map((g) => g.goal) : [];
}

/**
 * Rows: runs, oldest first; columns G1.. (historyGoals; a goal an older run did not judge, or
 * judged under other words, is `-`). A figure in bold passed its goal.
 */
export function historyTable(reports: readonly SavedReport[]): string[][] {
  const runs = [...reports].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const columns = historyGoals(runs);
  const rows = runs.map((r) => {
    const byGoal = new Map(reportGoals(r).map((g) => [g.goal, g]));
    const load = r.machine?.loadAvgAtStart?.[0];
    return [
      r.startedAt.slice(0, 16).replace('T', ' '),
      r.machine?.gitCommit ?? '?',
      load === undefined ? '?' : load.toFixed(1),
      ...columns.map((c) => {
        const g = byGoal.get(c);
        return g ? figure(g) : '-';
      }),
    ];
  });
  return [['run (UTC)', 'commit', 'load', ...columns.map((_, i) => `G${i + 1}`)], ...rows];
}

/** Reads every `<stamp>-bench.json` in dir (not latest-bench.json, a copy of the newest). */
export function readReports(dir: string): SavedReport[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}-\d\d-\d\dT[\d-]+Z-bench\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as SavedReport);
}

export function historyMarkdown(reports: readonly SavedReport[]): string {
  return [
    '# Issue 17 goals, run by run',
    '',
    'Written by `node bench/history.ts` (and by every full `npm run bench`) from the',
    '`*-bench.json` reports in this directory. Each figure is a ratio measured side by side in',
    'that run (or MiB, or seconds); **bold** passed its goal. `load` is the 1-minute load average',
    "at the run's start: the machine is shared, so compare runs of similar load, and changes by",
    'A/B runs (`bench/ab.ts`), not across rows. A `+dirty` commit had uncommitted changes.',
    '',
    ...historyGoals(reports).map((g, i) => `- G${i + 1}: ${g}`),
    '',
    markdownTable(historyTable(reports), 3),
    '',
  ].join('\n');
}

export function writeHistory(dir: string, out = join(dir, 'HISTORY.md')): string {
  writeFileSync(out, historyMarkdown(readReports(dir)));
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string', default: 'bench/results' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'node bench/history.ts [--dir bench/results] [--out <dir>/HISTORY.md]\n' +
        'Writes the goals of every saved bench report as one table, a row per run.\n',
    );
  } else {
    process.stdout.write(`${writeHistory(values.dir, values.out)}\n`);
  }
}
