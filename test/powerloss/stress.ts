// Power-cut stress run for the store on powerlossfs (not part of npm test; see docs/testing.md).
// Each cycle mounts the disk, starts a child that opens a Storage on it (replaying the log the
// last cut left) and writes under load (storage-load.ts), cuts the power at a random moment with
// a random `keep` (a random subset of the unsynced page writes survives, as a disk reorders
// writes), kills the child and unmounts. A child that dies by a signal (LMDB's assertions abort)
// or refuses to open before the cut is counted; the disk as it was before that open is kept.
// `--overlapping-every N`: every Nth cycle writes with lmdb-js's overlapping sync (as stores did
// until 2026-12) instead, so the next open meets a file it must roll back first; such opens are
// counted, and a damaged snapshot an overlapping cycle left is counted apart.
//   node test/powerloss/stress.ts [--cycles 100] [--seed 1] [--keep 0.5,0.7,0.9] [--max-run-ms 3000]
//     [--overlapping-every 0]

import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { lmdbFileCheck } from '../../src/storage/lmdb-check.ts';
import { lmdbTreeProblem } from '../../src/storage/lmdb-tree.ts';
import { verifyStore } from '../../src/storage/verify.ts';
import { ROOT } from '../helpers/node-process.ts';
import { buildPowerlossfs, destroyDisks, diskWithDataDir } from '../helpers/powerloss.ts';

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    keep: { type: 'string', default: '0.5,0.7,0.9' },
    'max-run-ms': { type: 'string', default: '3000' },
    'overlapping-every': { type: 'string', default: '0' },
  },
});
const cycles = Number(args.cycles);
let seed = Number(args.seed);
const keeps = args.keep.split(',').map(Number);
const maxRunMs = Number(args['max-run-ms']);
const overlappingEvery = Number(args['overlapping-every']);
const LOAD = join(ROOT, 'test/powerloss/storage-load.ts');

interface Outcome {
  /** The child's end before the cut: a signal, an exit code, or null (alive at the cut). */
  died: string | null;
  opened: boolean;
  stderr: string;
  replayed: number;
}

/** Runs one child until it has written for `runMs` after opening, or dies first. */
async function runChild(dataDir: string, childSeed: number, runMs: number, overlapping: boolean) {
  const mode = overlapping ? ['overlapping'] : [];
  const child = spawn(process.execPath, [LOAD, dataDir, String(childSeed), ...mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Outcome = { died: null, opened: false, stderr: '', replayed: 0 };
  child.stderr!.on('data', (d: Buffer) => {
    if (out.stderr.length < 20_000) out.stderr += d.toString();
  });
  const exited = new Promise<string>((res) =>
    child.once('exit', (code, signal) => res(signal ?? `exit ${code}`)),
  );
  const opened = new Promise<void>((res) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!out.opened && buf.includes('\n')) {
        out.opened = true;
        out.replayed = (JSON.parse(buf.split('\n')[0]!) as { replayed: number }).replayed;
        res();
      }
    });
  });
  const first = await Promise.race([opened.then(() => null), exited]);
  if (first !== null) out.died = first;
  else {
    const timer = new Promise<null>((res) => setTimeout(() => res(null), runMs));
    out.died = await Promise.race([timer, exited]);
  }
  return { child, out, exited };
}

async function kill(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
}

/** What the start-up check would say of the snapshot LMDB opens (meta pages, trees, free list). */
function snapshotProblem(file: string): string | null {
  if (!existsSync(file)) return null;
  const check = lmdbFileCheck(file);
  if (check.problem !== null) return check.problem;
  return check.opened ? lmdbTreeProblem(file, check.opened) : null;
}

const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
};

