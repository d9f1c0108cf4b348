// Smoke test of bench/scale-membership.ts: a short run at the smallest sizes writes a sane traffic table.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
const SCRIPT = 'bench/scale-membership.ts';

afterAll(cleanup);

/** The numbers of a table row: thousands separators removed, the human-readable parts dropped. */
function row(md: string, members: number): number[] {
  const line = md.split('\n').find((l) => l.startsWith(`| ${members} `));
  if (line === undefined) throw new Error(`no row for ${members} members in:\n${md}`);
  const cells = line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
  expect(cells[1]).toBe('all');
  return [cells[0], ...cells.slice(2)].map((c) => Number(c!.split(' ')[0]!.replaceAll(',', '')));
}

it('measures 3 and 10 members over the real membership code and writes the table', {
  timeout: 120_000,
}, async () => {
  const out = tempDir('kvstore-bench-scale-');
  const args = [SCRIPT, '--members', '3,10', '--seconds', '2', '--out', out];
  const { stdout } = await run(NODE, args, { cwd: ROOT });
  const files = readdirSync(out);
  expect(files).toHaveLength(1);
  expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-scale-membership\.md$/);
  const md = readFileSync(join(out, files[0]!), 'utf8');
  expect(stdout).toContain(md);
  expect(md).toContain('Members seen not up at the end (must be 0): 0.');
  expect(md).toMatch(/^Load average [\d.]+ [\d.]+ [\d.]+ -> [\d.]+ [\d.]+ [\d.]+\.$/m);
  for (const n of [3, 10]) {
    const [members, msgs, bytes, hello, cluster, cpu] = row(md, n);
    expect(members).toBe(n);
    // Every node probes every other once a second: N-1 requests and N-1 answers each way.
    expect(msgs).toBe(4 * (n - 1));
    // A hello answer carries the settled ring (every member's name and incarnation).
    expect(hello).toBeGreaterThan(100 + 20 * n);
    // Per node: at least its N-1 answers sent and N-1 received a second.
    expect(bytes).toBeGreaterThanOrEqual(2 * (n - 1) * hello!);
    // The cluster sends half of what all nodes send and receive.
    expect(cluster).toBeCloseTo((n * bytes!) / 2, -1);
    expect(cpu).toBeGreaterThan(0);
  }
});

it('prints its usage with --help and refuses a bad size with a clear error', async () => {
  const { stdout } = await run(NODE, [SCRIPT, '--help'], { cwd: ROOT });
  expect(stdout).toMatch(/^Usage: node bench\/scale-membership\.ts/);
  expect(stdout).toContain('--members <list>');
  await expect(run(NODE, [SCRIPT, '--members', '3,x'], { cwd: ROOT })).rejects.toMatchObject({
    code: 1,
    stderr: "scale-membership: --members must be a positive integer, got 'x'\n",
  });
});
