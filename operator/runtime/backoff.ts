// Exponential backoff with a cap and optional jitter, for retries of watches, reconciles and leases.

export interface BackoffOptions {
  /** Delay of the first retry in ms. */
  readonly baseMs: number;
  /** Largest delay in ms. */
  readonly maxMs: number;
  /** Fraction of the delay added at random (0..1); 0 gives exact powers of two. */
  readonly jitter?: number;
}

/** Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, plus jitter. */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 52)));
  const jitter = opts.jitter ?? 0;
  return Math.min(opts.maxMs, Math.round(exp * (1 + jitter * random())));
}

/** A retry counter: next() gives the following delay, reset() starts over after a success. */
export class Backoff {
  readonly #opts: BackoffOptions;
  #attempt = 0;

  constructor(opts: BackoffOptions) {
    this.#opts = opts;
  }

  /** Retries since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  next(): number {
    this.#attempt++;
    return backoffDelay(this.#attempt, this.#opts);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
