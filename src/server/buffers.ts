// A node-wide bound on the bytes the client port holds of requests not yet started.

import { type Logger, LogThrottle } from '../observability/index.ts';
import type { ServerMetrics } from './metrics.ts';

/**
 * The bytes of requests not yet started, summed over every client connection, against
 * --max-client-buffer-bytes: unfinished ones (a text line without its newline yet, a RESP request
 * missing arguments) and complete ones parked in a connection's backlog while it must wait (the
 * write budget used up, its pipeline full, its output piling up). A connection reports its
 * framing's count after each read it decoded, and a request's count, unchanged, when it
 * completes into the backlog (`move`, refused when a growth would take the sum over the limit:
 * the connection then drops that request, answers those before it, parked ones included, and
 * closes, `refused`). A request leaves the count when it runs (a request run at once, as soon
 * as it completes); everything a connection holds leaves it when it drops its unfinished request
 * or closes. An open MULTI's queued commands count too, from when each is queued until EXEC
 * takes them, DISCARD or the close drops them, or the transaction fails (transaction.ts); a
 * command whose queueing the count refuses is answered LIMIT_EXCEEDED and fails the
 * transaction, the connection goes on. So the sum is exact, never
 * above the limit, and 0 once they leave. Exported as `kvstore_client_buffered_bytes` and its
 * high-water mark `kvstore_client_buffered_bytes_peak`.
 */
export class ClientBuffers {
  readonly limit: number;
  readonly #metrics: ServerMetrics;
  readonly #logger: Logger;
  #bytes = 0;
  #peak = 0;
  readonly #warnings = new LogThrottle();

  constructor(limit: number, metrics: ServerMetrics, logger: Logger) {
    this.limit = limit;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Records that a connection's count went from `before` to `after`; false, changing nothing,
   * when it grew and the sum would pass the limit.
   */
  move(before: number, after: number): boolean {
    if (before === after) return true;
    const bytes = this.#bytes + after - before;
    if (after > before && bytes > this.limit) return false;
    this.#bytes = bytes;
    this.#metrics.bufferedBytes.set(bytes);
    if (bytes > this.#peak) {
      this.#peak = bytes;
      this.#metrics.bufferedBytesPeak.set(bytes);
    }
    return true;
  }

  /** Counts a connection closed because `move` refused it; warns at most once a second. */
  refused(remote: string | undefined): void {
    this.#metrics.rejectedConnections.labels('buffer_full').inc();
    const since = this.#warnings.take();
    if (since < 0) return;
    this.#logger.warn(
      { limit: this.limit, held: this.#bytes, remote, since },
      'client buffer limit reached: connection closed',
    );
  }
}
