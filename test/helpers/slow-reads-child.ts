// A process whose event loop's thread reads a file page by page on a slow disk, each read a wait
// in the kernel (state D) the disk ends: run with the node's watchdog (lifecycle/watchdog.ts,
// its grace 500 ms) and its stop signals' handlers, as `main` of spawnNodeProcess. Once the
// watchdog's thread runs it logs `reading` (JSON, as a node's lines), then reads one page of each
// of KV_TEST_SLOW_READS (a count) MiB of KV_TEST_SLOW_READS_FILE in one synchronous stretch, and
// logs `read` with the count; a stop signal taken after it logs `stopped` and exits 0. What it
// makes is what a node's start or a GET does on a disk slow to answer: the loop held longer than
// the grace, though each read ends within it.

import { closeSync, openSync, readdirSync, readFileSync, readSync, writeSync } from 'node:fs';
import { onStopSignals, startWatchdog } from '../../src/lifecycle/index.ts';

/** A line on stdout, written at once (an exit right after it does not lose it). */
const line = (fields: Record<string, unknown>) =>
  writeSync(1, `${JSON.stringify({ level: 30, ...fields })}\n`);
const file = process.env.KV_TEST_SLOW_READS_FILE!;
const reads = Number(process.env.KV_TEST_SLOW_READS);

void onStopSignals(() => {}).then((signal) => {
  line({ signal, msg: 'stopped' });
  process.exit(0);
});
// Alive until a stop signal (the loop reads it; a node's ports keep its loop so).
setInterval(() => {}, 1000);
const err = startWatchdog({ base: {}, blockedMs: 1000, stopGraceMs: 500, stopBoundMs: 60_000 });
if (err !== null) throw err;

/** Whether the watchdog's thread (a worker: `WorkerThread`) runs. */
const watching = () =>
  readdirSync('/proc/self/task').some(
    (t) => readFileSync(`/proc/self/task/${t}/comm`, 'latin1').trim() === 'WorkerThread',
  );

const started = setInterval(() => {
  if (!watching()) return;
  clearInterval(started);
  // Its signal listeners are set up once its code runs, within moments of the thread's start.
  setTimeout(() => {
    line({ msg: 'reading' });
    const fd = openSync(file, 'r');
    const page = Buffer.alloc(4096);
    for (let i = 0; i < reads; i++) readSync(fd, page, 0, page.length, i * (1 << 20));
    closeSync(fd);
    line({ reads, msg: 'read' });
  }, 200);
}, 10);
