// Hinted handoff: keep writes for unreachable replicas, deliver them when the replica is back.

import { FailureLog, type Logger, LogThrottle } from '../observability/index.ts';
import type { Replicas, WireEntry } from '../replica/index.ts';
import { decodeRecordHeader, type Hint, type HintStore, validWall } from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';
import { BatchSizes, transferTimeoutMs } from './transfer.ts';

export interface HintsOptions {
  readonly store: HintStore;
  readonly replicas: Replicas;
  /** True when `name` is a member that answers probes. */
  readonly isUp: (name: string) => boolean;
  /** True when `name` is still a member (hints for members that left are dropped). */
  readonly isMember: (name: string) => boolean;
  readonly intervalMs: number;
  /** The peer request timeout: a delivery request may take this plus its bytes (transfer.ts). */
  readonly timeoutMs: number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
  /**
   * Hints of records older than this (wall ms of their version) are dropped, not delivered
   * (`kvstore_hints_dropped_total{reason="taken_out"}`): this node dropped its records then,
   * taken out of the ring while away, and a hint made of one of them (a read repair it sent
   * before it heard) may hold a value deleted since. Absent, or 0: every hint is delivered.
   */
  readonly droppedBefore?: () => number;
  /**
   * Hints of records newer than this many ms before now are delivered all the same
   * (recentRecord; --tombstone-grace-ms less --max-clock-offset-ms): no tombstone over such a
   * record can have been collected, so it brings no deleted value back, and it may be the only
   * copy of a write this node acknowledged alone (--write-quorum 1) while cut off. Absent: none.
   */
  readonly freshWithinMs?: number;
}

/**
 * Whether `raw` (encodeRecord bytes) holds a version newer than `withinMs` before `now`: too
 * recent to be under a collected tombstone (see HintsOptions.freshWithinMs). False for
 * `withinMs` <= 0 and for a version out of range.
 */
export function recentRecord(raw: Buffer, withinMs: number, now = Date.now()): boolean {
  return withinMs > 0 && validWall(raw) && decodeRecordHeader(raw).version.wall >= now - withinMs;
}

const DELIVERY_BATCH = 256;
/**
 * Bytes of hints (keys and records) per delivery request, past the first: 256 hints of 1 MiB
 * values would be a 256 MiB frame, over the 64 MiB peer frame limit, refused every time.
 */
const DELIVERY_BATCH_BYTES = 4 * 1024 * 1024;
/** The smallest batch a target's batch shrinks to after timeouts (still at least one hint). */
const MIN_BATCH_BYTES = 16 * 1024;

/**
 * Collects hints written in one event-loop turn into one durable transaction, and every
 * `intervalMs` offers each up member its hints, oldest first, deleting them once applied. Each
 * member is delivered to on its own (one slow member holds back no other), one request at a
 * time (so at most one batch at a time queues ahead of its live traffic), each request given
 * time for its bytes (FLOOR_RATE). A member's batch halves after a request that took too long
 * (down to one hint) and doubles back after one that did not.
 *
 * A delivered hint whose removal this node's store refuses (its disk full) is not sent again:
 * the pass goes on with the hints after it, and later passes remove those delivered first (see
 * #deliveredUpTo).
 */
