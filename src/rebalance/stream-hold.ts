// What holds a stream up on a disk that refuses writes: its own (the cursor, kept in memory) or a receiver's (the stream waits).

import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import { type Storage, type StreamCursor, writeStateDoc } from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';

/** Whether `err` is a store refusing writes (its disk full or stalled, LMDB or the log failed). */
export function storageRefused(err: unknown): err is KvError {
  return (
    err instanceof KvError &&
    (err.code === 'KV_ERR_STORAGE' || err.code === 'KV_ERR_STORAGE_STALLED')
  );
}

/** A refusal's reason without the module prefix and the advice (`not writable: disk full (...)`). */
function reasonOf(err: KvError): string {
  return err.message.replace(/^storage: /, '').replace(/; reads work, writes resume.*$/, '');
}

/**
 * One stream's dealings with refusing stores.
 * - Its own: the cursor is the only thing a sender writes. A store that refuses it (disk full)
 *   does not stop the stream: the cursor is kept in memory and the next batch saves it again, so
 *   it is saved as soon as there is room. A restart meanwhile starts again from the first key
 *   (runStream trusts no saved cursor while the store refuses writes: it may be an earlier
 *   stream's), or, once there is room, from the last cursor saved, and sends some records
 *   again, which the receivers take as they are (last write wins). Said
 *   once per stream, and once when a save works again.
 * - A receiver's: a member that cannot store a batch cannot take the data, so the stream waits
 *   for it (the ring does not settle, a hand-off does not finish: it must not own keys it lacks).
 *   Said once per member and wait, counted (kvstore_rebalance_waiting_members) and reported in
 *   the stream's progress (`waitingFor`, kvctl status), until the member takes a batch again.
 */
export class StreamHold {
  readonly #kind: string;
  readonly #storage: Storage;
  readonly #metrics: RebalanceMetrics;
  readonly #logger: Logger;
  readonly #changed: () => void;
  readonly #waits = new Map<string, string>();
  #unsaved: string | null = null;

  constructor(
    kind: string,
    ctx: { storage: Storage; metrics: RebalanceMetrics; logger: Logger },
    changed: () => void,
  ) {
    this.#kind = kind;
    this.#storage = ctx.storage;
    this.#metrics = ctx.metrics;
    this.#logger = ctx.logger;
    this.#changed = changed;
  }

  /**
   * Saves the cursor (null forgets it); resolves true once durable, false when this store refuses
   * writes (kept in memory: the next save writes the newer one). Other failures reject.
   */
  async save(cursor: StreamCursor | null): Promise<boolean> {
    const key = this.#kind === 'decommission' ? 'stream:decommission' : 'stream:rebalance';
    try {
      await writeStateDoc(this.#storage, key, cursor);
    } catch (err) {
      if (!storageRefused(err)) throw err;
      if (this.#unsaved === null) {
        this.#unsaved = reasonOf(err);
        this.#logger.warn(
          { kind: this.#kind, reason: this.#unsaved },
          'stream cursor not saved: this store refuses writes; the stream goes on, a restart before a save works sends again from the first key',
        );
      }
      return false;
    }
    if (this.#unsaved !== null) {
      this.#unsaved = null;
      this.#logger.info({ kind: this.#kind }, 'stream cursor saved again');
    }
    return true;
  }

  /** Members whose store refuses this stream's batches, with why; undefined when none. */
  get waitingFor(): Record<string, string> | undefined {
    return this.#waits.size === 0 ? undefined : Object.fromEntries(this.#waits);
  }

  /**
   * A batch to `target` failed with `err`: true when its store refused it (the stream waits for
   * it), false for any other failure (the caller logs it).
   */
  refused(target: string, err: unknown): boolean {
    this.#metrics.batchRetries.inc();
    if (!storageRefused(err)) return false;
    if (this.#waits.has(target)) return true;
    const reason = reasonOf(err);
    this.#waits.set(target, reason);
    this.#metrics.waitingMembers.set(this.#waits.size);
    this.#logger.warn(
      { kind: this.#kind, target, reason },
      'stream waits: the member refuses writes; it takes no data until it stores again',
    );
    this.#changed();
    return true;
  }

  /** A batch to `target` was taken: a wait for it ends. */
  taken(target: string): void {
    if (!this.#waits.delete(target)) return;
    this.#metrics.waitingMembers.set(this.#waits.size);
    this.#logger.info({ kind: this.#kind, target }, 'stream goes on: the member stores again');
    this.#changed();
  }

  /** The stream ended (done, cancelled or failed): it waits for nobody. */
  end(): void {
    if (this.#waits.size === 0) return;
    this.#waits.clear();
    this.#metrics.waitingMembers.set(0);
  }
}
