// Keeps a warning that strangers or a bad peer can trigger at will from flooding the log.

/**
 * Lets one event in each `everyMs` through and counts the others, so a log line can say how many
 * it stands for. Not for the hot path's metrics: those count every event.
 */
export class LogThrottle {
  readonly #everyMs: number;
  readonly #now: () => number;
  #last = Number.NEGATIVE_INFINITY;
  #skipped = 0;

  constructor(everyMs = 1000, now: () => number = Date.now) {
    this.#everyMs = everyMs;
    this.#now = now;
  }

  /**
   * The number of events skipped since the last one let through (the caller logs it with this
   * one), or -1 when this one is skipped too.
   */
  take(): number {
    const now = this.#now();
    if (now - this.#last < this.#everyMs) {
      this.#skipped++;
      return -1;
    }
    this.#last = now;
    const skipped = this.#skipped;
    this.#skipped = 0;
    return skipped;
  }
}
