// bin/kvstore.js run as a program (the image's `kvstore`, npm's bin): it starts Node with the
// flags of its #! line. The young-generation cap: without it V8 sizes the young generation from
// the memory it sees (a 512 MiB pod: 2 MiB, this host: 128 MiB), and a node in a small pod
// collects it dozens of times as often as the bench measured (docs/performance.md). Scavenges
// on the main thread alone: a parallel one wakes V8's workers about ten times per collection
// (docs/configuration.md).

import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

const run = promisify(execFile);

/**
 * Runs bin/kvstore.js as a program (`--help`: it prints the usage and exits) with `preload` (lines
 * of an ES module, given `REPORT`: where to write its JSON) imported first; returns the report.
 */
async function runBin(preload: string[]): Promise<Record<string, unknown>> {
  const dir = tempDir();
  const report = join(dir, 'report.json');
  const file = join(dir, 'preload.mjs');
  writeFileSync(file, [`const REPORT = ${JSON.stringify(report)};`, ...preload].join('\n'));
  // The bin runs as a program: its #! line finds the pinned Node 24 on PATH.
  const { stdout } = await run(join(ROOT, 'bin/kvstore.js'), ['--help'], {
    env: {
      ...process.env,
      PATH: `${dirname(NODE)}:${process.env.PATH}`,
      NODE_OPTIONS: `--import=${pathToFileURL(file).href}`,
    },
  });
  expect(stdout).toMatch(/^Usage: kvstore/);
  return JSON.parse(readFileSync(report, 'utf8')) as Record<string, unknown>;
}

it('bin/kvstore.js starts Node with --max-semi-space-size=16: the young generation stays within 32 MiB', async () => {
  // Keeps 200,000 small objects alive while allocating 20M (the young generation grows as far as
  // V8 lets it when much survives), then reports the flags and the young generation's size.
  const got = await runBin([
    `import { writeFileSync } from 'node:fs';`,
    `import { getHeapSpaceStatistics } from 'node:v8';`,
    `const ring = new Array(200000);`,
    `for (let i = 0; i < 2e7; i++) ring[i % ring.length] = { i, s: 'k' + i };`,
    `const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;`,
    `writeFileSync(REPORT, JSON.stringify({ execArgv: process.execArgv, young }));`,
  ]);
  expect(got.execArgv).toContain('--max-semi-space-size=16');
  expect(got.young).toBeLessThanOrEqual(32 * 1024 * 1024);
}, 60_000);

it("bin/kvstore.js starts Node with --no-parallel-scavenge: V8's worker threads stay asleep while the young generation is collected", async () => {
  // Young collections with 100,000 objects to copy each (each dies before the next: nothing is
  // promoted, so no major collection or its concurrent marking wakes the workers), counted, and
  // how often V8's worker threads went to sleep meanwhile (voluntary switches): a parallel
  // scavenge wakes them several times per collection (about 10 each here).
  const got = await runBin([
    `import { readdirSync, readFileSync, writeFileSync } from 'node:fs';`,
    `import { PerformanceObserver } from 'node:perf_hooks';`,
    `let young = 0;`,
    `new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === 1) young++; }).observe({ entryTypes: ['gc'] });`,
    `const sleeps = () => readdirSync('/proc/self/task')`,
    `  .filter((t) => readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim() === 'V8Worker')`,
    `  .reduce((n, t) => n + Number(/^voluntary_ctxt_switches:\\s+(\\d+)/m.exec(readFileSync('/proc/self/task/' + t + '/status', 'utf8'))[1]), 0);`,
    `const ring = new Array(100000);`,
    `const churn = () => { for (let i = 0; i < 1e7; i++) ring[i % ring.length] = { i, s: 'k' + i }; };`,
    `churn(); // warm: the loop compiled, the young generation grown`,
    `await new Promise((r) => setTimeout(r, 100));`,
    `const [y0, s0] = [young, sleeps()];`,
    `churn();`,
    `await new Promise((r) => setTimeout(r, 100)); // the last collections' entries delivered`,
    `writeFileSync(REPORT, JSON.stringify({ execArgv: process.execArgv, collections: young - y0, workerSleeps: sleeps() - s0 }));`,
  ]);
  expect(got.collections).toBeGreaterThanOrEqual(20);
  // Fewer than one per collection (a few in about 90 here, from other V8 work; about 900 in parallel).
  expect(got.workerSleeps).toBeLessThan(got.collections as number);
  expect(got.execArgv).toContain('--no-parallel-scavenge');
}, 60_000);

it('bin/kvstore.js starts Node with --no-allocation-site-pretenuring: a burst of requests in flight does not move their objects to the old generation for good', async () => {
  // A read's small array (its order of replicas: a literal, then pushes), 300,000 of them alive
  // at once over the young collections of a burst (the young generation at its cap), then
  // 10,000,000 more that each die at once. With V8's allocation-site pretenuring the burst has
  // the literal tenured: the rest are allocated in the old generation, dead there, and need
  // major collections (1-2 here; on a 3-node coordinator 160-250 B promoted per GET and 3-4.5x
  // the time per young collection). Without it they stay young and die there: none.
  const got = await runBin([
    `import { writeFileSync } from 'node:fs';`,
    `import { PerformanceObserver } from 'node:perf_hooks';`,
    `let major = 0;`,
    `new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === 4) major++; }).observe({ entryTypes: ['gc'] });`,
    `function order(a, b) { const up = []; up.push(a); up.push(b); return up; }`,
    `{ const ring = new Array(200000); for (let i = 0; i < 4e6; i++) ring[i % ring.length] = { i }; }`,
    `let held = [];`,
    `for (let i = 0; i < 3e5; i++) held.push(order('a', 'b'));`,
    `held = null;`,
    `await new Promise((r) => setTimeout(r, 20));`,
    `const m0 = major;`,
    `let last = null;`,
    `for (let i = 0; i < 1e7; i++) last = order('a', 'b');`,
    `await new Promise((r) => setTimeout(r, 20)); // the last collections' entries delivered`,
    `writeFileSync(REPORT, JSON.stringify({ execArgv: process.execArgv, majors: major - m0, last: last.length }));`,
  ]);
  expect(got.last).toBe(2);
  expect(got.majors).toBe(0);
  expect(got.execArgv).toContain('--no-allocation-site-pretenuring');
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
