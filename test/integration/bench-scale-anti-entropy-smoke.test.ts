// Smoke test of bench/scale-anti-entropy.ts: a short run at one small key count writes a sane table and leaves nothing behind.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);

afterAll(cleanup);

it('measures passes in step and a repair of keys on one replica, then cleans up', {
  // A hang, not a slow machine: at load 35 its passes take seconds and come 9 times that apart.
  timeout: 300_000,
}, async () => {
  const out = tempDir('kvstore-bench-ae-out-');
  const dataRoot = tempDir('kvstore-bench-ae-');
  const args = ['bench/scale-anti-entropy.ts', '--keys', '3000', '--interval-s', '1'];
  args.push('--diverge', '20', '--gets-per-s', '200', '--out', out, '--data-root', dataRoot);
  const { stdout } = await run(NODE, args, { cwd: ROOT, maxBuffer: 16 << 20 });
  const files = readdirSync(out).filter((f) => f.endsWith('.md'));
  expect(files).toHaveLength(1);
  const md = readFileSync(join(out, files[0]!), 'utf8');
  expect(stdout).toContain(md);
  const row = md.split('\n').find((l) => l.startsWith('| 3,000 |'));
  expect(row, md).toBeDefined();
  const cells = row!
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
  // kvstore-0 walks with two members: it hashed its 3,000 keys at least once per member.
  const hashed = cells[3]!.split(' / ').map((h) => Number(h.replaceAll(',', '')));
  expect(hashed[0]).toBeGreaterThanOrEqual(2 * 3000);
  // Each key on one replica was copied to the two others.
  expect(cells[5]).toMatch(/^[\d.]+ s \((\d+) copies\)$/);
  expect(Number(/\((\d+) copies\)/.exec(cells[5]!)![1])).toBeGreaterThanOrEqual(40);
  // The GET latency table: a row with four latencies on each side, every GET answered right.
  const gets = md.split('\n').filter((l) => l.startsWith('| 3,000 |'))[1];
  expect(gets, md).toMatch(
    /^\| 3,000 \| ([\d.]+ \/ ){3}[\d.]+ \| ([\d.]+ \/ ){3}[\d.]+ \| \d+ \/ \d+ \|$/,
  );
  expect(readdirSync(dataRoot)).toEqual([]);
});
