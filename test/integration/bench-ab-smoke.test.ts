// Smoke test of bench/ab.ts: two builds (here the same sources twice) side by side write a sane table and leave nothing behind.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);

const abDirs = () => new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('kvstore-ab-')));

it('compares two builds cell by cell, with node CPU per request and B/A', {
  timeout: 180_000,
}, async () => {
  const before = abDirs();
  const args = ['bench/ab.ts', '--a', 'src/main.ts', '--b', 'src/main.ts'];
  args.push('--cells', 'set:1,get:16', '--rounds', '1', '--requests', '2000', '--keys', '2000');
  const { stdout } = await run(NODE, args, { cwd: ROOT });
  const rows = stdout
    .replaceAll(',', '')
    .split('\n')
    .filter((l) => /^\| (SET|GET) P\d+ \|/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  expect(rows.map((r) => `${r[0]} ${r[1]}`)).toEqual([
    'SET P1 A',
    'SET P1 B',
    'GET P16 A',
    'GET P16 B',
  ]);
  // cell | target | ops/s | CPU µs/request | p99 ms | B/A ops | B/A CPU | (vs Redis: not asked)
  for (const [, , ops, cpu, p99] of rows) {
    expect(Number(ops)).toBeGreaterThan(0);
    expect(Number(cpu)).toBeGreaterThan(0);
    expect(Number(p99)).toBeGreaterThan(0);
  }
  for (const r of rows.filter((r) => r[1] === 'B')) {
    expect(r[5]).toMatch(/^\d+\.\d\dx$/);
    expect(r[6]).toMatch(/^\d+\.\d\dx$/);
  }
  // Its nodes and data directories are gone.
  expect([...abDirs()].filter((d) => !before.has(d))).toEqual([]);
});
