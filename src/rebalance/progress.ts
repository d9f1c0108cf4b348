// Progress of a stream: records examined against records to examine, rates and time left.

import type { Storage, StreamCursor } from '../storage/index.ts';

/**
 * Progress of one stream, as CLUSTER, the admin endpoints, the console and kvctl show it (peers
 * see the TransferView part in hello). A stream examines every local record once: `scanned` of
 * `total` is its progress.
 */
export interface StreamProgress {
  readonly kind: 'rebalance' | 'decommission';
  /** What the stream moves data toward (a transfer id, or the remaining ring's id). */
  readonly ringId: string;
  /** Local records examined so far (kept across a restart that resumes the stream). */
  readonly scanned: number;
  /**
   * Local records the stream examines in all: the records stored when it started plus those
   * written since (an estimate while writes arrive; equal to `scanned` once done).
   */
  readonly total: number;
  /** scanned / total, 0-100 with one decimal; 100 only once done. */
  readonly percent: number;
  /** Records sent (one per receiving replica). */
  readonly sent: number;
  readonly bytes: number;
  /** Records examined per second since this process (re)started the stream. */
  readonly rate: number;
  /** Bytes sent per second since this process (re)started the stream. */
  readonly bytesRate: number;
  /** Seconds left at the current rate; null until a rate is known, 0 once done. */
  readonly etaSeconds: number | null;
  readonly done: boolean;
  /** ISO 8601 time this process (re)started the stream. */
  readonly startedAt: string;
  /**
   * Members whose storage refuses the stream's batches (a full disk), with why: the stream waits
   * for them. Absent when none.
   */
  readonly waitingFor?: Readonly<Record<string, string>>;
}

/** A stream's saved resume cursor (storage's `stream:*` documents). */
export type Cursor = StreamCursor;

const count = (v: unknown): number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;

/** Local records (live and tombstones): what a stream examines. */
const records = (storage: Storage): number => {
  const s = storage.stats();
  return s.liveKeys + s.tombstones;
};

/**
 * Counts one stream's progress. The total is the records stored when the stream started (or the
 * total a resumed stream saved) plus the records written since, never less than what was
 * examined: the node knows it before the first batch, without a counting pass.
 */
export class ProgressCounter {
  readonly #kind: StreamProgress['kind'];
  readonly #ringId: string;
  readonly #storage: Storage;
  readonly #startedAt = new Date().toISOString();
  readonly #t0 = Date.now();
  readonly #recordsAtStart: number;
  readonly #total0: number;
  readonly #scanned0: number;
  readonly #bytes0: number;
  #scanned: number;
  #sent: number;
  #bytes: number;
  #total: number;

  constructor(
    job: { readonly kind: StreamProgress['kind']; readonly ringId: string },
    storage: Storage,
    resumed: Cursor | null,
  ) {
    this.#kind = job.kind;
    this.#ringId = job.ringId;
    this.#storage = storage;
    this.#scanned = this.#scanned0 = count(resumed?.scanned);
    this.#sent = count(resumed?.sent);
    this.#bytes = this.#bytes0 = count(resumed?.bytes);
    this.#recordsAtStart = records(storage);
    const saved = count(resumed?.total);
    this.#total0 = saved > 0 ? saved : this.#recordsAtStart;
    this.#total = Math.max(this.#total0, this.#scanned);
  }

  /** Adds one acknowledged chunk and returns the progress after it. */
  add(scanned: number, sent: number, bytes: number): StreamProgress {
    this.#scanned += scanned;
    this.#sent += sent;
    this.#bytes += bytes;
    const grown = Math.max(0, records(this.#storage) - this.#recordsAtStart);
    this.#total = Math.max(this.#scanned, this.#total0 + grown);
    return this.now();
  }

  /** What a cursor saves so a resumed stream goes on counting. */
  counts(): { scanned: number; sent: number; bytes: number; total: number } {
    return { scanned: this.#scanned, sent: this.#sent, bytes: this.#bytes, total: this.#total };
  }

  /** The progress of a running stream. */
  now(): StreamProgress {
    const seconds = (Date.now() - this.#t0) / 1000;
    const rate = seconds > 0 ? (this.#scanned - this.#scanned0) / seconds : 0;
    const bytesRate = seconds > 0 ? (this.#bytes - this.#bytes0) / seconds : 0;
    const left = this.#total - this.#scanned;
    const percent =
      this.#total === 0 ? 0 : Math.min(99.9, Math.floor((this.#scanned / this.#total) * 1000) / 10);
    return {
      kind: this.#kind,
      ringId: this.#ringId,
      scanned: this.#scanned,
      total: this.#total,
      percent,
      sent: this.#sent,
      bytes: this.#bytes,
      rate: Math.round(rate),
      bytesRate: Math.round(bytesRate),
      etaSeconds: rate > 0 ? Math.ceil(left / rate) : null,
      done: false,
      startedAt: this.#startedAt,
    };
  }

  /** The progress of a finished stream: everything examined. */
  finish(): StreamProgress {
    this.#total = this.#scanned;
    return { ...this.now(), total: this.#scanned, percent: 100, etaSeconds: 0, done: true };
  }
}
