// Hinted handoff: keep writes for unreachable replicas, deliver them when the replica is back.

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
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
}

const DELIVERY_BATCH = 256;
/**
 * Bytes of hints (keys and records) per delivery request, past the first: 256 hints of 1 MiB
 * values would be a 256 MiB frame, over the 64 MiB peer frame limit, refused every time.
 */
const DELIVERY_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Collects hints written in one event-loop turn into one durable transaction, and every
 * `intervalMs` offers each up member its hints, oldest first, deleting them once applied.
 */
export class Hints {
  readonly #o: HintsOptions;
  #queue: { target: string; key: Buffer; raw: Buffer }[] = [];
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #delivering = false;

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
      for (const target of this.#o.store.targets()) {
        delivered += await this.#deliverTo(target);
      }
    } finally {
      this.#delivering = false;
    }
    return delivered;
  }

  async #deliverTo(target: string): Promise<number> {
    const { store, metrics } = this.#o;
    let delivered = 0;
    for (;;) {
      const hints = store.list(target, DELIVERY_BATCH, DELIVERY_BATCH_BYTES);
      if (hints.length === 0) return delivered;
      if (!this.#o.isMember(target)) {
        await store.remove(hints);
        metrics.hintsDropped.labels('left').inc(hints.length);
        continue;
      }
      if (!this.#o.isUp(target)) return delivered;
      // Every hint is delivered, however old: no tombstone is collected while any member holds
      // hints (Topology.atRest), so an old value cannot outlive a delete of its key here.
      try {
        const entries: WireEntry[] = hints.map((h) => [h.key, h.raw]);
        await this.#o.replicas.apply(target, entries);
      } catch (err) {
        this.#o.logger.debug({ target, err }, 'hint delivery failed');
        return delivered;
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
