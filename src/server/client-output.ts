// A node-wide bound on the bytes of replies the client connections hold: made and not written.

import { atTurnEnd } from '../net/index.ts';
import { type Logger, LogThrottle } from '../observability/index.ts';
import type { ServerMetrics } from './metrics.ts';

/** A collection after closes waits at least this many times as long as the last one took. */
const COLLECT_SHARE = 20;

/** A client connection as the bound sees it. */
export interface OutputHolder {
  /**
   * Bytes of replies it holds now: made and not yet handed to its socket, and waiting in the
   * socket's write buffer (what the kernel has not taken).
   */
  outputBytes(): number;
  /** Where it comes from, for the log. */
  readonly remote: string | undefined;
  /** Closes it at once, dropping its unwritten replies. */
  evict(): void;
}

/**
 * The replies held over every client connection against --max-client-output-bytes, as Redis's
 * maxmemory-clients bounds its clients' memory: the per-connection bounds (16 MiB of replies
 * in the making, 1 MiB of unsent output: reply-bytes.ts, connection.ts) let each client that
 * stops reading cost about 17 MiB, so enough of them (40 grew a node by 732 MiB) take the node
 * past its memory limit. A connection reports what it holds after each flush and drain
 * (`report`, cheap: one subtraction); the sum of those reports only overstates (a socket's
 * buffer also shrinks without a report, as the kernel takes bytes). Once it passes the limit,
 * at the end of the turn (after the turn's writes) every connection is measured, and while the
 * sum is over the limit the connections holding the most are closed, largest first. A
 * connection holding at most `floor` (what a client that reads its replies holds: a full write
 * buffer and one more reply) is never closed: a client that reads is not evicted because of
 * ones that do not. Evictions count in `kvstore_connections_rejected_total{reason="output_full"}`
 * and are logged at most once a second, with how many were not. Once the closed connections'
 * sockets are gone, `collect` runs (at most once a second, and at most a twentieth of the time:
 * #afterEvictions; the node passes a full garbage collection): their replies are garbage V8
 * frees only when it collects, and with nothing else to prompt it a node kept them (40 clients
 * that stopped reading: +268 MiB of anonymous memory with 117 MiB of replies held).
 */
export class ClientOutput {
  readonly limit: number;
  readonly floor: number;
  readonly #holders = new Map<OutputHolder, number>();
  readonly #metrics: ServerMetrics;
  readonly #logger: Logger;
  readonly #warnings = new LogThrottle();
  /** The sum of the holders' last reports (at least what they hold). */
  #bytes = 0;
  /** Sum at which the next check runs: the limit, or above a sum that had nothing to evict. */
  #checkAt: number;
  #checkScheduled = false;
  /** Evicted holders whose close has not been seen yet (remove). */
  readonly #closing = new Set<OutputHolder>();
  readonly #collect: () => void;
  /** When the next collection may run (performance.now()). */
  #nextCollect = Number.NEGATIVE_INFINITY;

  constructor(
    limit: number,
    floor: number,
    metrics: ServerMetrics,
    logger: Logger,
    collect: () => void = () => {},
  ) {
    this.limit = limit;
    this.floor = floor;
    this.#collect = collect;
    this.#checkAt = limit;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** What every holder holds now, measured (kvstore_client_output_bytes). */
  measure(): number {
    let sum = 0;
    for (const holder of this.#holders.keys()) sum += holder.outputBytes();
    return sum;
  }

  /** Starts counting `holder` (a new connection, holding nothing yet). */
  add(holder: OutputHolder): void {
    this.#holders.set(holder, 0);
  }

  /** Records what `holder` holds now; a sum past the limit schedules a check. */
  report(holder: OutputHolder, bytes: number): void {
    const before = this.#holders.get(holder);
    if (before === undefined || bytes === before) return; // not counted (closed), or the same
    this.#holders.set(holder, bytes);
    this.#bytes += bytes - before;
    if (this.#bytes <= this.limit) {
      this.#checkAt = this.limit; // back under: the next pass of the limit is checked at once
      return;
    }
    if (this.#bytes <= this.#checkAt || this.#checkScheduled) return;
    this.#checkScheduled = true;
    atTurnEnd(this.#check);
  }

  /** `holder` closed: it holds nothing now. */
  remove(holder: OutputHolder): void {
    if (this.#closing.delete(holder) && this.#closing.size === 0) this.#afterEvictions();
    const before = this.#holders.get(holder);
    if (before === undefined) return;
    this.#holders.delete(holder);
    this.#bytes -= before;
    if (this.#bytes < this.limit) this.#checkAt = this.limit;
  }

  /**
   * The evicted connections are closed: their replies are garbage; collect it, at most once a
   * second and at most a twentieth of the time: a full collection stops the node (330-590 ms for
   * a 90 MiB heap on the 2-core test machine), and clients that keep tripping the bound would
   * otherwise stop it once a second, however long each takes. A collection skipped here is left
   * to V8 and the idle heap trimmer (heap-trim.ts).
   */
  #afterEvictions(): void {
    const now = performance.now();
    if (now < this.#nextCollect) return;
    this.#collect();
    const took = performance.now() - now;
    this.#nextCollect = now + Math.max(1000, COLLECT_SHARE * took);
  }

  /** Measures every holder and closes the largest ones while the sum is over the limit. */
  readonly #check = () => {
    this.#checkScheduled = false;
    let sum = 0;
    const big: [OutputHolder, number][] = [];
    for (const holder of this.#holders.keys()) {
      const bytes = holder.outputBytes();
      this.#holders.set(holder, bytes);
      sum += bytes;
      if (bytes > this.floor) big.push([holder, bytes]);
    }
    const measured = sum;
    if (sum > this.limit) {
      big.sort((a, b) => b[1] - a[1]);
      for (const [holder, bytes] of big) {
        if (sum <= this.limit) break;
        this.#holders.delete(holder);
        this.#closing.add(holder);
        sum -= bytes;
        this.#metrics.rejectedConnections.labels('output_full').inc();
        const since = this.#warnings.take();
        if (since >= 0) {
          this.#logger.warn(
            { limit: this.limit, held: measured, bytes, remote: holder.remote, since },
            'client output limit reached: connection holding the most replies closed',
          );
        }
        holder.evict();
      }
    }
    this.#bytes = sum;
    // Still over (only small holders left): check again once the sum grew by a sixteenth.
    this.#checkAt = sum > this.limit ? sum + this.limit / 16 : this.limit;
  };
}
