// bench/history.ts: the goals of saved bench reports as one table, a row per run, columns from
// the newest report's goals.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Goal } from '../../bench/goals.ts';
import { historyTable, type SavedReport, writeHistory } from '../../bench/history.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const goal = (name: string, measured: string, pass: boolean | null): Goal => ({
  goal: name,
  measured,
  value: null,
  pass,
});

const older: SavedReport = {
  startedAt: '2026-12-01T10:00:00.000Z',
  machine: { gitCommit: 'aaaaaaa', loadAvgAtStart: [2.25, 1, 1] },
  goals: [goal('GET P1 >= 0.9x', '0.81x (98 / 122)', false)],
  etcd: null,
};
const newer: SavedReport = {
  startedAt: '2026-12-02T11:30:00.000Z',
  machine: { gitCommit: 'bbbbbbb', loadAvgAtStart: [0.5, 1, 1] },
  goals: [
    goal('GET P1 >= 0.9x', '0.95x (116 / 122)', true),
    goal('empty RSS <= 64 MiB', 'not measured', null),
  ],
  etcd: { goals: [goal('writes >= 3x etcd', 'NaNx (0 / 0)', false)] },
};

afterEach(cleanup);

describe('bench history', () => {
  it('puts runs oldest first under the newest report goals, bold for a pass', () => {
    const t = historyTable([newer, older]);
    expect(t[0]).toEqual(['run (UTC)', 'commit', 'load', 'G1', 'G2', 'G3']);
    expect(t[1]).toEqual(['2026-12-01 10:00', 'aaaaaaa', '2.3', '0.81x', '-', '-']);
    expect(t[2]).toEqual(['2026-12-02 11:30', 'bbbbbbb', '0.5', '**0.95x**', 'skipped', 'n/a']);
  });

  it('reads only the dated reports of a directory and names every column', () => {
    const dir = tempDir('kvstore-bench-history-');
    writeFileSync(join(dir, '2026-12-01T10-00-00Z-bench.json'), JSON.stringify(older));
    writeFileSync(join(dir, '2026-12-02T11-30-00Z-bench.json'), JSON.stringify(newer));
    // A copy of the newest, as run.ts writes it: not a second row.
    writeFileSync(join(dir, 'latest-bench.json'), JSON.stringify(newer));
    const md = readFileSync(writeHistory(dir), 'utf8');
    expect(md).toContain('- G3: writes >= 3x etcd');
    expect(md.match(/^\| 2026-/gm)).toHaveLength(2);
  });
});
