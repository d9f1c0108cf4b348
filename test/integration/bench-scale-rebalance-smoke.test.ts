// Smoke test of bench/scale-rebalance.ts: a join at two small sizes writes sane rebalance tables.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
const SCRIPT = 'bench/scale-rebalance.ts';

afterAll(cleanup);

/** What the JSON report keeps of a size's GET load and rebalance. */
interface Raw {
  readonly rebalanceMs: number;
  readonly before: { readonly answered: number; readonly seconds: number };
  readonly during: { readonly answered: number; readonly seconds: number };
}

/** Every markdown table of the report: its header cells and its rows' cells. */
function tables(md: string): { head: string[]; rows: string[][] }[] {
  const out: { head: string[]; rows: string[][] }[] = [];
  let current: { head: string[]; rows: string[][] } | null = null;
  for (const line of md.split('\n')) {
    if (!line.startsWith('|')) {
      current = null;
      continue;
    }
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (current === null) {
      current = { head: cells, rows: [] };
      out.push(current);
    } else if (!cells[0]!.startsWith('---')) current.rows.push(cells);
  }
  return out;
}

/** A table cell as a number: thousands separators and units dropped. */
const n = (cell: string) => Number(cell.split(' ')[0]!.replaceAll(',', '').replace('%', ''));

/** The table whose header starts with `first`, each row as header -> cell. */
function table(md: string, first: string, second?: string): Record<string, string>[] {
  const t = tables(md).find((x) => x.head[0] === first && (!second || x.head[1] === second));
  if (t === undefined) throw new Error(`no table '${first}' in:\n${md}`);
  return t.rows.map((r) => Object.fromEntries(t.head.map((h, i) => [h, r[i]!])));
}

it('joins a 4th member to 3 loaded ones at two sizes and reports time, bytes moved and traffic', {
  timeout: 300_000,
}, async () => {
  const out = tempDir('kvstore-bench-rebalance-');
  const args = [SCRIPT, '--sizes-mb', '1,3', '--probe-s', '1', '--gets-per-s', '100'];
  const { stdout } = await run(NODE, [...args, '--timeout-s', '120', '--out', out], { cwd: ROOT });
  const files = readdirSync(out).sort();
  expect(files).toHaveLength(2);
  expect(files[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-scale-rebalance\.md$/);
  expect(files[0]).toBe(files[1]!.replace(/md$/, 'json'));
  const md = readFileSync(join(out, files[1]!), 'utf8');
  const raw = JSON.parse(readFileSync(join(out, files[0]!), 'utf8')) as { results: Raw[] };
  expect(raw.results).toHaveLength(2);
  expect(stdout).toContain(md);
  expect(md).toMatch(/^Load average [\d.]+ [\d.]+ [\d.]+ -> [\d.]+ [\d.]+ [\d.]+; /m);

  const sizes = table(md, 'D (MB)', 'keys');
  expect(sizes.map((r) => r['D (MB)'])).toEqual(['1.0', '3.0']);
  for (const r of sizes) {
    // 16-byte keys and 1024-byte values.
    expect(n(r.keys!)).toBe(Math.round((n(r['D (MB)']!) * 1e6) / 1040));
    const share = n(r['joiner holds']!) / 100;
    // RF/(N+1) = 3/4 of the keys land on the joiner, give or take the ring's spread.
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.9);
    // Every key the joiner holds arrived from 1 to 3 senders; a record is its key, value and a
    // header of under 10%.
    expect(n(r['moved / D']!)).toBeGreaterThanOrEqual(share * 0.99);
    expect(n(r['moved / D']!)).toBeLessThanOrEqual(3 * share * 1.1);
    expect(n(r['rebalance s']!)).toBeGreaterThan(0);
    expect(n(r['streams done s']!)).toBeLessThanOrEqual(n(r['rebalance s']!));
    expect(n(r['clean-up s']!)).toBeGreaterThanOrEqual(n(r['rebalance s']!));
  }

  const members = table(md, 'D (MB)', 'member');
  expect(members).toHaveLength(8);
  for (const size of ['1.0', '3.0']) {
    const rows = members.filter((r) => r['D (MB)'] === size);
    const [joiner, ...old] = [rows[3]!, ...rows.slice(0, 3)];
    const keys = n(sizes.find((r) => r['D (MB)'] === size)!.keys!);
    expect(n(joiner['keys sent']!)).toBe(0);
    // After the clean-up every key has 3 copies again, the joiner's share taken from the others.
    expect(rows.reduce((s, r) => s + n(r['holds after']!), 0)).toBe(3 * keys);
    const removed = old.reduce((s, r) => s + n(r['removed after']!), 0);
    expect(removed).toBe(n(joiner['holds after']!));
    for (const r of rows) expect(n(r['CPU during']!)).toBeGreaterThan(0);
  }

  const traffic = table(md, 'D (MB)', 'when');
  expect(traffic).toHaveLength(4);
  for (const r of traffic) {
    // Every GET sent was answered (one unanswered counts as wrong), with the value written.
    expect(r.wrong).toBe('0');
    expect(n(r['GETs answered']!)).toBeGreaterThan(0);
    expect(n(r['p99 ms']!)).toBeGreaterThanOrEqual(n(r['p50 ms']!));
  }
  // The load ran for the whole probe and the whole rebalance, paced (never more than its rate);
  // how many that is depends on how long the join took, so no count is asserted.
  raw.results.forEach((r, i) => {
    expect(r.before.seconds).toBeGreaterThan(0.99); // --probe-s 1 (a timer may fire a little early)
    expect(r.during.seconds * 1000).toBeGreaterThanOrEqual(r.rebalanceMs);
    [r.before, r.during].forEach((p, j) => {
      expect(p.answered).toBeLessThanOrEqual(p.seconds * 100 + 1);
      expect(n(traffic[2 * i + j]!['GETs answered']!)).toBe(p.answered);
    });
  });

  const extra = table(md, 'D', 'time, fitted here');
  expect(extra.map((r) => r.D)).toEqual(['1 GB', '10 GB', '50 GB']);
  for (const column of ['time, a core per member', 'throttle floor', 'bytes moved']) {
    const [gb1, gb10, gb50] = extra.map((r) => n(r[column]!));
    expect(gb1).toBeGreaterThan(0);
    expect(gb10).toBeGreaterThan(gb1!);
    expect(gb50).toBeGreaterThan(gb10!);
  }
  // Never faster than the throttle allows.
  for (const r of extra) {
    expect(n(r['time, a core per member']!)).toBeGreaterThanOrEqual(n(r['throttle floor']!));
  }
  expect(md).toContain('Expected vs measured');
});

it('prints its usage with --help and refuses a bad size with a clear error', async () => {
  const { stdout } = await run(NODE, [SCRIPT, '--help'], { cwd: ROOT });
  expect(stdout).toMatch(/^Usage: node bench\/scale-rebalance\.ts/);
  expect(stdout).toContain('--sizes-mb <list>');
  await expect(run(NODE, [SCRIPT, '--sizes-mb', '5,x'], { cwd: ROOT })).rejects.toMatchObject({
    code: 1,
    stderr: "scale-rebalance: --sizes-mb must be a positive number, got 'x'\n",
  });
  await expect(run(NODE, [SCRIPT, '--sizes-mb', '5'], { cwd: ROOT })).rejects.toMatchObject({
    code: 1,
    stderr: 'scale-rebalance: --sizes-mb needs two sizes or more (the fit has a fixed cost)\n',
  });
});
