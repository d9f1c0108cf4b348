// A batch of writes on its way to LMDB a slice at a time (Storage.#issue, #give): lmdb-js is
// given its puts across event-loop turns rather than in one synchronous run.

import type { Database } from 'lmdb';
import { type KindClass, LIVE_EXPIRING, NONE, type QueuedWrites, TOMB } from './queued-writes.ts';
import { QueuedDelete } from './scan.ts';

/** The key counters stored with each batch (Storage's META 'state'). */
export interface Counters {
  liveKeys: number;
  tombstones: number;
  /** Live records with an expiry (absent in stores from before expiry: 0). */
  expiring?: number;
}

/** Counts a record of class `k` into `c` (d = 1) or out of it (d = -1), as #applyOne does. */
function count(c: Counters, k: KindClass, d: 1 | -1): void {
  if (k === NONE) return;
  if (k === TOMB) {
    c.tombstones += d;
    return;
  }
  c.liveKeys += d;
  if (k === LIVE_EXPIRING) c.expiring = (c.expiring ?? 0) + d;
}

/**
 * One batch (and the counters as they stood when it was issued) being given to LMDB in slices.
 * lmdb-js makes the writes of one event-loop turn one transaction but may end a transaction
 * between turns (its writer thread reached the last write given), so a batch given over several
 * turns can commit in several transactions. The counters that go with each slice are those of
 * the writes given so far (the counters stored with the batch before, plus each given key's
 * change of kind: QueuedWrites.beforeAt and afterAt), so that whatever commit a crash leaves,
 * LMDB's counters match its records and the replay counts only the writes it finds missing.
 */
export class HandOver<S extends Counters, B extends { readonly writes: QueuedWrites }> {
  /** The batch (null: the counters alone, nothing to write). */
  readonly batch: B | null;
  readonly writes: QueuedWrites | null;
  /** The counters after the whole batch (null: the caller stores them itself: a repair). */
  readonly state: S | null;
  /** Entries given so far. */
  #given = 0;
  /** The counters of the writes given so far (made as the first slice is given). */
  #running: Counters | null = null;
  readonly #commits: Promise<unknown>[] = [];
  #last: Promise<unknown> | null = null;
  #done: PromiseWithResolvers<void> | null = null;
  /** Given no further (a repair queued its writes again, or LMDB closes or failed for good). */
  #dropped = false;

  constructor(batch: B | null, state: S | null) {
    this.batch = batch;
    this.writes = batch === null ? null : batch.writes;
    this.state = state;
  }

  /** Entries not given yet. */
  get left(): number {
    return this.writes === null ? 0 : this.writes.entries - this.#given;
  }

  /** The last write's promise (LMDB commits in order: it covers the batch); null: none given. */
  get last(): Promise<unknown> | null {
    return this.#last;
  }

  /** Resolves once every write of the batch was given to LMDB (or the hand-over was dropped). */
  given(): Promise<void> {
    if (this.left === 0 || this.#dropped) return Promise.resolve();
    this.#done ??= Promise.withResolvers<void>();
    return this.#done.promise;
  }

  /** Tells given()'s waiters, now and later: the batch is all given, or dropped. */
  settled(): void {
    this.#dropped = true;
    this.#done?.resolve();
  }

  /**
   * Gives LMDB (puts into and removes from `data`) up to `budget` more entries, in the order the
   * keys were first written; returns how many. `from`: the counters stored with the batch before.
   */
  give(data: Database<Buffer, Buffer>, budget: number, from: Counters): number {
    const writes = this.writes;
    if (writes === null) return 0;
    const start = this.#given;
    const end = Math.min(writes.entries, start + budget);
    this.#running ??= {
      liveKeys: from.liveKeys,
      tombstones: from.tombstones,
      expiring: from.expiring ?? 0,
    };
    const running = this.#running;
    // lmdb-js gives the writes of one transaction the same promise: one reaction per transaction
    // (normally one per batch), none per write. Compared within this batch only: batches given
    // to LMDB in one event-loop turn share a transaction, and a batch whose writes all had the
    // promise of the batch before it waited on nothing and was dropped before LMDB held it
    // (reads then answered the older value).
    let last = this.#last;
    for (let i = start; i < end; i++) {
      const v = writes.valueAt(i);
      if (v === undefined) continue; // deleted from a failed batch (never one being given)
      const key = writes.keyAt(i);
      const done = v instanceof QueuedDelete ? data.remove(key) : data.put(key, v);
      if (done !== last) this.#commits.push(done);
      last = done;
      count(running, writes.beforeAt(i), -1);
      count(running, writes.afterAt(i), 1);
    }
    this.#last = last;
    this.#given = end;
    return end - start;
  }

  /** The counters of the writes given so far, with `rest` (the clock) from the batch's state. */
  partialState(): S | null {
    if (this.state === null || this.#running === null) return null;
    return { ...this.state, ...this.#running };
  }

  /** The commits of every write given: resolves once LMDB committed them all. */
  committed(): Promise<unknown> {
    return this.#commits.length === 1 ? this.#commits[0]! : Promise.all(this.#commits);
  }
}
