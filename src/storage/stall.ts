// Whether the disk under the store stopped answering: a write-ahead log write or sync, or an LMDB
// commit, outstanding longer than --storage-stall-timeout-ms (a hung fdatasync on a dead network
// volume, a stuck controller). Nothing fails on such a disk: only the time an operation has been
// out can tell.

import { type FileHandle, open } from 'node:fs/promises';
import { KvError } from '../errors/index.ts';

/** Disk operations of every store in the process started and not settled yet (diskWorkOut). */
let diskOps = 0;

/**
 * Counts `io` (a disk operation in libuv's thread pool) until it settles; returns it. The
 * operations writes wait on are counted by StallWatch.track; the start's syncs through here.
 */
export function countDiskOp<T>(io: Promise<T>): Promise<T> {
  diskOps++;
  const done = () => {
    diskOps--;
  };
  io.then(done, done);
  return io;
}

/**
 * True while a disk operation of a store is out. A thread of libuv's pool blocked in a sync of a
 * hung disk never returns, and process.exit waits for every one of them (libuv's shutdown joins
 * its threads): a process exiting now must not use it (lifecycle's exitProcess).
 */
export function diskWorkOut(): boolean {
  return diskOps > 0;
}

/** What is outstanding on a stalled disk, and since when (performance.now() milliseconds). */
export interface Stall {
  readonly what: string;
  readonly since: number;
}

export interface StallWatchOptions {
  /** An operation outstanding longer than this is a stall (0: never). */
  readonly timeoutMs: number;
  /** Called when the store becomes stalled (with the oldest operation) and when it answers again. */
  readonly onChange: (stall: Stall | null, outstandingMs: number) => void;
}

/**
 * Times every disk operation a write waits on. The store is stalled from the first check that
 * finds one outstanding for longer than the timeout (checked every quarter of it, at most every
 * second), and answers again as soon as no operation is older than that: the hung one returned.
 * An operation that fails is done too (the failure is reported where it happens).
 */
export class StallWatch {
  readonly #o: StallWatchOptions;
  readonly #out = new Set<Stall>();
  /**
   * Operations that run one after another (LMDB's commits), in the order given: only the first
   * is running, and each of the others starts when the one before it settles.
   */
  readonly #queued: { what: string; issued: number }[] = [];
  /** When the first of #queued started. */
  #queuedStart = 0;
  #stalled: Stall | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: StallWatchOptions) {
    this.#o = opts;
    if (opts.timeoutMs > 0) {
      const every = Math.max(25, Math.min(1000, Math.floor(opts.timeoutMs / 4)));
      this.#timer = setInterval(() => this.check(), every).unref();
    }
  }

  /** The stall the store is in (the oldest operation outstanding), or null. */
  get stalled(): Stall | null {
    return this.#stalled;
  }

  /** Milliseconds the oldest outstanding operation has been out (0: none). */
  outstandingMs(now = performance.now()): number {
    const oldest = this.#oldest();
    return oldest === null ? 0 : now - oldest.since;
  }

  /** Times `io` (a disk operation named `what`) until it settles; returns it. */
  track<T>(what: string, io: Promise<T>): Promise<T> {
    const op: Stall = { what, since: performance.now() };
    this.#out.add(op);
    const done = () => {
      this.#out.delete(op);
      if (this.#stalled !== null) this.check();
    };
    io.then(done, done);
    return countDiskOp(io);
  }

  /**
   * Like track, for an operation that runs after every operation given here before it (LMDB's
   * writer commits transactions one at a time, in order): it is timed from when it can start,
   * so a queue of commits behind a slow but working disk is not a stall while each one returns.
   */
  trackInOrder<T>(what: string, io: Promise<T>): Promise<T> {
    const now = performance.now();
    const op = { what, issued: now };
    if (this.#queued.length === 0) this.#queuedStart = now;
    this.#queued.push(op);
    const done = () => {
      const at = this.#queued.indexOf(op);
      if (at >= 0) this.#queued.splice(at, 1);
      if (at === 0 && this.#queued.length > 0) {
        this.#queuedStart = Math.max(performance.now(), this.#queued[0]!.issued);
      }
      if (this.#stalled !== null) this.check();
    };
    io.then(done, done);
    return countDiskOp(io);
  }

  /** Re-evaluates the state now (the timer does it regularly). */
  check(): void {
    if (this.#o.timeoutMs <= 0) return;
    const now = performance.now();
    const oldest = this.#oldest();
    const over = oldest !== null && now - oldest.since > this.#o.timeoutMs ? oldest : null;
    if ((over === null) === (this.#stalled === null)) return;
    this.#stalled = over;
    this.#o.onChange(over, oldest === null ? 0 : now - oldest.since);
  }

  /** The refusal while stalled (KV_ERR_STORAGE_STALLED), naming what hangs and for how long. */
  error(): KvError {
    const s = this.#stalled;
    const what = s === null ? 'a disk operation' : `a ${s.what}`;
    const secs = (this.outstandingMs() / 1000).toFixed(1);
    return new KvError(
      'KV_ERR_STORAGE_STALLED',
      `storage: stalled: ${what} has been outstanding for ${secs} s (over --storage-stall-timeout-ms ${this.#o.timeoutMs}); this node refuses commands until its disk answers: use another node`,
    );
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #oldest(): Stall | null {
    let oldest: Stall | null = null;
    for (const op of this.#out) if (oldest === null || op.since < oldest.since) oldest = op;
    const first = this.#queued[0];
    if (first !== undefined && (oldest === null || this.#queuedStart < oldest.since)) {
      oldest = { what: first.what, since: this.#queuedStart };
    }
    return oldest;
  }
}

/**
 * Every `intervalMs` while no disk operation is out, writes 8 bytes at the start of a file of
 * its own in the data directory and syncs them, timed like any other operation (`disk probe`).
 * A stall needs an operation outstanding to time: without the probe, a node taking no writes
 * (idle, or reads only) whose disk hung said ready until its first write. At most one probe is
 * out at a time, so a hung disk holds one libuv thread. A probe that fails is not retried before
 * the next interval and reports nothing: failures of the disk are the write path's to report
 * (Writability), the probe only finds the disk that does not answer.
 */
export class DiskProbe {
  readonly #path: string;
  readonly #watch: StallWatch;
  readonly #timer: NodeJS.Timeout;
  #file: FileHandle | null = null;
  #out = false;
  #closed = false;
  readonly #bytes = Buffer.alloc(8);
  #count = 0n;

  constructor(path: string, watch: StallWatch, intervalMs: number) {
    this.#path = path;
    this.#watch = watch;
    this.#timer = setInterval(() => this.#tick(), intervalMs).unref();
  }

  #tick(): void {
    if (this.#out || this.#closed || this.#watch.outstandingMs() > 0) return;
    this.#out = true;
    this.#watch
      .track('disk probe', this.#probe())
      .catch(async () => {
        const f = this.#file;
        this.#file = null;
        await f?.close().catch(() => {});
      })
      .finally(() => {
        this.#out = false;
        if (this.#closed) void this.#closeFile();
      });
  }

  async #probe(): Promise<void> {
    this.#file ??= await open(this.#path, 'w');
    this.#bytes.writeBigUInt64BE(++this.#count);
    await this.#file.write(this.#bytes, 0, 8, 0);
    await this.#file.datasync();
  }

  /** Stops probing; the file is closed now, or when a probe still out returns. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    if (!this.#out) void this.#closeFile();
  }

  async #closeFile(): Promise<void> {
    const f = this.#file;
    this.#file = null;
    await f?.close().catch(() => {});
  }
}
