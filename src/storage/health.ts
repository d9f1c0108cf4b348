// Whether the store can take writes: LMDB commit failures (a full disk, I/O errors), how they
// are described, and the signals the store's checkpoints and repairs wait on.

import { statfsSync } from 'node:fs';
import { describeIoError, errnoName } from './io-errors.ts';

/**
 * How long a failed LMDB commit waits for lmdb-js to say why (its `commitError`, a moment after
 * the write's rejection) before it is judged without the cause (LmdbHealth.fail).
 */
export const COMMIT_CAUSE_WAIT_MS = 1000;

/** A one-shot broadcast that can be re-armed: `wait()` resolves at the next `fire()`. */
class Signal {
  readonly #waiters = new Set<() => void>();
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.add(resolve));
  }
  /** Resolves with `p`, or with `fallback` at the next fire(); leaves no waiter behind. */
  race<T, F>(p: PromiseLike<T>, fallback: F): Promise<T | F> {
    let waiter = () => {};
    const fired = new Promise<F>((resolve) => {
      waiter = () => resolve(fallback);
      this.#waiters.add(waiter);
    });
    return Promise.race([Promise.resolve(p), fired]).finally(() => this.#waiters.delete(waiter));
  }
  fire(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }
}

/**
 * LMDB's state as the store sees it. lmdb-js reports a failed commit three ways: the write's
 * promise rejects with `Commit failed` (its `commitError` a promise of the errno error), that
 * inner promise rejects, and `flushed` never resolves for the failed transaction. `fail` takes
 * the first (and handles the second); `flushed` callers use `unlessFailed`.
 */
export class LmdbHealth {
  readonly #dir: string;
  #failure: { reason: string } | null = null;
  #generation = 0;
  readonly #failed = new Signal();
  readonly #healthy = new Signal();
  readonly #onChange: (failure: string | null) => void;
  readonly #onFatal: (failure: string) => void;
  #fatal: string | null = null;
  /** Settles once the cause of every failure so far is known and judged (see `judged`). */
  #judging: Promise<void> = Promise.resolve();

  constructor(
    dir: string,
    onChange: (failure: string | null) => void = () => {},
    onFatal: (failure: string) => void = () => {},
  ) {
    this.#dir = dir;
    this.#onChange = onChange;
    this.#onFatal = onFatal;
  }

  /** Why LMDB is not taking writes (`disk full (ENOSPC)`), or null while it is. */
  get failure(): string | null {
    return this.#failure?.reason ?? null;
  }

  /**
   * Why LMDB must never be given a transaction again in this process, or null. Set by a failed
   * commit whose cause is not a full disk (an I/O error: EIO, EROFS, MDB_PANIC, or a cause
   * lmdb-js did not say) and by a failed sync of LMDB's file (`syncFailed`). Such a failure may
   * have come from LMDB's fdatasync, and after a failed fdatasync Linux may have dropped the
   * pages it could not write while marking them clean: a later sync that succeeds does not
   * make them durable, so a retried commit could name pages that are not on disk (and, opened
   * with noMetaSync, reuse pages the meta on disk still names). Only a restart, which reads the
   * file again and replays the log, repairs it (docs/storage.md, "When the disk fails").
   */
  get fatal(): string | null {
    return this.#fatal;
  }

  /**
   * Resolves once the cause of every failure recorded so far, and of any recorded while it waits,
   * is known (and `fatal` set by it).
   */
  async judged(): Promise<void> {
    // A failure recorded meanwhile is waited for too: a repair must not retry its commit first.
    for (;;) {
      const judging = this.#judging;
      await judging;
      if (judging === this.#judging) return;
    }
  }

  /** A sync of LMDB's file failed: fatal whatever the cause (see `fatal`). */
  syncFailed(err: unknown): void {
    this.fail(err);
    this.#setFatal(`a sync of LMDB's file failed: ${this.describe(err)}`);
  }

  #setFatal(reason: string): void {
    if (this.#fatal !== null) return;
    this.#fatal = reason;
    if (this.#failure !== null) this.#failure.reason = reason;
    this.#onFatal(reason);
    this.#onChange(reason);
  }

  /**
   * Judges a failure once its cause is known: a failed LMDB commit is fatal unless its cause is
   * a full disk (retried: no sync was involved, see docs/storage.md). Errors of our own code
   * (a transaction's callback that threw) are not LMDB's: the repair goes on as before.
   */
  #judge(cause: unknown): void {
    if (this.#fatal !== null || !fromLmdb(cause)) return;
    const reason = this.describe(cause);
    if (reason.startsWith('disk full') || reason.startsWith('disk quota exceeded')) return;
    this.#setFatal(`an LMDB commit failed: ${reason}`);
  }

  /** Counts failures: a flush waited for is complete only if this did not move meanwhile. */
  get generation(): number {
    return this.#generation;
  }

  /** Records a failed LMDB write (any rejection of an LMDB write promise). */
  fail(err: unknown): void {
    this.#generation++;
    const failure = this.#failure ?? { reason: this.#fatal ?? this.describe(err) };
    this.#failure = failure;
    const inner = (err as { commitError?: unknown } | null)?.commitError;
    if (inner instanceof Promise) {
      // lmdb-js rejects the write first and says why in `commitError` a moment later: no repair
      // (a retried commit) until then, see `judged`.
      let said = false;
      const told = inner.then(
        () => {
          said = true;
          this.#judge(err);
        },
        (cause: unknown) => {
          said = true;
          if (this.#failure === failure && this.#fatal === null) {
            failure.reason = this.describe(cause);
          }
          this.#judge(cause);
        },
      );
      // lmdb-js does not always say: a failed commit's status that reaches its callback before
      // the transaction is marked failed is only printed, and `commitError` never settles (every
      // sync failing while a node stopped). Past COMMIT_CAUSE_WAIT_MS the failure is judged by
      // what is known: a cause not said is fatal unless the file system has no room.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, COMMIT_CAUSE_WAIT_MS);
      });
      const judged = Promise.race([told, late]).then(() => {
        clearTimeout(timer);
        if (!said) this.#judge(err);
      });
      this.#judging = Promise.all([this.#judging, judged]).then(() => {});
    } else {
      this.#judge(err);
    }
    this.#onChange(failure.reason);
    this.#failed.fire();
  }

