// scripts/failure-lines.ts against what vitest really prints: a real vitest run on a file with one
// test that passes and one that fails, its output fed line by line as scripts/test-suites.ts does.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FailureLines } from '../../scripts/failure-lines.ts';

const dir = mkdtempSync(join(tmpdir(), 'kv-failure-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FailureLines', () => {
  it("keeps vitest's failure summary: the failed test's name and its error, not the passes", () => {
    writeFileSync(
      join(dir, 'two.test.ts'),
      [
        "import { expect, it } from 'vitest';",
        "it('passes quietly', () => { expect(1).toBe(1); });",
        ...Array.from({ length: 60 }, (_, i) => `it('filler ${i}', () => {});`),
        "it('breaks loudly', () => { expect('got-this').toBe('wanted-that'); });",
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
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the colour codes vitest printed
    expect(lines.lines()[0]!.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/⎯ Failed Tests 1 ⎯/);
    expect(kept).toMatch(/breaks loudly/);
    expect(kept).toMatch(/wanted-that/);
    expect(kept).not.toMatch(/passes quietly/);
    expect(lines.lines().length).toBeLessThanOrEqual(80);
  });

  it('keeps the last 40 lines of a run that printed no summary', () => {
    const lines = new FailureLines();
    for (let i = 0; i < 100; i++) lines.add(`line ${i}`);
    expect(lines.lines()).toEqual(Array.from({ length: 40 }, (_, i) => `line ${i + 60}`));
  });

  it('keeps at most 80 lines of a summary, its start first', () => {
    const lines = new FailureLines();
    lines.add('noise');
    lines.add('\x1b[31m⎯⎯⎯⎯⎯⎯ Failed Tests 3 ⎯⎯⎯⎯⎯⎯\x1b[39m');
    for (let i = 0; i < 200; i++) lines.add(`detail ${i}`);
    expect(lines.lines()).toHaveLength(80);
    expect(lines.lines()[1]).toBe('detail 0');
  });
});
