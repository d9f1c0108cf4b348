// The event-loop watchdog: a thread of its own that sees the main thread held in the kernel (a
// read or a page fault of a hung disk), says so, and ends the process when a stop signal cannot
// reach the event loop.

/** How often the main thread beats and the watchdog looks (ms). */
const BEAT_MS = 100;
const LOOK_MS = 250;
/** Bytes of the stage's text the watchdog can read (longer ones are cut). */
const STAGE_BYTES = 256;

export interface WatchdogOptions {
  /** Every log line's base fields (the node's name), as the logger writes them. */
  readonly base: Record<string, unknown>;
  /** An event loop that has not turned for this long is logged as blocked (ms). */
  readonly blockedMs: number;
  /**
   * A stop signal (SIGTERM, SIGINT) pending this long (ms) while the event loop is blocked ends
   * the process (SIGKILL): the signal would reach the node only when the disk answers.
   */
  readonly stopGraceMs: number;
}

/** What the watchdog thread shares with the main thread. */
interface Shared {
  /** [0]: the main thread's beats; [1]: the stage text's length in `stage`. */
  readonly words: Int32Array;
  readonly stage: Uint8Array;
}

let shared: Shared | null = null;
/** What armWatchdog was given: startWatchdog() starts the thread with these. */
let armed: WatchdogOptions | null = null;
/** The last noteStage, kept for a watchdog started after it (e.g. at a first write or a stall). */
let stageNow = '';

/**
 * Records the watchdog's options without starting its thread, which costs about 10 MiB of
 * anonymous memory (a worker's isolate, not given back when it ends): the node starts it where a
 * disk that does not answer can hold the event loop, startWatchdog() with no options (a restart's
 * synchronous reads of LMDB's file, a disk judged stalled). Main calls it; in-process nodes
 * (tests) never arm it, so startWatchdog() does nothing there.
 */
export function armWatchdog(opts: WatchdogOptions): void {
  armed = opts;
}

/**
 * Starts the watchdog (once per process; a second call does nothing; with no options, those
 * armWatchdog recorded, and nothing when it was not armed). The main thread beats
 * every BEAT_MS from a timer; the watchdog thread looks every LOOK_MS. While the beats stop for
 * `blockedMs` with the main thread asleep uninterruptibly (state `D`: a disk read, a page fault,
 * a sync), it logs `event loop blocked` once (error) with the stage (noteStage) and the kernel
 * function it waits in (`wchan`), and `event loop answers again` once it turns. A thread that
 * runs (a long task, a loaded machine) or sleeps interruptibly is not its business. A SIGTERM or
 * SIGINT the kernel holds for the blocked main thread (the process's pending signals) for
 * `stopGraceMs` makes it log `stop signal not taken: the event loop is blocked: exiting` (fatal;
 * with `stopGraceMs`, how long it saw the signal pending, `pendingMs`, and in how many looks,
 * `looks`: the kill comes at the first look at or past the grace) and end the process with
 * SIGKILL, which also ends a wait on a FUSE or network file system (a thread asleep
 * uninterruptibly on a local device still holds it until its I/O returns). Nothing here touches
 * the disk: the thread reads /proc and writes its lines to stdout itself (on a pipe through a
 * non-blocking descriptor of its own: a reader that stopped does not hold it), since a worker's
 * stdout goes through the blocked main thread. Returns the error of a thread that could
 * not be made (null otherwise): the caller says so, the node goes on without it.
 */
export function startWatchdog(given?: WatchdogOptions): Error | null {
  const opts = given ?? armed;
  if (shared !== null || opts === null) return null;
  const s: Shared = {
    words: new Int32Array(new SharedArrayBuffer(8)),
    stage: new Uint8Array(new SharedArrayBuffer(STAGE_BYTES)),
  };
  writeStage(s, stageNow);
  // Loaded here, not at import: a node that never starts the watchdog (a new data directory, a
  // healthy disk) does not load worker_threads at all (test/integration/build.test.ts).
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  let worker: InstanceType<typeof Worker>;
  try {
    worker = new Worker(`(${watchdogThread.toString()})()`, {
      eval: true,
      workerData: { ...opts, words: s.words, stage: s.stage, lookMs: LOOK_MS },
      // The thread allocates next to nothing: a small heap keeps its cost to the process small.
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1 },
      // None of the process's Node options: a Worker takes them by default (execArgv) and parses
      // NODE_OPTIONS from its environment, so a node run with --cpu-prof or --heap-prof profiled
      // this thread too, and wrote a profile of it. It reads no environment variable.
      execArgv: [],
      env: {},
      stdout: false,
      stderr: false,
    });
  } catch (err) {
    // A thread the system refuses (ERR_WORKER_INIT_FAILED, EAGAIN: a pids limit reached) is
    // thrown here, not emitted: returned, so that no write or start fails for it; a later call
    // (a stall) tries again.
    return err instanceof Error ? err : new Error(String(err));
  }
  shared = s;
  setInterval(() => Atomics.add(s.words, 0, 1), BEAT_MS).unref();
  worker.unref();
  // A watchdog that fails is no reason to stop the node.
  worker.on('error', () => {});
  return null;
}