  /** Marks LMDB writable again, if no failure came after `generation` was read (never once fatal). */
  recovered(generation: number): boolean {
    if (this.#failure === null) return true;
    if (this.#fatal !== null) return false;
    if (generation !== this.#generation) return false;
    this.#failure = null;
    this.#onChange(null);
    this.#healthy.fire();
    return true;
  }

  /** Resolves with `p`, or with `fallback` if a failure comes first. */
  unlessFailed<T, F>(p: PromiseLike<T>, fallback: F): Promise<T | F> {
    return this.#failed.race(p, fallback);
  }

  /** Resolves once LMDB is writable again (at once when it is). */
  healthy(): Promise<void> {
    return this.#failure === null ? Promise.resolve() : this.#healthy.wait();
  }

  /** Wakes every `healthy()` waiter (the store is closing). */
  wake(): void {
    this.#healthy.fire();
  }

  /** A short reason; an I/O error on a file system with no room left is a full disk. */
  describe(err: unknown): string {
    if (errnoName(err) === null && err instanceof Error && /^Commit failed/.test(err.message)) {
      return describeIoError(new Error('LMDB commit failed'), this.#dir);
    }
    return describeIoError(err, this.#dir);
  }
}

/**
 * Whether `err` is a failure LMDB (lmdb-js) reported: a failed commit (`Commit failed`, its
 * `commitError`), an errno or LMDB code as a number (lmdb-js's `code: 5`, `-30795`), an `MDB_`
 * error, or an errno name (a failed sync, see LmdbEnvSync).
 */
function fromLmdb(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'number') return true;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return /^Commit failed|MDB_/.test(err.message) || 'commitError' in err;
}

/** Whether a directory's file system has at least `minFree` bytes free (0: always). */
export class SpaceCheck {
  readonly #dir: string;
  readonly #minFree: number;
  /** #short is fresh: set by a check, cleared 100 ms later (a timer, not a clock read per write). */
  #fresh = false;
  readonly #stale = () => {
    this.#fresh = false;
  };
  #short: string | null = null;

  constructor(dir: string, minFree: number) {
    this.#dir = dir;
    this.#minFree = minFree;
  }

  /**
   * Why free space is short, or null. Checked at most every 100 ms unless `fresh`: a write is
   * refused from the first check after space ran short, at most that late.
   */
  short(fresh = false): string | null {
    if (this.#minFree === 0) return null;
    if (!fresh && this.#fresh) return this.#short;
    if (!this.#fresh) setTimeout(this.#stale, 100).unref();
    this.#fresh = true;
    this.#short = null;
    try {
      const fs = statfsSync(this.#dir);
      const free = fs.bavail * fs.bsize;
      if (free < this.#minFree) {
        this.#short = `disk full (${free} bytes free in ${this.#dir}, below --min-free-disk-bytes ${this.#minFree})`;
      }
    } catch {
      // Cannot tell: the writes themselves will say.
    }
    return this.#short;
  }
}

const guarded = new Set<LmdbHealth>();
let installed = false;

/**
 * lmdb-js also rejects promises of its own, which nothing can attach a handler to, when a
 * commit fails; Node would end the process for them. This handler takes exactly those (an error
 * with a `commitError`, or the errno error lmdb's writer reports), tells every open store, and
 * rethrows anything else so other unhandled rejections still end the process as before.
 */
export function guardLmdbRejections(health: LmdbHealth): () => void {
  guarded.add(health);
  if (!installed) {
    installed = true;
    process.on('unhandledRejection', (reason) => {
      if (!isLmdbWriteError(reason)) throw reason;
      for (const h of guarded) h.fail(reason);
    });
  }
  return () => guarded.delete(health);
}

function isLmdbWriteError(reason: unknown): boolean {
  if (!(reason instanceof Error)) return false;
  if ('commitError' in reason) return true;
  return (
    typeof (reason as { code?: unknown }).code === 'number' &&
    /lmdb\/write\.js/.test(reason.stack ?? '')
  );
}
