// What the peer port holds for its connections: bytes received and replies unsent, bounded node-wide.

import type { Gauge } from 'prom-client';

/** A connection whose bytes PeerBuffers counts, and that it can close to make room. */
export interface BufferHolder {
  /** Closes the connection; its bytes leave the count before this returns. */
  evict(): void;
}

/** The gauges a PeerBuffers keeps: what is held now, and its high-water mark. */
export interface HeldGauges {
  readonly bytes: Gauge;
  readonly peak: Gauge;
}

/**
 * Bytes held for the inbound peer connections of one server, summed over them, against a
 * node-wide limit: one instance counts bytes received and not yet taken as whole frames
 * (`kvstore_peer_buffered_bytes`), another replies made and not yet taken by the kernel
 * (`kvstore_peer_reply_bytes`). Before keeping a read, a connection asks
 * `admit`: when the read does not fit, the connection holding the most bytes (the reader with its
 * read counted, or another) is closed, again until it fits; the reader is told to close itself
 * when it is that one. So what one connection fills (a large frame arriving on a member's large
 * lane, or a stranger's garbage) closes that connection, never one with a few small frames
 * behind it (a probe, a quorum read). Each connection reports its own count after every read and
 * on close (`set`), so the sum is exact, never above the limit, and 0 once they leave.
 */
export class PeerBuffers {
  readonly limit: number;
  /** Set on every change; null: read at scrape time instead (bytes, peak). */
  readonly #gauges: HeldGauges | null;
  /** Bytes held, by connection (only those holding some). */
  readonly #held = new Map<BufferHolder, number>();
  #bytes = 0;
  #peak = 0;

  constructor(limit: number, gauges: HeldGauges | null) {
    this.limit = limit;
    this.#gauges = gauges;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The highest `bytes` since the start. */
  get peak(): number {
    return this.#peak;
  }

  /**
   * Makes room for `n` more bytes of `reader`'s: while they do not fit, evicts the connection
   * that holds the most, counting the reader's with `n` (the reader on a tie). True when the
   * read fits now; false when the reader is the one to close (nothing was evicted for it then).
   */
  admit(reader: BufferHolder, n: number): boolean {
    while (this.#bytes + n > this.limit) {
      let victim = reader;
      let most = (this.#held.get(reader) ?? 0) + n;
      for (const [holder, bytes] of this.#held) {
        if (bytes > most) {
          victim = holder;
          most = bytes;
        }
      }
      if (victim === reader) return false;
      victim.evict();
      // A holder that failed to report its bytes gone must not make this loop forever.
      if (this.#held.has(victim)) this.set(victim, 0);
    }
    return true;
  }

  /** Records that `holder` now holds `bytes`. */
  set(holder: BufferHolder, bytes: number): void {
    const before = this.#held.get(holder) ?? 0;
    if (before === bytes) return;
    if (bytes === 0) this.#held.delete(holder);
    else this.#held.set(holder, bytes);
    this.#bytes += bytes - before;
    this.#gauges?.bytes.set(this.#bytes);
    if (this.#bytes > this.#peak) {
      this.#peak = this.#bytes;
      this.#gauges?.peak.set(this.#peak);
    }
  }
}
