// A node-wide bound on the bytes of replies the client connections hold: made and not written.

import type { Socket } from 'node:net';
import { atTurnEnd, directBytes } from '../net/index.ts';
import { type Logger, LogThrottle } from '../observability/index.ts';
import type { ServerMetrics } from './metrics.ts';

/** A collection after closes waits at least this many times as long as the last one took. */
const COLLECT_SHARE = 20;

/**
 * A holder whose socket handed no byte to the kernel for this long does not read (`stalled`).
 * The kernel takes a full socket's bytes in steps (on loopback about 1.4 MiB at a time, once that
 * much of its buffer is free), so a client reading 1 MiB/s moves it every 1.5 s or so; one
 * reading under about 0.5 MiB/s may be taken for one that does not read.
 */
export const STALL_MS = 3000;
/**
 * A holder reads (`reading`) once samples saw bytes leave its socket over this long, with no
 * STALL_MS between two of them.
 */
export const READING_MS = 1000;
/**
 * How often every holder is measured and sampled (a check) while they hold more than half the
 * limit: a client that drains a large reply is then seen reading before the sum passes the limit.
 */
export const SAMPLE_MS = 250;

/** A client connection as the bound sees it. */
export interface OutputHolder {
  /**
   * Bytes of replies it holds now: made and not yet handed to its socket, and waiting in the
   * socket's write buffer (what the kernel has not taken).
   */
  outputBytes(): number;
  /**
   * Bytes its socket handed to the kernel since it opened: grows while the client reads, stands
   * still once the client stopped and the kernel's buffers are full.
   */
  sentBytes(): number;
  /** Where it comes from, for the log. */
  readonly remote: string | undefined;
  /** Closes it at once, dropping its unwritten replies. */
  evict(): void;
}

/** A socket's fields Node keeps to itself, read by sentToKernel. */
interface SocketInternals {
  readonly _bytesDispatched?: unknown;
  readonly _handle?: { readonly writeQueueSize?: unknown } | null;
  /** A TLS socket's TCP socket (it carries the encrypted bytes). */
  readonly _parent?: SocketInternals | null;
}

/**
 * Bytes the kernel took from `socket` since it opened. Node counts a write as done only once the
 * kernel took all of it (a 64 MiB reply counts whole in writableLength until then), so this is
 * what Node handed to libuv less what libuv still queues: the figure Node's own socket timeout
 * watches for progress. A TLS socket's own queue stands still while its bytes leave (measured),
 * so its TCP socket's is read (encrypted bytes: a count that moves, not the replies' bytes).
 * Without those fields, the writes the kernel finished whole.
 */
export function sentToKernel(socket: Socket): number {
  const s = socket as Socket & SocketInternals;
  const raw = s._parent ?? s;
  const dispatched = raw._bytesDispatched;
  const queued = raw._handle?.writeQueueSize;
  // Plus what output.ts wrote on the descriptor itself (net/writes.ts: Node never saw it).
  const direct = directBytes(socket);
  if (typeof dispatched === 'number' && typeof queued === 'number') {
    return dispatched - queued + direct;
  }
  return s.bytesWritten - s.writableLength + direct;
}

/** What the bound knows of one holder. */
interface Watch {
  /** Its last report or measure (at least what it holds). */
  bytes: number;
  /** sentBytes() at the last sample; -1 before the first. */
  sent: number;
  /** When the last sample saw sentBytes() move, or the first sample (performance.now()). */
  movedAt: number;
  /** When the current run of moves began (each within STALL_MS of the last); -1: no run. */
  runSince: number;
}

/** How a holder is judged at a check. */
type Progress = 'stalled' | 'unjudged' | 'reading';

/** A holder over the floor at a check. */
interface Big {
  readonly holder: OutputHolder;
  readonly bytes: number;
  readonly progress: Progress;
}

