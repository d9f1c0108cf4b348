// scripts/failure-lines.ts against what vitest really prints: a real vitest run on a file with one
// test that passes and one that fails, its output fed line by line as scripts/test-suites.ts does.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FailureLines } from '../../scripts/failure-lines.ts';

const dir = mkdtempSync(join(tmpdir(), 'kv-failure-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FailureLines', () => {
  it("keeps vitest's failure summary: each failed test's name and its error, not the passes", () => {
    writeFileSync(
      join(dir, 'two.test.ts'),
      [
        "import { expect, it } from 'vitest';",
        "it('passes quietly', () => { expect(1).toBe(1); });",
        ...Array.from({ length: 60 }, (_, i) => `it('filler ${i}', () => {});`),
        "it('breaks loudly', () => { expect('got-this').toBe('wanted-that'); });",
        // A long diff: it must not push the next failure out.
        "it('differs at length', () => { expect(Array.from({ length: 300 }, (_, i) => 'k' + String(i))).toEqual([]); });",
        "it('breaks last', () => { expect('second-got').toBe('second-wanted'); });",
      ].join('\n'),
    );
    const vitest = resolve('node_modules/vitest/vitest.mjs');
    const run = spawnSync(
      process.execPath,
      [vitest, 'run', '--root', dir, '--reporter', 'verbose'],
      {
        encoding: 'utf8',
        env: { ...process.env, FORCE_COLOR: '1' },
      },
    );
    expect(run.status).toBe(1);
    const lines = new FailureLines();
    for (const l of `${run.stdout}${run.stderr}`.split('\n')) lines.add(l);
    const kept = lines.lines().join('\n');
    expect(stripVTControlCharacters(lines.lines()[0]!)).toMatch(/⎯ Failed Tests 3 ⎯/);
    expect(kept).toMatch(/breaks loudly/);
    expect(kept).toMatch(/wanted-that/);
    expect(kept).toMatch(/differs at length/);
    expect(kept).toMatch(/"k2"/); // the start of its diff
    expect(kept).not.toMatch(/k250/);
    expect(kept).toMatch(/breaks last/);
    expect(kept).toMatch(/second-wanted/);
    expect(kept).not.toMatch(/passes quietly/);
    expect(lines.lines().length).toBeLessThanOrEqual(120);
  });

  it('keeps the last 40 lines of a run that printed no summary', () => {
    const lines = new FailureLines();
    for (let i = 0; i < 100; i++) lines.add(`line ${i}`);
    expect(lines.lines()).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 60}`));
  });

  it('keeps at most 120 lines of a summary, its start first, 16 of each failure', () => {
    const lines = new FailureLines();
    lines.add('noise');
    lines.add('\x1b[31m⎯⎯⎯⎯⎯⎯ Failed Tests 30 ⎯⎯⎯⎯⎯⎯\x1b[39m');
    for (let f = 0; f < 30; f++) {
      lines.add(` FAIL  test/x.test.ts > case ${f}`);
      for (let i = 0; i < 40; i++) lines.add(`detail ${f}.${i}`);
    }
    const kept = lines.lines();
    expect(kept).toHaveLength(120);
    expect(kept.slice(0, 3)).toEqual([kept[0], ' FAIL  test/x.test.ts > case 0', 'detail 0.0']);
    expect(kept).toContain('detail 0.14');
    expect(kept).not.toContain('detail 0.15');
    expect(kept[17]).toBe('  …');
    expect(kept).toContain(' FAIL  test/x.test.ts > case 1');
  });
});
