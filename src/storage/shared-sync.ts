// Writes that wait for the same write-ahead log group share one reaction to it.

/**
 * The promises of the writes that wait for one log group (WriteAheadLog.sync returns the same
 * promise to every write of a group): one reaction per group instead of one per write, and one
 * promise per group for each outcome of a write's decision (applied or not). `settled` runs once
 * the group is on disk, with the start time of each of its writes (and may return a promise that
 * the writes then also wait for); `failed` once it failed (the writes reject with its error).
 */
export class SharedSync {
  readonly #settled: (starts: readonly number[]) => undefined | Promise<unknown>;
  readonly #failed: () => void;
  #sync: Promise<void> | null = null;
  #starts: number[] = [];
  #done: Promise<unknown> = Promise.resolve();
  #applied: Promise<boolean> | null = null;
  #skipped: Promise<boolean> | null = null;

  constructor(
    settled: (starts: readonly number[]) => undefined | Promise<unknown>,
    failed: () => void,
  ) {
    this.#settled = settled;
    this.#failed = failed;
  }

  /**
   * A promise that resolves to `result` once `sync` (a log sync) resolved and `settled` ran
   * (and what it returned settled), or rejects as `sync` does.
   */
  wait(sync: Promise<void>, started: number, result: boolean): Promise<boolean> {
    if (sync !== this.#sync) {
      this.#sync = sync;
      const starts: number[] = [];
      this.#starts = starts;
      this.#applied = null;
      this.#skipped = null;
      this.#done = sync.then(
        () => this.#settled(starts),
        (err: unknown) => {
          this.#failed();
          throw err;
        },
      );
    }
    this.#starts.push(started);
    if (result) {
      this.#applied ??= this.#done.then(() => true);
      return this.#applied;
    }
    this.#skipped ??= this.#done.then(() => false);
    return this.#skipped;
  }
}
