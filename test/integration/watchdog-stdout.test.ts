// The watchdog thread's lines on a stdout pipe: written through a descriptor of its own in
// non-blocking mode, so that a reader that stopped cannot keep it from ending a blocked process.
// And the thread runs with none of the process's Node options (a profiler's, an inspector's).

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { cleanup, NODE, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

const WATCHDOG = join(import.meta.dirname, '../../src/lifecycle/watchdog.ts');
const LOGGER = join(import.meta.dirname, '../../src/observability/logger.ts');

const flagsOf = (pid: number, fd: string) => {
  const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
  return Number.parseInt(/^flags:\s*([0-7]+)/m.exec(info)![1]!, 8);
};

/** The descriptors of `pid`, other than 1, open on what its descriptor 1 is, with their flags. */
function stdoutCopies(pid: number): number[] {
  const target = readlinkSync(`/proc/${pid}/fd/1`);
  const out: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    if (fd === '1') continue;
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) out.push(flagsOf(pid, fd));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

describe('the watchdog thread on a stdout pipe', () => {
  it('writes through a non-blocking descriptor of its own, the logger through a blocking one', async () => {
    const fifo = join(tempDir(), 'stdout');
    execFileSync('mkfifo', [fifo]);
    // The reader never reads: a pipe it keeps open, as a log collector that stopped.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    defer(() => closeSync(reader));
    const writer = openSync(fifo, constants.O_WRONLY);
    // A CommonJS script, as main.ts's process evaluates the watchdog's code.
    const script = `Promise.all([import(${JSON.stringify(WATCHDOG)}), import(${JSON.stringify(LOGGER)})])
      .then(([{ startWatchdog }, { createLogger }]) => {
        startWatchdog({ base: {}, blockedMs: 1000, stopGraceMs: 500, stopBoundMs: 2900 });
        createLogger('info', {}).info({}, 'started');
        setInterval(() => {}, 1000);
      });`;
    const child = spawn(NODE, ['-e', script], {
      stdio: ['ignore', writer, 'ignore'],
    });
    closeSync(writer);
    defer(() => child.kill('SIGKILL'));
    const pid = child.pid!;
    await expect.poll(() => stdoutCopies(pid).length, { timeout: 10_000 }).toBe(1);
    expect(stdoutCopies(pid)[0]! & constants.O_NONBLOCK).toBe(constants.O_NONBLOCK);
    // The Worker opened process.stdout on the pipe (non-blocking); the logger made it block again.
    expect(flagsOf(pid, '1') & constants.O_NONBLOCK).toBe(0);
  });

  // Before: the Worker took the process's Node options (execArgv by default, NODE_OPTIONS from its
  // environment), so a node run with --cpu-prof (or --heap-prof, --inspect-brk, ...) profiled its
  // watchdog thread too and wrote a second profile, for either way of giving the flag.
  it.each([
    ['on the command line', ['--cpu-prof', '--cpu-prof-dir=DIR'], {}],
    ['in NODE_OPTIONS', [], { NODE_OPTIONS: '--cpu-prof --cpu-prof-dir=DIR' }],
  ])('takes none of the Node options the process was given %s', async (_how, flags, env) => {
    const dir = tempDir();
    const script = `import(${JSON.stringify(WATCHDOG)}).then(({ startWatchdog }) => {
        startWatchdog({ base: {}, blockedMs: 1000, stopGraceMs: 500, stopBoundMs: 2900 });
        process.on('SIGTERM', () => process.exit(0));
        setInterval(() => {}, 1000);
      });`;
    // Its stdout a FIFO, where the thread opens a descriptor of its own (stdoutCopies).
    const fifo = join(tempDir(), 'stdout');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    defer(() => closeSync(reader));
    const writer = openSync(fifo, constants.O_WRONLY);
    const child = spawn(NODE, [...flags.map((f) => f.replace('DIR', dir)), '-e', script], {
      stdio: ['ignore', writer, 'ignore'],
      env: {
        ...process.env,
        ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('DIR', dir)])),
      },
    });
    closeSync(writer);
    defer(() => child.kill('SIGKILL'));
    const exited = new Promise((res) => child.once('exit', (code) => res(code)));
    // The thread runs its own code once it opened its descriptor on the stdout pipe.
    await expect.poll(() => stdoutCopies(child.pid!).length, { timeout: 10_000 }).toBe(1);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // The main thread's profile, none of the watchdog thread's.
    expect(readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(1);
  });
});
