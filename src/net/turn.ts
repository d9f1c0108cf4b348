// One setImmediate for everything that waits for the end of the event-loop turn.

let queue: (() => void)[] = [];
/** Functions for the pass after the coming one (atNextTurn). */
let next: (() => void)[] = [];
let scheduled = false;
/** End-of-turn passes run so far (turnPasses). */
let passes = 0;

/**
 * How many end-of-turn passes have run: a number that changes between two event-loop turns in
 * which anything was written to a socket (every client reply and peer frame goes out in one), so
 * a count kept per turn starts again when it differs from the one it was kept under.
 */
export function turnPasses(): number {
  return passes;
}

/** The job currentJob() answers; `jobEnding`: its end is queued (a microtask). */
let job = 1;
/**
 * What currentJob's microtask hangs on: a reaction to a settled promise is a V8 job of its own,
 * where Node's queueMicrotask wraps each callback in an AsyncResource and a bound function
 * (~25 ns against 56-86 ns a call, measured alone).
 */
const SETTLED = Promise.resolve();
let jobEnding = false;
const endJob = (): void => {
  job++;
  jobEnding = false;
};

/**
 * A number that stays the same through one job (a callback of the event loop, with the
 * microtasks queued until the one this queues runs) and differs in every later one: what is read
 * once per job and kept for the rest of it (ClockCheck.checkOncePerJob, the store's start of a
 * write's wait) is kept under it. One microtask per job for all of them.
 */
export function currentJob(): number {
  if (!jobEnding) {
    jobEnding = true;
    void SETTLED.then(endJob);
  }
  return job;
}

/**
 * Runs `fn` once the turn's I/O callbacks are done (in setImmediate's phase), after the
 * functions queued before it. A function queued while they run joins the same pass rather than
 * the next turn: a batch sent at the end of the turn (coalesced replica writes) is then still in
 * time for the end-of-turn write of its socket (FrameWriter).
 */
export function atTurnEnd(fn: () => void): void {
  queue.push(fn);
  if (scheduled) return;
  scheduled = true;
  setImmediate(runQueue);
}

/**
 * Runs `fn` in the end-of-turn pass after the one this turn ends with: in the next event-loop
 * turn, once its I/O callbacks ran (new connections accepted, sockets read), before the functions
 * that turn queues with atTurnEnd. What waits for a later turn (TurnBudget) goes on there.
 */
export function atNextTurn(fn: () => void): void {
  next.push(fn);
  if (scheduled) return;
  scheduled = true;
  setImmediate(runQueue);
}

function runQueue(): void {
  // Indexed, not iterated over a copy: functions queued meanwhile run in this pass.
  for (let i = 0; i < queue.length; i++) {
    try {
      queue[i]!();
    } catch (err) {
      // One failing function must not stop the others; the error still surfaces.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
  passes++;
  if (next.length === 0) {
    queue = [];
    scheduled = false;
    return;
  }
  // Scheduled from this pass (setImmediate's phase), the next pass comes after the next poll.
  queue = next;
  next = [];
  setImmediate(runQueue);
}
