// What holds a stream up on a disk that refuses writes: its own (the cursor, kept in memory) or a receiver's (the stream waits).

import type { Logger } from '../observability/index.ts';
import type { Storage, StreamCursor } from '../storage/index.ts';
import { KeptSave, reasonOf, storageRefused } from './kept-save.ts';
import type { RebalanceMetrics } from './metrics.ts';

/** A stream kind's saved cursor key. */
type CursorKey = 'stream:rebalance' | 'stream:decommission';

/**
 * The stream cursors of one node, one per kind, each saved as soon as the store takes it
 * (KeptSave): a cursor the store refuses (its disk full) is tried again every second, and a
 * newer one replaces it, so a stale cursor is never what a restart after the disk freed finds
 * for longer than that second (before, it stayed until the stream's next batch, if any).
 */
export class CursorSaves {
  readonly #saves: Record<StreamKind, KeptSave<CursorKey>>;

  constructor(storage: Storage, logger: Logger) {
    const kept = (kind: StreamKind) =>
      new KeptSave<CursorKey>(`stream:${kind}`, {
        storage,
        onRefused: (reason) =>
          logger.warn(
            { kind, reason },
            'stream cursor not saved: this store refuses writes; the stream goes on, the cursor is saved as soon as there is room (a restart before then sends again from the first key)',
          ),
        onSavedAgain: () => logger.info({ kind }, 'stream cursor saved again'),
      });
    this.#saves = { rebalance: kept('rebalance'), decommission: kept('decommission') };
  }

  /** Saves `kind`'s cursor (null forgets it): true once durable, false when refused (kept). */
  save(kind: StreamKind, cursor: StreamCursor | null): Promise<boolean> {
    return this.#saves[kind].save(cursor);
  }

  /** save() that rejects with the store's refusal (the reset is kept and retried all the same). */
  reset(kind: StreamKind): Promise<void> {
    return this.#saves[kind].saveOrThrow(null);
  }

  stop(): void {
    this.#saves.rebalance.stop();
    this.#saves.decommission.stop();
  }
}

export type StreamKind = 'rebalance' | 'decommission';

/**
 * One stream's dealings with refusing stores.
 * - Its own: the cursor is the only thing a sender writes. A store that refuses it (disk full)
 *   does not stop the stream: the cursor is kept in memory and saved as soon as there is room
 *   (CursorSaves: tried every second, and by the next batch). A restart meanwhile starts again
 *   from the first key (runStream trusts no saved cursor while the store refuses writes: it may
 *   be an earlier stream's), and sends some records again, which the receivers take as they are
 *   (last write wins). Said once until a save works, and once when one does.
 * - A receiver's: a member that cannot store a batch cannot take the data, so the stream waits
 *   for it (the ring does not settle, a hand-off does not finish: it must not own keys it lacks).
 *   Said once per member and wait, counted (kvstore_rebalance_waiting_members) and reported in
 *   the stream's progress (`waitingFor`, kvctl status), until the member takes a batch again.
 */
export class StreamHold {
  readonly #kind: StreamKind;
  readonly #cursors: CursorSaves;
  readonly #metrics: RebalanceMetrics;
  readonly #logger: Logger;
  readonly #changed: () => void;
  readonly #signal: AbortSignal;
  readonly #waits = new Map<string, string>();

  constructor(
    kind: StreamKind,
    ctx: { cursors: CursorSaves; metrics: RebalanceMetrics; logger: Logger },
    changed: () => void,
    signal: AbortSignal,
  ) {
    this.#signal = signal;
    this.#kind = kind;
    this.#cursors = ctx.cursors;
    this.#metrics = ctx.metrics;
    this.#logger = ctx.logger;
    this.#changed = changed;
  }

  /**
   * Saves the cursor (null forgets it); resolves true once durable, false when this store refuses
   * writes (kept in memory and saved as soon as there is room). Other failures reject. A stream
   * stopped (its signal aborted) saves nothing more: a batch of it taken after the stop would
   * otherwise save its cursor over the reset of the next stream of its kind, which a restart then
   * resumed (rings A -> B -> A: a stream of A resumed past every key it had not sent).
   */
  save(cursor: StreamCursor | null): Promise<boolean> {
    if (this.#signal.aborted) return Promise.resolve(false);
    return this.#cursors.save(this.#kind, cursor);
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