export class Hints {
  readonly #o: HintsOptions;
  #queue: { target: string; key: Buffer; raw: Buffer }[] = [];
  #flushing: Promise<void> | null = null;
  /** Hints of the batch the store is adding (neither queued nor counted by it, maybe). */
  #adding = 0;
  #timer: NodeJS.Timeout | null = null;
  #delivering = false;
  /** Bytes of the next batch per target. */
  readonly #batchBytes = new BatchSizes(DELIVERY_BATCH_BYTES, MIN_BATCH_BYTES);
  /**
   * Batches this node's store refused: said once per run of refusals (again when the cause
   * changes or after a minute), with the hints dropped since the last line; once when it stores
   * hints again (FailureLog).
   */
  readonly #refusals: FailureLog;
  #refusedSince = 0;
  /**
   * Per target, the id of the last hint delivered (or dropped, the target gone) whose removal the
   * store refused: every hint of that target up to it was delivered, and new ones come after it
   * (ids grow). Passes remove those first, with no request, and deliver only what follows. Before,
   * a pass stopped at the refused removal, and every pass sent the same first batch (256 hints,
   * up to 4 MiB) again for as long as the disk stayed full, and never the hints after it.
   */
  readonly #deliveredUpTo = new Map<string, Buffer>();
  /** Removals the store refused: logged at most once in 10 s, with the count since. */
  readonly #unremoved = new LogThrottle(10_000);