/** Takes a sample of `holder` at `now` into `w` and judges it. */
function judge(holder: OutputHolder, w: Watch, now: number): Progress {
  const sent = holder.sentBytes();
  if (w.sent < 0) {
    [w.sent, w.movedAt, w.runSince] = [sent, now, -1]; // the first sample: where it starts
  } else if (sent !== w.sent) {
    if (w.runSince < 0 || now - w.movedAt >= STALL_MS) w.runSince = now;
    [w.sent, w.movedAt] = [sent, now];
  }
  if (now - w.movedAt >= STALL_MS) return 'stalled';
  return w.runSince >= 0 && w.movedAt - w.runSince >= READING_MS ? 'reading' : 'unjudged';
}

/**
 * The replies held over every client connection against --max-client-output-bytes, as Redis's
 * maxmemory-clients bounds its clients' memory: the per-connection bounds (16 MiB of replies
 * in the making, 1 MiB of unsent output: reply-bytes.ts, connection.ts) let each client that
 * stops reading cost about 17 MiB, so enough of them (40 grew a node by 732 MiB) take the node
 * past its memory limit. A connection reports what it holds after each flush and drain
 * (`report`, cheap: one subtraction); the sum of those reports only overstates (a socket's
 * buffer also shrinks without a report, as the kernel takes bytes). Once it passes the limit,
 * at the end of the turn (after the turn's writes) every connection is measured and sampled
 * (judge: did its socket hand bytes to the kernel since the last sample?), and while the sum is
 * over the limit connections are closed, largest first: first those not seen reading
 * (`stalled`: no byte left the socket for STALL_MS; `unjudged`: not watched long enough to
 * tell), then those `reading` (bytes kept leaving for READING_MS). A client draining a large
 * reply is so closed only when no one closable is left that was not seen reading: Redis's
 * maxmemory-clients closes the largest whatever it does, and its client-output-buffer-limit's
 * soft limit closes a client over it for so many seconds, reading or not. To tell them apart,
 * checks also run every SAMPLE_MS while the sum is over half the limit; while some holders are
 * unjudged and the sum is under the `ceiling` (the limit and a quarter), a check closes nothing
 * for up to STALL_MS (by then the holders sampled when it began are judged), so a reader is not
 * closed for clients that stopped reading and only began to hold. The sum is thus over the limit
 * for about STALL_MS at most, and over the ceiling only within a turn. A connection holding at
 * most `floor` (what a client that reads its replies holds: a full write buffer and one more
 * reply) is never closed. Evictions count in
 * `kvstore_connections_rejected_total{reason="output_full"}` and are logged at most once a
 * second, with how many were not. Once the closed connections' sockets are gone, `collect` runs
 * (at most once a second, and at most a twentieth of the time: #afterEvictions; the node passes
 * a full garbage collection): their replies are garbage V8 frees only when it collects, and with
 * nothing else to prompt it a node kept them (40 clients that stopped reading: +268 MiB of
 * anonymous memory with 117 MiB of replies held).
 */
