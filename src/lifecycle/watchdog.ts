// The event-loop watchdog: a thread of its own that sees the main thread held in the kernel (a
// read or a page fault of a hung disk), says so, and ends the process when a stop signal cannot
// reach the event loop.
//
// A stop signal the loop cannot take is seen two ways. Pending: the kernel holds it in the
// process's shared pending set while no thread takes it. Handed off: a process-directed signal
// stays pending only until some thread that does not block it passes the kernel's signal check,
// and every thread of a node but the inspector's leaves SIGTERM unblocked: a thread the kernel
// picked, one that sets its signal mask back (V8's threads and this one at their first wait on
// a lock, abseil's thread identity; glibc's thread creation; libuv around a fork or a change to
// its signal handles), or one made while the signal waits. That thread runs libuv's handler,
// which writes the signal to the pipe of every event loop listening for it: the main loop's,
// which its blocked thread does not read, and this thread's own copy (Node's internal module
// for a process's signal listeners: a worker's process.on('SIGTERM') is not given signals
// otherwise). A copy the loop did not take (noteStopTaken) is a stop it cannot take. Before
// (2026-12-07), the watchdog saw only a pending signal, and one handed off before the grace ran
// out was never seen: the process ran until the disk answered (a full test run, once).
// What it still misses: a stop signal handed off before this thread listens (its first
// tens of milliseconds, or more on a loaded machine) while the loop is blocked; a signal
// delivered before then that the loop takes after it, which makes it count one stop too many as
// taken (a later one handed off is missed; the node is already stopping); a signal the process
// did not listen for when the thread started (no copy: seen while pending only); and any, if
// Node drops that internal module (a warning line says so, and the watchdog sees pending
// signals only).

/** How often the main thread beats and the watchdog looks (ms). */
const BEAT_MS = 100;
const LOOK_MS = 250;
/** Bytes of the stage's text the watchdog can read (longer ones are cut). */
const STAGE_BYTES = 256;
/** The signals that stop a node (lifecycle's onStopSignals). */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export interface WatchdogOptions {
  /** Every log line's base fields (the node's name), as the logger writes them. */
  readonly base: Record<string, unknown>;
  /** An event loop that has not turned for this long is logged as blocked (ms). */
  readonly blockedMs: number;
  /**
   * A stop signal (SIGTERM, SIGINT) the event loop has not taken this long (ms) while it is
   * blocked (pending, or handed off to another thread) with no wait of its thread ending
   * meanwhile ends the process (SIGKILL): the signal would reach the node only when the disk
   * answers.
   */
  readonly stopGraceMs: number;
  /**
   * A stop signal the blocked loop has not taken this long (ms) ends the process even while its
   * thread's waits do end (a disk slow to answer): as long as a stop may take (the shutdown
   * timeout and the backstop after it).
   */
  readonly stopBoundMs: number;
}

/** What the watchdog thread shares with the main thread. */
interface Shared {
  /**
   * [0]: the main thread's beats; [1]: the stage text's length in `stage`; [2]: the stop signals
   * the event loop took (noteStopTaken).
   */
  readonly words: Int32Array;
  readonly stage: Uint8Array;
}

