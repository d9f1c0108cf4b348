// Smoke test of the benchmark harness: a quick run against a real node and Redis writes a sane report.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

let child: ChildProcess | null = null;

afterAll(async () => {
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((res) => child!.once('exit', res));
    child.kill('SIGTERM');
    await exited;
  }
  await cleanup();
});

interface Result {
  opsPerSec: number;
  errors: number;
  latency: { p50Us: number; p99Us: number };
}

describe('bench harness (--quick)', () => {
  it('has redis-server to compare with (Debian redis-server; .ci/run installs it)', () => {
    expect(spawnSync('redis-server', ['--version']).status).toBe(0);
  });

  it('measures every cell on kvstore and Redis and writes the report', {
    timeout: 90_000,
  }, async () => {
    const out = tempDir('kvstore-bench-out-');
    const args = ['bench/run.ts', '--quick', '--duration-s', '0.5', '--warmup-s', '0.2'];
    args.push('--keys', '2000', '--out', out);
    child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const code = await new Promise((res) => child!.once('exit', (c, s) => res(c ?? s)));
    expect(code, output).toBe(0);
    expect(existsSync(join(out, 'latest-single-node.md'))).toBe(true);
    const md = readFileSync(join(out, 'latest-single-node.md'), 'utf8');
    expect(md).toContain('kvstore ops/s');
    const report = JSON.parse(readFileSync(join(out, 'latest-single-node.json'), 'utf8')) as {
      cells: { cell: unknown; results: Record<string, Result> }[];
    };
    expect(report.cells.length).toBe(4);
    for (const { cell, results } of report.cells) {
      expect(Object.keys(results).sort()).toEqual(['kvstore', 'redis', 'redis-aof']);
      for (const [name, r] of Object.entries(results)) {
        const where = `${JSON.stringify(cell)} ${name}`;
        expect(r.opsPerSec, where).toBeGreaterThan(0);
        expect(r.errors, where).toBe(0);
        expect(r.latency.p99Us, where).toBeGreaterThanOrEqual(r.latency.p50Us);
      }
    }
  });
});
