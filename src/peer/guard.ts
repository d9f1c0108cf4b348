// What the peer port holds for its connections: buffered bytes, bounded node-wide and measured.

import type { PeerMetrics } from './metrics.ts';

/**
 * Bytes received on inbound peer connections and not yet taken as whole frames, summed over every
 * connection of one server, against a node-wide limit: a connection checks that a read `fits`
 * before keeping it (else it is closed), and reports its own count after every read and on
 * close (`update`), so the sum is exact, never above the limit, and 0 once they leave.
 * Exported as `kvstore_peer_buffered_bytes` and its high-water mark
 * `kvstore_peer_buffered_bytes_peak`.
 */
export class PeerBuffers {
  readonly limit: number;
  readonly #metrics: PeerMetrics;
  #bytes = 0;
  #peak = 0;

  constructor(limit: number, metrics: PeerMetrics) {
    this.limit = limit;
    this.#metrics = metrics;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `n` more bytes stay within the limit. */
  fits(n: number): boolean {
    return this.#bytes + n <= this.limit;
  }

  /** Records that a connection's count went from `before` to `after`. */
  update(before: number, after: number): void {
    if (before === after) return;
    this.#bytes += after - before;
    this.#metrics.bufferedBytes.set(this.#bytes);
    if (this.#bytes > this.#peak) {
      this.#peak = this.#bytes;
      this.#metrics.bufferedBytesPeak.set(this.#peak);
    }
  }
}
