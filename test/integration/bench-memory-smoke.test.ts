// Smoke test of the memory probe (bench/memory.ts): the compiled build, empty nodes from the .ts, compiled (bundled) and tsc's modules alone side by side with a bare Node server, a small load, the restart, Redis; nothing left behind.

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);

afterAll(cleanup);

it('measures empty nodes from the sources and compiled, loads, restarts (cleanly and after SIGKILL), and cleans up', {
  timeout: 300_000,
}, async () => {
  const dataRoot = tempDir('kvstore-bench-memory-');
  const args = ['bench/memory.ts', '--keys', '2000', '--rounds', '1', '--data-root', dataRoot];
  // Rejects with the exit code and stderr when the probe fails.
  const { stdout } = await run(NODE, args, { cwd: ROOT, maxBuffer: 16 << 20 });
  expect(stdout).toMatch(/\| `node src\/main\.ts` \(type stripping\) +\| +\d+ MiB \|/);
  expect(stdout).toMatch(/\| `node dist\/src\/main\.js` \(compiled: the image\) +\| +\d+ MiB \|/);
  expect(stdout).toMatch(/\| compiled \/ \.ts +\| +\d\.\d\dx \|/);
  expect(stdout).toMatch(/\| tsc modules, not bundled \(`build --no-bundle`\) +\| +\d+ MiB \|/);
  expect(stdout).toMatch(/\| compiled \/ not bundled +\| +\d\.\d\dx \|/);
  expect(stdout).toMatch(/\| bare Node net server \(`node -e`, the floor\) +\| +\d+ MiB \|/);
  expect(stdout).toMatch(/^Above the floor, the compiled node has -?\d+ MiB more RSS/m);
  expect(stdout).toMatch(
    /empty node RSS <= 64 MiB +\| \d+ MiB \(compiled; from the \.ts sources \d+ MiB\) +\| +(PASS|FAIL) \|/,
  );
  expect(stdout).toContain('DBSIZE 2,000, read-back ok');
  // After SIGKILL: the SET acknowledged before the kill is there, and the goal row is printed.
  expect(stdout).toContain('DBSIZE 2,001, the last SET read back');
  expect(stdout).toMatch(
    /restart after SIGKILL \(log replay, tree check\) to serving < 2 s +\| [\d.]+ s /,
  );
  expect(stdout).toMatch(/^Load average [\d.]+ [\d.]+ [\d.]+ -> /m);
  // The build, the nodes' and Redis's data dirs are gone.
  expect(readdirSync(dataRoot)).toEqual([]);
});