  constructor(opts: HintsOptions) {
    this.#o = opts;
    this.#refusals = new FailureLog({
      logger: opts.logger,
      failed: 'hints not stored',
      worked: 'hints stored again',
    });
  }

  /** Keeps a write for `target` (durable within a moment; dropped and counted when full). */
  add(target: string, key: Buffer, raw: Buffer): void {
    this.#queue.push({ target, key, raw });
    if (this.#queue.length === 1) setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    await this.#flushing;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    this.#adding = batch.length;
    this.#flushing = this.#o.store
      .add(batch)
      .then(
        (kept) => {
          if (this.#refusals.failing) this.#refusals.worked({ dropped: this.#refusedSince });
          this.#refusedSince = 0;
          if (kept < batch.length)
            this.#o.metrics.hintsDropped.labels('full').inc(batch.length - kept);
        },
        (err: unknown) => this.#refused(batch.length, err),
      )
      .finally(() => {
        this.#adding = 0;
      });
    await this.#flushing;
  }

  /**
   * Hints held now: stored, being stored and queued (a batch being stored may be counted twice
   * for a moment). What `synced` answers say, for tombstone collection (GcOptions.hintsHeld).
   */
  get held(): number {
    return this.#queue.length + this.#adding + this.#o.store.count;
  }

  /**
   * The store refused a batch (its disk full or failing): the hints are lost, as those over the
   * bounds are, and counted (`unwritable`). Before, every refused batch logged an error: 1,272
   * lines in 9 s of a full disk under chaos load (one a write that missed a replica); then one
   * every 10 s for as long as the disk stayed full.
   */
  #refused(hints: number, err: unknown): void {
    this.#o.metrics.hintsDropped.labels('unwritable').inc(hints);
    this.#refusedSince += hints;
    if (this.#refusals.failed(err, { dropped: this.#refusedSince })) this.#refusedSince = 0;
  }

  start(): void {
    // A pass that fails (its store not writable) is logged: rejected, it ended the process.
    this.#timer = setInterval(() => {
      this.deliverNow().catch((err: unknown) => {
        this.#o.logger.error({ err }, 'hint delivery pass failed');
      });
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  /** One delivery pass over every target; returns how many hints were delivered. */
  async deliverNow(): Promise<number> {
    if (this.#delivering) return 0;
    this.#delivering = true;
    let delivered = 0;
    try {
      await this.#flushing;
      const targets = this.#o.store.targets();
      this.#batchBytes.retain(targets);
      for (const t of this.#deliveredUpTo.keys())
        if (!targets.includes(t)) this.#deliveredUpTo.delete(t);
      const counts = await Promise.all(targets.map((t) => this.#deliverTo(t)));
      for (const n of counts) delivered += n;
    } finally {
      this.#delivering = false;
    }
    return delivered;
  }

  async #deliverTo(target: string): Promise<number> {
    const { store, metrics } = this.#o;
    let delivered = 0;
    let after = await this.#removeDelivered(target);
    for (;;) {
      const limit = this.#batchBytes.limit(target);
      const hints = store.list(target, DELIVERY_BATCH, limit, after);
      if (hints.length === 0) return delivered;
      if (!this.#o.isMember(target)) {
        metrics.hintsDropped.labels('left').inc(hints.length);
        after = await this.#done(target, hints);
        continue;
      }
      const old = this.#older(hints);
      if (old.length > 0) {
        // Listed again from the same place: the rest go in the next batch.
        metrics.hintsDropped.labels('taken_out').inc(old.length);
        if (!(await this.#removed(target, old))) return delivered;
        continue;
      }
      if (!this.#o.isUp(target)) return delivered;
      // Every other hint is delivered, however old: no tombstone is collected while any member
      // holds hints (Topology.atRest, and each member's `synced` answer after collection's
      // questions: gc.ts), so an old value cannot outlive a delete of its key here.
      const entries: WireEntry[] = hints.map((h) => [h.key, h.raw]);
      let bytes = 0;
      for (const [key, raw] of entries) bytes += key.length + raw.length;
      const timeoutMs = transferTimeoutMs(this.#o.timeoutMs, bytes);
      try {
        await this.#o.replicas.apply(target, entries, undefined, { timeoutMs, bulk: true });
      } catch (err) {
        this.#batchBytes.failed(target, limit, err);
        this.#o.logger.debug({ target, err, hints: hints.length, bytes }, 'hint delivery failed');
        return delivered;
      }
      this.#batchBytes.succeeded(target, limit);
      after = await this.#done(target, hints);
      // Counted once they are removed (or kept as delivered: #deliveredUpTo), so that a scrape
      // never shows them both delivered and still stored (kvstore_hints_stored).
      metrics.hintsDelivered.inc(hints.length);
      delivered += hints.length;
    }
  }

  /** The hints of `hints` whose record is older than droppedBefore(), and not recent (freshWithinMs). */
  #older(hints: readonly Hint[]): Hint[] {
    const floor = this.#o.droppedBefore?.() ?? 0;
    if (floor <= 0) return [];
    const within = this.#o.freshWithinMs ?? 0;
    const now = Date.now();
    return hints.filter(
      (h) =>
        !validWall(h.raw) ||
        (decodeRecordHeader(h.raw).version.wall < floor && !recentRecord(h.raw, within, now)),
    );
  }

  /**
   * Removes hints delivered (or dropped); when the store refuses (a full disk), they stay, and
   * #deliveredUpTo says they were: returns the id to go on after (null when they were removed).
   */
  async #done(target: string, hints: readonly Hint[]): Promise<Buffer | null> {
    if (await this.#removed(target, hints)) return this.#deliveredUpTo.get(target) ?? null;
    const last = hints[hints.length - 1]!.id;
    this.#deliveredUpTo.set(target, last);
    return last;
  }

  /**
   * Removes the hints of `target` delivered before whose removal the store refused; returns the
   * id to list after: null once they are gone, the last of them while the store still refuses.
   */
  async #removeDelivered(target: string): Promise<Buffer | null> {
    const upTo = this.#deliveredUpTo.get(target);
    if (upTo === undefined) return null;
    for (;;) {
      const hints = this.#o.store
        .list(target, DELIVERY_BATCH, DELIVERY_BATCH_BYTES)
        .filter((h) => Buffer.compare(h.id, upTo) <= 0);
      if (hints.length === 0) break;
      if (!(await this.#removed(target, hints))) return upTo;
    }
    this.#deliveredUpTo.delete(target);
    return null;
  }

  /** Removes hints; false when the store refused (logged at most once in 10 s). */
  async #removed(target: string, hints: readonly Hint[]): Promise<boolean> {
    try {
      await this.#o.store.remove(hints);
      return true;
    } catch (err) {
      const skipped = this.#unremoved.take();
      if (skipped >= 0) {
        this.#o.logger.warn(
          { target, err, hints: hints.length, refusedBefore: skipped },
          'delivered hints not removed',
        );
      }
      return false;
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#flush();
  }
}
