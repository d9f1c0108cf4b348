// Smoke test of bench/old-record-cost.ts: on a small store it prints a row for each way of
// learning a write's old record, each a positive number of ns per write, and leaves no
// temporary directory behind. The numbers themselves are for `node bench/old-record-cost.ts`.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { NODE, ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);

const PREFIX = 'kvstore-old-record-';
const dirs = () => new Set(readdirSync(tmpdir()).filter((d) => d.startsWith(PREFIX)));

it('prints ns per write for each way of learning the old record, and cleans up', {
  timeout: 120_000,
}, async () => {
  const before = dirs();
  const { stdout } = await run(
    NODE,
    ['bench/old-record-cost.ts', '--keys', '2000', '--rounds', '1'],
    { cwd: ROOT },
  );
  const rows = stdout
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| way') && !l.startsWith('|--'));
  expect(rows.map((r) => r.split('|')[1]!.trim())).toEqual([
    'a lookup per write, in arrival order (today)',
    'distinct keys sorted, then looked up',
    'put alone, to its commit (both threads)',
    'ifNoExists + put, to their results (both threads)',
    'Storage.apply, kinds kept (16 MiB)',
    'Storage.apply, none kept (a lookup)',
  ]);
  for (const r of rows) expect(Number(r.split('|')[2])).toBeGreaterThan(0);
  expect([...dirs()].filter((d) => !before.has(d))).toEqual([]);
});
