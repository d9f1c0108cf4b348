// Long synchronous work (the start-up tree check, the log replay) written as a generator that
// yields between steps: run at once, or in slices that let the event loop turn; and waits a stop
// signal ends (untilAborted).

/** Runs `steps` to its end without letting the event loop turn; returns what it returns. */
export function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs `steps` in slices of about `sliceMs`, letting the event loop turn between them (so that a
 * signal handler runs), and rejects with `signal`'s reason once it aborts.
 */
export async function runStepsInSlices<T>(
  steps: Generator<void, T>,
  signal: AbortSignal,
  sliceMs = 20,
): Promise<T> {
  let slice = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
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
