// Per-key work queue: dedupe, one worker per key at a time, delayed adds and per-key backoff.

import { type BackoffOptions, backoffDelay } from './backoff.ts';

export interface QueueOptions {
  /** Backoff of addRateLimited(); the count per key resets with forget(). */
  readonly backoff: BackoffOptions;
  /** Called with the number of waiting keys whenever it changes. */
  readonly onDepth?: (depth: number) => void;
}

/**
 * Keys wait in FIFO order and each appears at most once. A key added while a worker holds it
 * is marked dirty and queued again when that worker calls done(), so one key is never processed
 * by two workers at once and no change is lost.
 */
export class WorkQueue {
  readonly #opts: QueueOptions;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #failures = new Map<string, number>();
  #waiters: ((key: string | null) => void)[] = [];
  #shutdown = false;

  constructor(opts: QueueOptions) {
    this.#opts = opts;
  }

  /** Waiting keys (not counting those being processed or delayed). */
  get length(): number {
    return this.#queue.length;
  }

  get isShutdown(): boolean {
    return this.#shutdown;
  }

  /** Queues `key` now (no-op if already waiting; marked dirty if being processed). */
  add(key: string): void {
    if (this.#shutdown) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queued.add(key);
    this.#queue.push(key);
    this.#opts.onDepth?.(this.#queue.length);
  }

  /** Queues `key` after `ms`; of several pending delays for one key the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const pending = this.#timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Queues `key` after its backoff delay and counts one more failure for it. */
  addRateLimited(key: string): number {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const delay = backoffDelay(failures, this.#opts.backoff);
    this.addAfter(key, delay);
    return delay;
  }

  /** Failures counted for `key` since the last forget(). */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Clears the failure count of `key` (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** The next key, held by the caller until done(key); null once the queue is shut down. */
  get(): Promise<string | null> {
    if (this.#shutdown) return Promise.resolve(null);
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#opts.onDepth?.(this.#queue.length);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Releases `key`; queues it again if it was added meanwhile. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  /** Stops handing out keys: pending get() calls resolve null, delayed adds are dropped. */
  shutdown(): void {
    this.#shutdown = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(null);
  }
}

/** What a handler asks for after a success: run again after this long (e.g. a poll). */
export interface HandlerResult {
  readonly requeueAfterMs?: number;
}

export type Handler = (key: string) => Promise<HandlerResult | undefined>;

/**
 * Runs `workers` loops taking keys from `queue`. A handler that throws is retried with backoff;
 * `onError` sees the error. Resolves when the queue is shut down and every loop has finished
 * the key it held.
 */
export async function runWorkers(
  queue: WorkQueue,
  workers: number,
  handler: Handler,
  onError: (key: string, err: unknown, retryMs: number) => void,
): Promise<void> {
  const loop = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === null) return;
      try {
        const result = await handler(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        onError(key, err, queue.addRateLimited(key));
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
