// Smoke test of bench/tree-check.ts: it makes an LMDB file of the keys asked for, times the
// start-up tree check without and with read-ahead in alternating rounds (page cache dropped with
// GNU dd before each), and prints each round's ratio and their median.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);
let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('times the tree check without and with read-ahead, a ratio per round and the median', {
  timeout: 120_000,
}, async () => {
  dir = mkdtempSync(join(tmpdir(), 'kvstore-tree-check-'));
  const args = ['bench/tree-check.ts', '--dir', dir, '--keys', '30000', '--rounds', '3'];
  const { stdout } = await run(NODE, args, { cwd: ROOT });
  expect(existsSync(join(dir, 'tree-30000-in', 'data.mdb'))).toBe(true);
  expect(stdout).toMatch(/30000 keys inserted in order, page cache dropped before each timing/);
  const rounds = stdout
    .split('\n')
    .map((l) =>
      /^round \d: A \(no read-ahead\) (\d+\.\d) ms, B \(read-ahead\) (\d+\.\d) ms, B\/A (\S+)x$/.exec(
        l,
      ),
    )
    .filter((m) => m !== null);
  expect(rounds).toHaveLength(3);
  for (const [, a, b, ratio] of rounds) {
    expect(Number(ratio)).toBeCloseTo(Number(b) / Math.max(Number(a), 1), 0);
  }
  expect(stdout).toMatch(/^median B\/A \d+\.\d\dx; load /m);
});