export class ClientOutput {
  readonly limit: number;
  /** Past this sum the check closes unjudged holders rather than wait (the limit and a quarter). */
  readonly ceiling: number;
  readonly floor: number;
  readonly #holders = new Map<OutputHolder, Watch>();
  readonly #metrics: ServerMetrics;
  readonly #logger: Logger;
  readonly #warnings = new LogThrottle();
  /** The sum of the holders' last reports (at least what they hold). */
  #bytes = 0;
  /**
   * Sum at which the next check runs: the limit; the ceiling while a timed check waits for
   * holders to be judged; or above a sum that had nothing to evict.
   */
  #checkAt: number;
  #checkScheduled = false;
  /** When the check began to wait for unjudged holders (performance.now()); -1: not waiting. */
  #waitingSince = -1;
  /** The next timed check (while the sum is over half the limit). */
  #sampleTimer: NodeJS.Timeout | null = null;
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
    this.ceiling = limit + Math.floor(limit / 4);
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
    this.#holders.set(holder, { bytes: 0, sent: -1, movedAt: 0, runSince: -1 });
  }

  /**
   * Records what `holder` holds now: a sum past the limit schedules a check at the end of the
   * turn; one past half the limit, timed checks (SAMPLE_MS).
   */
  report(holder: OutputHolder, bytes: number): void {
    const w = this.#holders.get(holder);
    if (w === undefined || bytes === w.bytes) return; // not counted (closed), or the same
    this.#bytes += bytes - w.bytes;
    w.bytes = bytes;
    // Back under: the next pass of the limit is checked at once.
    if (this.#bytes <= this.limit) this.#checkAt = this.limit;
    else if (this.#bytes > this.#checkAt && !this.#checkScheduled) {
      this.#checkScheduled = true;
      atTurnEnd(this.#check);
      return;
    }
    if (this.#bytes > this.limit / 2 && this.#sampleTimer === null && !this.#checkScheduled)
      this.#sampleSoon();
  }

  /** `holder` closed: it holds nothing now. */
  remove(holder: OutputHolder): void {
    if (this.#closing.delete(holder) && this.#closing.size === 0) this.#afterEvictions();
    const w = this.#holders.get(holder);
    if (w === undefined) return;
    this.#holders.delete(holder);
    this.#bytes -= w.bytes;
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

  /**
   * Measures and samples every holder, and closes them in the order the class comment gives
   * while the sum is over the limit; waits (a timed check) while some are not judged yet.
   */
  readonly #check = () => {
    this.#checkScheduled = false;
    if (this.#sampleTimer !== null) clearTimeout(this.#sampleTimer);
    this.#sampleTimer = null;
    const now = performance.now();
    let sum = 0;
    let unjudged = 0;
    const notReading: Big[] = [];
    const reading: Big[] = [];
    for (const [holder, w] of this.#holders) {
      w.bytes = holder.outputBytes();
      sum += w.bytes;
      const progress = judge(holder, w, now);
      if (w.bytes <= this.floor) continue;
      if (progress === 'unjudged') unjudged++;
      (progress === 'reading' ? reading : notReading).push({ holder, bytes: w.bytes, progress });
    }
    const measured = sum;
    // Wait for the unjudged ones, under the ceiling, and for STALL_MS at most: then a holder
    // sampled when the wait began has been judged, and newcomers do not prolong it.
    if (sum <= this.limit || unjudged === 0) this.#waitingSince = -1;
    else if (this.#waitingSince < 0) this.#waitingSince = now;
    const wait =
      sum <= this.ceiling && this.#waitingSince >= 0 && now - this.#waitingSince < STALL_MS;
    if (!wait) {
      sum = this.#evict(notReading, sum, measured);
      sum = this.#evict(reading, sum, measured);
    }
    this.#bytes = sum;
    // Waiting: a report past the ceiling checks at once. Still over with only small holders
    // left: once the sum grew by a sixteenth. The timed checks go on meanwhile.
    if (wait) this.#checkAt = this.ceiling;
    else this.#checkAt = sum > this.limit ? sum + this.limit / 16 : this.limit;
    if (sum > this.limit / 2) this.#sampleSoon();
  };

  /** A check in SAMPLE_MS. */
  #sampleSoon(): void {
    this.#sampleTimer = setTimeout(this.#check, SAMPLE_MS).unref();
  }

  /** Closes `holders`, largest first, while `sum` is over the limit; returns the sum left. */
  #evict(holders: Big[], sum: number, measured: number): number {
    if (sum <= this.limit) return sum;
    holders.sort((a, b) => b.bytes - a.bytes);
    let left = sum;
    for (const { holder, bytes, progress } of holders) {
      if (left <= this.limit) break;
      this.#holders.delete(holder);
      this.#closing.add(holder);
      left -= bytes;
      this.#metrics.rejectedConnections.labels('output_full').inc();
      const since = this.#warnings.take();
      if (since >= 0) {
        this.#logger.warn(
          { limit: this.limit, held: measured, bytes, progress, remote: holder.remote, since },
          'client output limit reached: connection holding the most replies closed',
        );
      }
      holder.evict();
    }
    return left;
  }
}
