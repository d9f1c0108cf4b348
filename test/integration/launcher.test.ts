// bin/kvstore.js run as a program (the image's `kvstore`, npm's bin): it starts Node with the
// young-generation cap of its #! line. Without it V8 sizes the young generation from the memory it
// sees (a 512 MiB pod: 2 MiB, this host: 128 MiB), and a node in a small pod collects it
// dozens of times as often as the bench measured (docs/performance.md).

import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

const run = promisify(execFile);

it('bin/kvstore.js starts Node with --max-semi-space-size=16: the young generation stays within 32 MiB', async () => {
  const dir = tempDir();
  const report = join(dir, 'report.json');
  const preload = join(dir, 'preload.mjs');
  // Keeps 200,000 small objects alive while allocating 20M (the young generation grows as far as
  // V8 lets it when much survives), then reports the flags and the young generation's size.
  writeFileSync(
    preload,
    [
      `import { writeFileSync } from 'node:fs';`,
      `import { getHeapSpaceStatistics } from 'node:v8';`,
      `const ring = new Array(200000);`,
      `for (let i = 0; i < 2e7; i++) ring[i % ring.length] = { i, s: 'k' + i };`,
      `const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;`,
      `writeFileSync(${JSON.stringify(report)}, JSON.stringify({ execArgv: process.execArgv, young }));`,
    ].join('\n'),
  );
  // The bin runs as a program: its #! line finds the pinned Node 24 on PATH.
  const { stdout } = await run(join(ROOT, 'bin/kvstore.js'), ['--help'], {
    env: {
      ...process.env,
      PATH: `${dirname(NODE)}:${process.env.PATH}`,
      NODE_OPTIONS: `--import=${pathToFileURL(preload).href}`,
    },
  });
  expect(stdout).toMatch(/^Usage: kvstore/);
  const got = JSON.parse(readFileSync(report, 'utf8')) as { execArgv: string[]; young: number };
  expect(got.execArgv).toContain('--max-semi-space-size=16');
  expect(got.young).toBeLessThanOrEqual(32 * 1024 * 1024);
}, 60_000);

it("every bin of package.json is a program: executable, with a #! line (npm's links and the image run them)", () => {
  const bins = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin as Record<
    string,
    string
  >;
  expect(Object.keys(bins).length).toBeGreaterThan(0);
  for (const [name, file] of Object.entries(bins)) {
    const path = join(ROOT, file);
    expect({ name, executable: (statSync(path).mode & 0o111) === 0o111 }).toEqual({
      name,
      executable: true,
    });
    expect(readFileSync(path, 'utf8').startsWith('#!')).toBe(true);
  }
});
