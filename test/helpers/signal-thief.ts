// A node in which a thread other than the main one takes a stop signal (SIGTERM) off the
// process's pending set: preloaded with NODE_OPTIONS=--import=<this file> (THIEF_ENV), it starts a
// worker thread that looks at the pending set every millisecond and, once SIGTERM is in it, makes
// the kernel hand it to that thread. What it forces is what the kernel may do in any node: a
// process-directed signal waits in the shared pending set only until some thread that does not
// block it passes the kernel's signal check, which a thread does after it changes its signal mask
// (V8's and the watchdog's threads do at their first wait on a lock; libuv around a fork, glibc
// around a thread's creation), or as a thread the kernel picked. That thread then runs libuv's
// handler, which writes the signal to the main loop's pipe: a main thread held by the disk never
// reads it, and the signal is pending nowhere. The thief makes its hand-off with a child process
// (libuv blocks every signal around the fork and sets the mask back) and says so on stderr
// (THIEF_LINE). Imported without the variable (by a test), it does nothing.

import { Worker } from 'node:worker_threads';

/** What the thief writes to stderr once SIGTERM is no longer pending, after its hand-off. */
export const THIEF_LINE = 'signal thief: SIGTERM taken off the pending set by a worker thread';

/** The environment of a node whose SIGTERM the thief takes (spawnNodeProcess's `env`). */
export const THIEF_ENV = {
  KV_TEST_SIGNAL_THIEF: '1',
  NODE_OPTIONS: `--import=${import.meta.filename}`,
};

if (process.env.KV_TEST_SIGNAL_THIEF === '1') {
  const thread = new Worker(`(${thief.toString()})(${JSON.stringify(THIEF_LINE)})`, {
    eval: true,
    execArgv: [],
    env: {},
  });
  thread.unref();
}

/** The thread's code (run from its source: only what it requires from Node itself). */
function thief(line: string): void {
  const { readFileSync, writeSync } = require('node:fs') as typeof import('node:fs');
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const SIGTERM = 1n << 14n;
  const pending = () => {
    const m = /^ShdPnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m !== null && (BigInt(`0x${m[1]}`) & SIGTERM) !== 0n;
  };
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (!pending()) Atomics.wait(nap, 0, 0, 1);
  while (pending()) spawnSync('true');
  writeSync(2, `${line}\n`);
}