let shared: Shared | null = null;
/** What armWatchdog was given: startWatchdog() starts the thread with these. */
let armed: WatchdogOptions | null = null;
/** The last noteStage, kept for a watchdog started after it (e.g. at a first write or a stall). */
let stageNow = '';
/** How many stop signals the event loop took (noteStopTaken). */
let stopsTaken = 0;

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
 * SIGINT the blocked loop has not taken, whether the kernel holds it (the process's pending
 * signals) or handed it to another thread (the file's header), for `stopGraceMs` with no wait of
 * the thread ending meanwhile (a disk that answers none of its reads; one that answers each,
 * however slowly, lets the loop take the signal once they are done), or for `stopBoundMs` in
 * any case, makes it log `stop signal not taken: the event loop is blocked: exiting` (fatal; with
 * `stopGraceMs`, `seen` (`pending` or `taken by another thread`, at the last look), how long it
 * saw the signal not taken, `pendingMs`, how long since a wait of the thread last ended,
 * `stuckMs`, and in how many looks, `looks`: the kill comes at the first look at or past the
 * grace) and end the process with SIGKILL, which also ends a wait on a FUSE or network
 * file system (a thread asleep uninterruptibly on a local device still holds it until its I/O
 * returns). Nothing here touches the disk: the thread reads /proc and writes its lines to stdout
 * itself (on a pipe through a non-blocking descriptor of its own: a reader that stopped does not
 * hold it), since a worker's stdout goes through the blocked main thread. Returns the error of a
 * thread that could not be made (null otherwise): the caller says so, the node goes on without
 * it.
 */
export function startWatchdog(given?: WatchdogOptions): Error | null {
  const opts = given ?? armed;
  if (shared !== null || opts === null) return null;
  const s: Shared = {
    words: new Int32Array(new SharedArrayBuffer(12)),
    stage: new Uint8Array(new SharedArrayBuffer(STAGE_BYTES)),
  };
  writeStage(s, stageNow);
  Atomics.store(s.words, 2, stopsTaken);
  // The stop signals the process listens for now: the thread takes a copy of those only, so that
  // it never turns a signal the process does not listen for (whose default ends it) into one
  // that libuv catches and nothing takes.
  const stopSignals = STOP_SIGNALS.filter((signal) => process.listenerCount(signal) > 0);
  // Loaded here, not at import: a node that never starts the watchdog (a new data directory, a
  // healthy disk) does not load worker_threads at all (test/integration/build.test.ts).
  const { Worker } = process.getBuiltinModule('node:worker_threads');
  let worker: InstanceType<typeof Worker>;
  try {
    worker = new Worker(`(${watchdogThread.toString()})()`, {
      eval: true,
      workerData: { ...opts, words: s.words, stage: s.stage, lookMs: LOOK_MS, stopSignals },
      // The thread allocates next to nothing: a small heap keeps its cost to the process small.
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1 },
      // None of the process's Node options: a Worker takes them by default (execArgv) and parses
      // NODE_OPTIONS from its environment, so a node run with --cpu-prof or --heap-prof profiled
      // this thread too, and wrote a profile of it. It reads no environment variable. Its own
      // option: Node's internal module that lets a thread's process object listen for signals
      // (process.on('SIGTERM') in a worker is not given them otherwise), for its copy of the stop
      // signals (watchdogThread).
      execArgv: ['--expose-internals'],
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

/**
 * Tells the watchdog that the event loop took a stop signal (SIGTERM, SIGINT): the stop
 * signals' handler calls it first. A signal the watchdog got a copy of and the loop did not take
 * is one the loop cannot take while it is blocked.
 */
export function noteStopTaken(): void {
  stopsTaken++;
  if (shared !== null) Atomics.store(shared.words, 2, stopsTaken);
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
    stopSignals: NodeJS.Signals[];
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
  /** The main thread's waits that ended (waitsOf) at the last look in state D. */
  let lastWaits = -1;
  /** When a look last saw one end while a stop signal was held (the first look that saw it, at first). */
  let answeredAt: number | null = null;
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
  // A copy of each stop signal, whichever thread the kernel gave it to. A process-directed signal
  // waits in the shared pending set only until a thread that does not block it passes the
  // kernel's signal check (the main thread when it wakes; any other after it sets its signal mask
  // back, as V8's threads and this one do at their first wait on a lock, or when the kernel picked
  // it), and that thread runs libuv's handler, which writes the signal to the pipe of every event
  // loop that listens for it: the main one, which a blocked thread does not read, and this one.
  // A copy the main loop did not take (noteStopTaken) is a stop it cannot take, as one pending is.
  let copies = 0;
  const takenBefore = Atomics.load(d.words, 2);
  try {
    const { startListeningIfSignal } = require('internal/process/signal') as {
      startListeningIfSignal: (type: string) => void;
    };
    for (const signal of d.stopSignals) {
      startListeningIfSignal(signal);
      process.on(signal, () => copies++);
    }
  } catch (err) {
    log(40, { err: String(err) }, 'watchdog: stop signals are seen only while pending');
  }
  /** Stop signals another thread took whose message the event loop has not read. */
  const handedOff = () => copies - (Atomics.load(d.words, 2) - takenBefore) > 0;
  /** No stop signal held (a turn of the loop, a thread not blocked on the disk). */
  const forget = () => {
    signalSince = null;
    signalLooks = 0;
    answeredAt = null;
  };
  /** The main thread's voluntary context switches: one for each wait it went into. */
  const waitsOf = () => {
    const m = /^voluntary_ctxt_switches:\s*(\d+)/m.exec(read(`${task}/status`));
    return m ? Number(m[1]) : -1;
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
      forget();
      return;
    }
    const blockedMs = now - since;
    // Only a thread asleep uninterruptibly (D: a disk) counts: one that runs (R, a long task, or
    // a machine too loaded to schedule it) or sleeps interruptibly (S: a signal wakes it) is not
    // held by anything a stop signal could not end.
    const w = waiting();
    if (w.state !== 'D') {
      forget();
      return;
    }
    if (!logged && blockedMs >= d.blockedMs) {
      logged = true;
      log(50, { blockedMs, stage: stage(), ...w }, 'event loop blocked');
    }
    // Each wait of the thread that ends (a read the disk answered, before the next one) adds
    // one: a count that moved since the last look is a disk that answers, however slowly.
    const waits = waitsOf();
    const answered = waits !== lastWaits;
    lastWaits = waits;
    // A turn of the loop takes the signal within microseconds: one still pending after a look
    // with no beat is held for the blocked thread, and so is one another thread took whose
    // message the loop has not read.
    const seen =
      blockedMs < 2 * d.lookMs
        ? null
        : stopPending()
          ? 'pending'
          : handedOff()
            ? 'taken by another thread'
            : null;
    if (seen === null) {
      forget();
      return;
    }
    signalSince ??= now;
    signalLooks++;
    if (answered || answeredAt === null) answeredAt = now;
    const pendingMs = now - signalSince;
    // The grace counts from the signal or the last wait that ended, whichever came last: a loop
    // that a slow disk holds takes the signal once its reads are done (before 2026-12-07 the
    // grace counted from the signal, and a start checking its LMDB trees on a disk whose reads
    // took 150 ms was killed so), but no longer than a stop may take.
    const stuckMs = now - answeredAt;
    if (stuckMs < d.stopGraceMs && pendingMs < d.stopBoundMs) return;
    // The first look at or past the grace (or the bound) ends it: the line says which look (with
    // no wait ended, a late timer makes fewer, never more, than stopGraceMs / lookMs + 1) against
    // which grace, and how long since a wait last ended (stuckMs).
    log(
      60,
      {
        blockedMs,
        stage: stage(),
        ...w,
        stopGraceMs: d.stopGraceMs,
        seen,
        pendingMs,
        stuckMs,
        looks: signalLooks,
        lookMs: d.lookMs,
      },
      'stop signal not taken: the event loop is blocked: exiting',
    );
    process.kill(process.pid, 'SIGKILL');
  }, d.lookMs);
}