const binary = await buildPowerlossfs();
const keepDir = mkdtempSync(join(tmpdir(), 'kvstore-powerloss-stress-'));
const { disk, dataDir } = await diskWithDataDir(binary);
const backing = join(disk.store, 'disk', 'root', 'data');
const found: { cycle: number; keep: number; died: string; copy: string; stderr: string }[] = [];
let opens = 0;
const damaged: number[] = [];
/** Damaged snapshots an overlapping-sync cycle left (the bug that sync has), and rollbacks. */
const damagedByOverlapping: number[] = [];
let rollbacks = 0;
let lastOverlapping = false;
const started = Date.now();
try {
  for (let cycle = 0; cycle < cycles; cycle++) {
    const before = join(keepDir, 'before-open');
    rmSync(before, { recursive: true, force: true });
    await disk.unmount();
    cpSync(backing, before, { recursive: true });
    const problem = snapshotProblem(join(before, 'data.mdb'));
    const check = existsSync(join(before, 'data.mdb')) && lmdbFileCheck(join(before, 'data.mdb'));
    const rollback = check && check.problem === null && check.opened?.rollback === true;
    if (rollback) rollbacks++;
    if (problem !== null) {
      const copy = join(keepDir, `damaged-${cycle}`);
      cpSync(before, copy, { recursive: true });
      (lastOverlapping ? damagedByOverlapping : damaged).push(cycle);
      process.stdout.write(
        `cycle ${cycle}: the snapshot LMDB will open is damaged (${problem}); kept in ${copy}\n`,
      );
    }
    await disk.mount();
    const keep = keeps[rand(keeps.length)]!;
    // Half the cuts come within a second of the open: a node's start (the replay's commits, the
    // hint store opening its database) is when the store's own writes race the most.
    const runMs = rand(2) === 0 ? rand(1000) : 200 + rand(maxRunMs);
    const overlapping = overlappingEvery > 0 && cycle % overlappingEvery === overlappingEvery - 1;
    lastOverlapping = overlapping;
    const { child, out, exited } = await runChild(dataDir, rand(1 << 30), runMs, overlapping);
    if (out.opened) opens++;
    const report = await disk.cut(rand(1 << 30), keep);
    await kill(child, exited);
    const line = `cycle ${cycle}${overlapping ? ' (overlapping sync)' : ''}: ${rollback ? 'rolled back, ' : ''}${out.opened ? `opened (replayed ${out.replayed})` : 'did not open'}, cut keep ${keep} (pages kept ${report.pagesKept}, reverted ${report.pagesReverted})`;
    if (out.died === null) {
      process.stdout.write(`${line}\n`);
      continue;
    }
    const copy = join(keepDir, `cycle-${cycle}`);
    cpSync(before, copy, { recursive: true });
    const lastLine = out.stderr.trim().split('\n').slice(-3).join(' | ');
    process.stdout.write(`${line}\n  DIED before the cut: ${out.died}: ${lastLine}\n`);
    process.stdout.write(`  disk before that open kept in ${copy}\n`);
    process.stdout.write(
      `  start-up check: ${snapshotProblem(join(copy, 'data.mdb')) ?? 'no problem'}\n`,
    );
    const v = await verifyStore(copy);
    process.stdout.write(`  verify: ${v.problems.join('; ') || 'OK'}\n`);
    found.push({ cycle, keep, died: out.died, copy, stderr: lastLine });
    // Go on from an empty data directory: this one may not open again.
    await disk.unmount();
    rmSync(backing, { recursive: true, force: true });
    mkdirSync(backing);
    await disk.mount();
  }
} finally {
  await destroyDisks();
}
const secs = Math.round((Date.now() - started) / 1000);
process.stdout.write(
  `${cycles} cycles (${opens} opened and wrote until the cut), ${damaged.length} left a damaged snapshot to open, ${found.length} died before the cut, in ${secs} s; disks kept in ${keepDir}\n`,
);
if (overlappingEvery > 0) {
  process.stdout.write(
    `${rollbacks} opens rolled back an unflushed overlapping-sync commit; ${damagedByOverlapping.length} damaged snapshots left by an overlapping-sync cycle (not counted above)\n`,
  );
}
for (const f of found)
  process.stdout.write(`  cycle ${f.cycle} keep ${f.keep}: ${f.died}: ${f.stderr}\n`);
if (found.length + damaged.length === 0) rmSync(keepDir, { recursive: true, force: true });
process.exitCode = found.length + damaged.length > 0 ? 1 : 0;
