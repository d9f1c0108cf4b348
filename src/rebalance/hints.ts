// Hinted handoff: keep writes for unreachable replicas, deliver them when the replica is back.

import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import type { Replicas, WireEntry } from '../replica/index.ts';
import type { HintStore } from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';

export interface HintsOptions {
  readonly store: HintStore;
  readonly replicas: Replicas;
  /** True when `name` is a member that answers probes. */
  readonly isUp: (name: string) => boolean;
  /** True when `name` is still a member (hints for members that left are dropped). */
  readonly isMember: (name: string) => boolean;
  readonly intervalMs: number;
  /** The peer request timeout: a delivery request may take this plus its bytes at FLOOR_RATE. */
  readonly timeoutMs: number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
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
 * Bytes per second a delivery request is given time for, on top of the peer timeout (4 Mbit/s:
 * 10 s for a batch of 4 MiB). With the peer timeout alone, a batch the link carried in more than
 * 2 s timed out, arrived past its deadline and was refused, and went again at the next interval:
 * behind a link of 8 Mbit/s, 57 hints of 4 MiB stayed undelivered for good, and the link carried
 * nothing but their refused copies.
 */
const FLOOR_RATE = 512 * 1024;

/** Whether `err` says a delivery request took too long (for the link, or the member's disk). */
function tooSlow(err: unknown): boolean {
  return (
    err instanceof KvError && (err.code === 'KV_ERR_PEER_TIMEOUT' || err.code === 'KV_ERR_EXPIRED')
  );
}

/**
 * Collects hints written in one event-loop turn into one durable transaction, and every
 * `intervalMs` offers each up member its hints, oldest first, deleting them once applied. Each
 * member is delivered to on its own (one slow member holds back no other), one request at a
 * time (so at most one batch at a time queues ahead of its live traffic), each request given
 * time for its bytes (FLOOR_RATE). A member's batch halves after a request that took too long
 * (down to one hint) and doubles back after one that did not.
 */
export class Hints {
  readonly #o: HintsOptions;
  #queue: { target: string; key: Buffer; raw: Buffer }[] = [];
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #delivering = false;
  /** Bytes of the next batch per target, when smaller than DELIVERY_BATCH_BYTES. */
  readonly #batchBytes = new Map<string, number>();

  constructor(opts: HintsOptions) {
    this.#o = opts;
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
    this.#flushing = this.#o.store.add(batch).then(
      (kept) => {
        if (kept < batch.length)
          this.#o.metrics.hintsDropped.labels('full').inc(batch.length - kept);
      },
      (err: unknown) => this.#o.logger.error({ err }, 'hints not stored'),
    );
    await this.#flushing;
  }

  start(): void {
    this.#timer = setInterval(() => void this.deliverNow(), this.#o.intervalMs);
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
      for (const target of this.#batchBytes.keys()) {
        if (!targets.includes(target)) this.#batchBytes.delete(target);
      }
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
    for (;;) {
      const limit = this.#batchBytes.get(target) ?? DELIVERY_BATCH_BYTES;
      const hints = store.list(target, DELIVERY_BATCH, limit);
      if (hints.length === 0) return delivered;
      if (!this.#o.isMember(target)) {
        await store.remove(hints);
        metrics.hintsDropped.labels('left').inc(hints.length);
        continue;
      }
      if (!this.#o.isUp(target)) return delivered;
      // Every hint is delivered, however old: no tombstone is collected while any member holds
      // hints (Topology.atRest), so an old value cannot outlive a delete of its key here.
      const entries: WireEntry[] = hints.map((h) => [h.key, h.raw]);
      let bytes = 0;
      for (const [key, raw] of entries) bytes += key.length + raw.length;
      const timeoutMs = this.#o.timeoutMs + Math.ceil((bytes * 1000) / FLOOR_RATE);
      try {
        await this.#o.replicas.apply(target, entries, undefined, { timeoutMs, bulk: true });
      } catch (err) {
        if (tooSlow(err)) this.#batchBytes.set(target, Math.max(MIN_BATCH_BYTES, limit / 2));
        this.#o.logger.debug({ target, err, hints: hints.length, bytes }, 'hint delivery failed');
        return delivered;
      }
      if (limit < DELIVERY_BATCH_BYTES) {
        this.#batchBytes.set(target, Math.min(DELIVERY_BATCH_BYTES, limit * 2));
      }
      await store.remove(hints);
      metrics.hintsDelivered.inc(hints.length);
      delivered += hints.length;
    }
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#flush();
  }
}
