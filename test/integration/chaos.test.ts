// A short chaos run (about a minute) with a fixed seed: faults, membership changes, zero violations.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireRoot } from '../helpers/netns.ts';
import { NODE, ROOT } from '../helpers/node-process.ts';

/** Runs `npm run chaos` as it is run by hand; resolves with its exit code and output. */
function runChaos(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [join(ROOT, 'test/chaos/run.ts'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('chaos', () => {
  it('a seeded run: kills, pauses, partitions, a join and a decommission; no violation', async () => {
    requireRoot('the chaos test');
    const { code, out } = await runChaos(['--duration-s', '35', '--seed', '20261126']);
    // The summary is the useful failure message: history excerpts of every violation.
    expect(out).toContain('violations: none');
    expect(code).toBe(0);
    const events = out.split('\n');
    for (const kind of ['kill', 'pause', 'join', 'decommissioned']) {
      expect(events.some((l) => new RegExp(`^ +[0-9.]+ s {2}${kind} `).test(l))).toBe(true);
    }
    expect(events.some((l) => /s {2}(isolate|split) /.test(l))).toBe(true);
    expect(out).toMatch(/settled \(same ring, all up, no hints\)/);
    const total = /total +(\d+)/.exec(out);
    expect(Number(total?.[1])).toBeGreaterThan(2000);
  }, 180_000);
});
