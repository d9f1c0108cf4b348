// The expiry sweeper: turns records whose expiry passed into tombstones, a bounded batch a tick.

import { Counter, Gauge, type Registry } from 'prom-client';
import { FailureLog, type Logger } from '../observability/index.ts';
import type { Storage } from './store.ts';

export interface SweeperOptions {
  readonly storage: Storage;
  /** Time between sweeps while nothing is due beyond the last batch. */
  readonly intervalMs: number;
  /** Most index entries one sweep handles (bounded work per tick). */
  readonly batch: number;
  readonly registry: Registry;
  readonly logger: Logger;
}

/**
 * Every `intervalMs`, turns up to `batch` expired records into tombstones (Storage.expireDue):
 * each replica does this to its own copy and makes the same tombstone, so nothing is sent. A
 * sweep that stopped at its batch limit runs again on the next turn of the event loop, so a
 * backlog drains without one tick holding the loop. The tombstones are then collected like any
 * other (rebalance/gc.ts), which gives the space back. Reads never wait for the sweeper: an
 * expired record already reads as absent.
 *
 * Metrics: kvstore_expired_keys_total, kvstore_expiry_sweeps_total, kvstore_expiring_keys (live
 * keys with an expiry), kvstore_expiry_due_keys (expired, not swept yet: the backlog).
 */
export class ExpirySweeper {
  readonly #o: SweeperOptions;
  readonly #expired: Counter;
  readonly #sweeps: Counter;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;
  /** Sweeps that fail tick after tick (a full disk): said once, and once when one works. */
  readonly #failures: FailureLog;

  constructor(opts: SweeperOptions) {
    this.#o = opts;
    this.#failures = new FailureLog({
      logger: opts.logger,
      failed: 'expiry sweep failed',
      worked: 'expiry sweeps work again',
      level: 'warn',
    });
    const registers = [opts.registry];
    this.#expired = new Counter({
      name: 'kvstore_expired_keys_total',
      help: 'Records whose expiry passed, turned into tombstones by this node.',
      registers,
    });
    this.#sweeps = new Counter({
      name: 'kvstore_expiry_sweeps_total',
      help: 'Expiry sweeps run (each handles at most --expiry-sweep-batch keys).',
      registers,
    });
    const storage = opts.storage;
    new Gauge({
      name: 'kvstore_expiring_keys',
      help: 'Live keys on this node that have an expiry (expired ones not swept yet included).',
      registers,
      collect() {
        this.set(storage.stats().expiring);
      },
    });
    new Gauge({
      name: 'kvstore_expiry_due_keys',
      help: 'Keys on this node whose expiry passed and that the sweeper has not turned into tombstones yet.',
      registers,
      collect() {
        this.set(storage.dueCount(storage.clock.wallNow()));
      },
    });
  }

  start(): void {
    this.#schedule(this.#o.intervalMs);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#tick();
    }, ms);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    let more = false;
    try {
      more = (await this.sweepNow()).more;
      this.#failures.worked();
    } catch (err) {
      // Refused writes (a full disk) or a closing store: the next tick tries again. Said once,
      // then again only when the failure changes or every minute (FailureLog).
      this.#failures.failed(err);
    }
    this.#schedule(more ? 0 : this.#o.intervalMs);
  }

  /** One sweep: how many records expired, and whether due ones remain beyond the batch. */
  async sweepNow(): Promise<{ expired: number; more: boolean }> {
    const result = await this.#o.storage.expireDue(this.#o.batch);
    this.#sweeps.inc();
    this.#expired.inc(result.expired);
    return result;
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
