// Smoke test of bench/ab.ts: two servers (here the floor, bench/floor-server.ts, and the node's
// sources) and both Redis yardsticks side by side write a sane table and leave nothing behind.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);

/** The cells of every table row of `text` that is a cell's (`| SET P1 | ...`). */
const cellRows = (text: string) =>
  text
    .split('\n')
    .filter((l) => /^\| (SET|GET) P\d+ \|/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );

const abDirs = () => new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('kvstore-ab-')));

it("compares two servers cell by cell, with CPU per request, B/A (of the medians, and per round) and the ratio to each cell's yardstick", {
  timeout: 180_000,
}, async () => {
  const before = abDirs();
  const args = ['bench/ab.ts', '--a', 'bench/floor-server.ts', '--b', 'src/main.ts'];
  args.push('--redis', '--redis-always');
  // Node/V8 flags for one target (how a flag's cost on the request path is measured).
  args.push('--b-node-args=--max-semi-space-size=2 --stack-trace-limit=20');
  // Enough requests that Redis's CPU spans some clock ticks (10 ms each): 2,000 could take less.
  args.push('--cells', 'set:1,get:16', '--rounds', '1', '--requests', '20000', '--keys', '2000');
  const { stdout } = await run(NODE, args, { cwd: ROOT });
  const [medians, perRound] = stdout.split('| cell | B/A ops per round');
  const rows = cellRows(medians!.replaceAll(',', ''));
  expect(rows.map((r) => `${r[0]} ${r[1]}`)).toEqual([
    'SET P1 A',
    'SET P1 B',
    'SET P1 Redis',
    'SET P1 Redis always',
    'GET P16 A',
    'GET P16 B',
    'GET P16 Redis',
    'GET P16 Redis always',
  ]);
  // cell | target | ops/s | CPU µs/request | p99 ms | B/A ops | B/A CPU | ops / yardstick | p99 / yardstick
  for (const [, , ops, cpu, p99] of rows) {
    expect(Number(ops)).toBeGreaterThan(0);
    expect(Number(cpu)).toBeGreaterThan(0);
    expect(Number(p99)).toBeGreaterThan(0);
  }
  for (const r of rows.filter((r) => r[1] === 'B')) {
    expect(r[5]).toMatch(/^\d+\.\d\dx$/);
    expect(r[6]).toMatch(/^\d+\.\d\dx$/);
  }
  // A SET's yardstick is Redis always (the same guarantee as the node's OK), a GET's plain Redis.
  const row = (cell: string, target: string) => rows.find((r) => r[0] === cell && r[1] === target)!;
  expect(row('SET P1', 'Redis always').slice(7)).toEqual(['1.00x', '1.00x']);
  expect(row('GET P16', 'Redis').slice(7)).toEqual(['1.00x', '1.00x']);
  for (const r of rows) expect(r[7]).toMatch(/^\d+\.\d\dx$/);
  // Then B/A round by round (one round here) and the median of those ratios, per cell.
  const rounds = cellRows(perRound!);
  expect(rounds.map((r) => r[0])).toEqual(['SET P1', 'GET P16']);
  for (const [, ops, opsMedian, cpu, cpuMedian] of rounds) {
    expect(ops).toMatch(/^\d+\.\d\d$/);
    expect(cpu).toMatch(/^\d+\.\d\d$/);
    expect(opsMedian).toBe(`${ops}x`);
    expect(cpuMedian).toBe(`${cpu}x`);
  }
  // Its servers and data directories are gone.
  expect([...abDirs()].filter((d) => !before.has(d))).toEqual([]);
});
