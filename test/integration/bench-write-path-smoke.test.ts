// Smoke test of bench/write-path.ts: the write path (and, --op get, the read path) in one process
// (three stores, the peer codec without sockets) prints its CPU and collections per request and
// leaves no data directory behind.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);

const dirs = () =>
  new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('kvstore-write-path-')));

it('prints the CPU of a 3-replica PUT per round and their median, and cleans up', {
  timeout: 120_000,
}, async () => {
  const before = dirs();
  const args = ['bench/write-path.ts', '--writes', '300', '--rounds', '3', '--clients', '5'];
  const { stdout } = await run(NODE, [...args, '--keys', '100'], { cwd: ROOT });
  const line =
    /main thread (\d+\.\d) µs, process (\d+\.\d) µs CPU per PUT, (\d+\.\d\d) scavenges per 1,000/;
  const rounds = stdout.split('\n').filter((l) => l.startsWith('round '));
  expect(rounds).toHaveLength(3);
  expect(rounds[0]).toContain('(warm-up)');
  const median = stdout.split('\n').find((l) => l.startsWith('median of 2 rounds: '));
  for (const l of [...rounds, median!]) {
    const [, main, all] = line.exec(l)!;
    expect(Number(main)).toBeGreaterThan(0);
    expect(Number(all)).toBeGreaterThanOrEqual(Number(main));
  }
  expect([...dirs()].filter((d) => !before.has(d))).toEqual([]);
});

/** Runs the bench for 2 rounds of 300 writes over 100 keys with `extra`; its median line. */
async function medianOfTwoRounds(extra: string[]): Promise<string | undefined> {
  const args = ['bench/write-path.ts', '--writes', '300', '--rounds', '2', '--clients', '5'];
  const { stdout } = await run(NODE, [...args, '--keys', '100', ...extra], { cwd: ROOT });
  return stdout.split('\n').find((l) => l.startsWith('median of 1 rounds: '));
}

it('with --members 1 prints the CPU and latency of a single store RF=1 PUT, and cleans up', {
  timeout: 120_000,
}, async () => {
  const before = dirs();
  const median = await medianOfTwoRounds(['--members', '1']);
  const [, main, p99, max] =
    /main thread (\d+\.\d) µs, .* p99 (\d+\.\d\d) ms, max (\d+\.\d) ms/.exec(median ?? '') ?? [];
  expect(Number(main)).toBeGreaterThan(0);
  expect(Number(p99)).toBeGreaterThan(0);
  // max is printed to 0.1 ms, p99 to 0.01 ms.
  expect(Number(max)).toBeGreaterThanOrEqual(Number(p99) - 0.05);
  expect([...dirs()].filter((d) => !before.has(d))).toEqual([]);
});

it('with --op get fills the keys and prints the CPU of a 3-replica R=2 GET, and cleans up', {
  timeout: 120_000,
}, async () => {
  const before = dirs();
  const median = await medianOfTwoRounds(['--op', 'get']);
  const [, main, all] =
    /main thread (\d+\.\d) µs, process (\d+\.\d) µs CPU per GET/.exec(median ?? '') ?? [];
  expect(Number(main)).toBeGreaterThan(0);
  expect(Number(all)).toBeGreaterThanOrEqual(Number(main));
  expect([...dirs()].filter((d) => !before.has(d))).toEqual([]);
});
