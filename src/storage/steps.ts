// Long synchronous work (the start-up tree check, the log replay) written as a generator that
// yields between steps: run at once, or in slices that let the event loop turn.

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