/** Tells the watchdog what the process is doing now (named in its lines), e.g. a start's phase. */
export function noteStage(stage: string): void {
  stageNow = stage;
  if (shared !== null) writeStage(shared, stage);
}

function writeStage(s: Shared, stage: string): void {
  const bytes = Buffer.from(stage).subarray(0, STAGE_BYTES);
  Atomics.store(s.words, 1, 0);
  s.stage.set(bytes);
  Atomics.store(s.words, 1, bytes.length);
}

/**
 * The watchdog thread's code: run from its source in a worker (eval), so it uses only what it
 * requires from Node itself.
 */
function watchdogThread(): void {
  const { constants, fstatSync, openSync, readFileSync, writeSync } =
    require('node:fs') as typeof import('node:fs');
  const { workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const d = workerData as WatchdogOptions & {
    words: Int32Array;
    stage: Uint8Array;
    lookMs: number;
  };
  const task = `/proc/self/task/${process.pid}`;
  const SIGINT = 1n << 1n;
  const SIGTERM = 1n << 14n;
  let beat = Atomics.load(d.words, 0);
  let since = Date.now();
  let logged = false;
  let signalSince: number | null = null;
  /** The looks that found a stop signal held (reset with signalSince). */
  let signalLooks = 0;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const iso = (ms: number) => {
    const t = new Date(ms);
    return `${pad(t.getUTCFullYear(), 4)}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}T${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}.${pad(t.getUTCMilliseconds(), 3)}Z`;
  };
  // Its lines never wait for stdout's reader, or a reader that stopped would keep it from ending
  // the process: on a pipe (a container's stdout), a description of its own in non-blocking mode
  // (a line that does not fit is lost); the logger's descriptor 1 blocks (observability/logger.ts).
  let out = 1;
  try {
    if (fstatSync(1).isFIFO()) {
      out = openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK);
    }
  } catch {
    // No reader, or no /proc: descriptor 1.
  }
  const log = (level: number, fields: Record<string, unknown>, msg: string) => {
    const line = JSON.stringify({ level, time: iso(Date.now()), ...d.base, ...fields, msg });
    try {
      writeSync(out, `${line}\n`);
    } catch {
      // Nowhere to say it.
    }
  };
  const read = (path: string) => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return '';
    }
  };
  /** The main thread's state (R, S, D, ...) and the kernel function it waits in. */
  const waiting = () => {
    const stat = read(`${task}/stat`);
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? '?';
    return { state, wchan: read(`${task}/wchan`) || '?' };
  };
  const stopPending = () => {
    const status = read(`${task}/status`);
    let pending = 0n;
    for (const name of ['SigPnd', 'ShdPnd']) {
      const m = new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status);
      if (m) pending |= BigInt(`0x${m[1]}`);
    }
    return (pending & (SIGTERM | SIGINT)) !== 0n;
  };
  const stage = () => {
    const n = Atomics.load(d.words, 1);
    return Buffer.from(d.stage.slice(0, n)).toString();
  };
  setInterval(() => {
    const now = Date.now();
    const b = Atomics.load(d.words, 0);
    if (b !== beat) {
      if (logged) log(30, { blockedMs: now - since, stage: stage() }, 'event loop answers again');
      beat = b;
      since = now;
      logged = false;
      signalSince = null;
      signalLooks = 0;
      return;
    }
    const blockedMs = now - since;
    // Only a thread asleep uninterruptibly (D: a disk) counts: one that runs (R, a long task, or
    // a machine too loaded to schedule it) or sleeps interruptibly (S: a signal wakes it) is not
    // held by anything a stop signal could not end.
    const w = waiting();
    if (w.state !== 'D') {
      signalSince = null;
      signalLooks = 0;
      return;
    }
    if (!logged && blockedMs >= d.blockedMs) {
      logged = true;
      log(50, { blockedMs, stage: stage(), ...w }, 'event loop blocked');
    }
    // A turn of the loop takes the signal within microseconds: one still pending after a look
    // with no beat is held for the blocked thread.
    if (blockedMs < 2 * d.lookMs || !stopPending()) {
      signalSince = null;
      signalLooks = 0;
      return;
    }
    signalSince ??= now;
    signalLooks++;
    const pendingMs = now - signalSince;
    if (pendingMs < d.stopGraceMs) return;
    // The first look at or past the grace ends it: the line says which look (a late timer makes
    // fewer, never more, than stopGraceMs / lookMs + 1) against which grace.
    log(
      60,
      {
        blockedMs,
        stage: stage(),
        ...w,
        stopGraceMs: d.stopGraceMs,
        pendingMs,
        looks: signalLooks,
        lookMs: d.lookMs,
      },
      'stop signal not taken: the event loop is blocked: exiting',
    );
    process.kill(process.pid, 'SIGKILL');
  }, d.lookMs);
}
