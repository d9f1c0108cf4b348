// Long synchronous work (the start-up tree check, the log replay) written as a generator that
// yields between steps: run at once, or in slices that let the event loop turn; and waits a stop
// signal ends (untilAborted).

/**
 * Work a step at a time, returning a T: each step yields nothing, or work under way off the
 * event loop's thread (a read on libuv's thread pool) that the next step needs done (its
 * promise never rejects: the step that made it finds its outcome).
 */
export type Steps<T> = Generator<Promise<void> | void, T>;

/**
 * Runs `steps` to its end without letting the event loop turn; returns what it returns. Its steps
 * wait for nothing off the thread (runStepsInSlices runs those).
 */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (r.value !== undefined) throw new Error('runSteps: a step waits for work off the thread');
  }
}

/**
 * Runs `steps` in slices of about `sliceMs`, letting the event loop turn between them (so that a
 * signal handler runs) and while a step waits for work off the thread, and rejects with
 * `signal`'s reason once it aborts (at once, whatever that work does).
 */
export async function runStepsInSlices<T>(
  steps: Steps<T>,
  signal: AbortSignal,
  sliceMs = 20,
): Promise<T> {
  let slice = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (r.value !== undefined) {
      await untilAborted(r.value, signal);
      signal.throwIfAborted();
      slice = performance.now();
      continue;
    }
    if (performance.now() - slice < sliceMs) continue;
    await new Promise((resolve) => setImmediate(resolve));
    signal.throwIfAborted();
    slice = performance.now();
  }
}

/**
 * `work`'s outcome, or a rejection with `signal`'s reason as soon as it aborts (`work` goes on:
 * a sync on a hung disk may never return, and a stop must not wait for it).
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  const { promise, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return Promise.race([work, promise]).finally(() => signal.removeEventListener('abort', onAbort));
}
