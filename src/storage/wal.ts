// Write-ahead log: what makes a data write durable. Records are appended in memory, then written
// with O_DSYNC in groups (one synchronous write for every record appended while the previous
// group was on its way to disk), so the cost of a sync is shared by every writer. The format and
// the replay decisions are in wal-format.ts.

import {
  close,
  closeSync,
  constants,
  fsync,
  fsyncSync,
  mkdir,
  mkdirSync,
  open,
  openSync,
  rename,
  renameSync,
  rmSync,
  unlink,
  write,
  writeSync,
  writev,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { KvError } from '../errors/index.ts';
import { atTurnEnd } from '../net/index.ts';
import { describeIoError } from './io-errors.ts';
import { countDiskOp } from './stall.ts';
import { untilAborted } from './steps.ts';
import type { WalEntry } from './wal-format.ts';
import { PendingGroup } from './wal-group.ts';
import {
  type Recovered,
  recoverLog,
  recoverLogAsync,
  segmentName,
  spareName,
  syncDirAsync,
  syncDirSync,
} from './wal-recover.ts';

export { WAL_DISCARD, WAL_PUT, type WalEntry } from './wal-format.ts';
export type { Recovered } from './wal-recover.ts';

const writevAsync = promisify(writev);
const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);
const openAsync = promisify(open);
const closeAsync = promisify(close);
const renameAsync = promisify(rename);
const unlinkAsync = promisify(unlink);
const mkdirAsync = promisify(mkdir);
/** Resolves once the event-loop turn's I/O callbacks are done (see atTurnEnd). */
const turnEnd = (): Promise<void> => new Promise((resolve) => atTurnEnd(resolve));

/** What the log reports after each group commit, for metrics. */
type WalSyncObserver = (seconds: number, records: number, bytes: number) => void;

export interface WalOptions {
  /** Directory of the segments (created when missing). */
  readonly dir: string;
  /** A segment is closed once it holds this many bytes; preallocated to this size. */
  readonly segmentBytes: number;
  /**
   * Resolves once every store write queued before the call is flushed to disk: a closed
   * segment is deleted (or recycled) only after that, since then nothing needs replaying.
   */
  readonly checkpoint: () => PromiseLike<unknown>;
  readonly onSync?: WalSyncObserver;
  /**
   * Times each disk operation a sync waits on (a group's write, a rotation's steps) until it
   * settles: a stall watch (stall.ts). Returns the operation.
   */
  readonly track?: <T>(what: string, io: Promise<T>) => Promise<T>;
}

const untracked = <T>(_what: string, io: Promise<T>): Promise<T> => io;

// O_DSYNC: a write returns once its data (and any size change) is on disk, like write+fdatasync
// in one system call, so a group commit costs one thread-pool round trip.
const DSYNC = constants.O_RDWR | constants.O_DSYNC;
const CREATE_DSYNC = DSYNC | constants.O_CREAT | constants.O_TRUNC;
/**
 * The log of one store. `append` is synchronous and cheap; `sync` resolves once everything
 * appended before it is on disk. A failed write or sync rejects the writes of that group (they
 * are not acknowledged; the disk may hold part of them) and leaves the segment: the next `sync`
 * first starts a new segment whose first group names where the old one's acknowledged groups end,
 * and rejects again while that fails (a full disk, no file descriptors). The directory and the
 * spare segment are kept open, so a rotation needs no new file descriptor while a spare is ready.
 */
export class WriteAheadLog {
  readonly #o: WalOptions;
  #seq: number;
  /** The current segment; null when none could be opened (the next sync tries again). */
  #fd: number | null = null;
  #pos = 0;
  /** The segment the next segment's first group names (null: the current one). */
  #seal: { seq: number; end: number } | null;
  /** Records not yet handed to the disk. */
  readonly #pending = new PendingGroup();
  #appended = 0;
  #durable = 0;
  /** How many times records appended were dropped, not written (a failed group): see dropped. */
  #dropped = 0;
  /**
   * What `sync` callers wait on: one promise per group, not one per call (a call per write).
   * `#next` settles with the next group to start (the records pending now and any appended
   * before it starts, or, with nothing pending, the repair of a broken log); `#inflight` with
   * the group on its way to disk.
   */
  #next: Group | null = null;
  #inflight: Group | null = null;
  #writing = false;
  /** Why the last write or rotation failed; cleared once a new segment is open. */
  #broken: KvError | null = null;
  #closed = false;
  readonly #dirFd: number;
  /** Segments waiting for a checkpoint before they can go. */
  readonly #retired = new Set<number>();
  /** The spare when one is ready: its number and an open (O_DSYNC) descriptor. */
  #spare: { seq: number; fd: number } | null = null;
  #spareBusy = false;
  #background: Promise<unknown> = Promise.resolve();
  readonly #track: <T>(what: string, io: Promise<T>) => Promise<T>;

  /** See recoverLog. */
  static recover(dir: string, opts: { truncateCorrupt?: boolean } = {}): Recovered {
    return recoverLog(dir, opts);
  }

  /** See recoverLogAsync. */
  static recoverAsync(
    dir: string,
    signal: AbortSignal,
    opts: Parameters<typeof recoverLogAsync>[2] = {},
  ): Promise<Recovered> {
    return recoverLogAsync(dir, signal, opts);
  }

  /**
   * Starts a new segment after the `recovered` ones, which are deleted once the store has
   * flushed the replayed writes. Throws KV_ERR_STORAGE when the directory cannot be opened; a
   * segment that cannot be created (a full disk) leaves the log broken: writes fail until the
   * next sync manages to start one.
   */
  static open(opts: WalOptions, recovered: Recovered): WriteAheadLog {
    let dirFd: number | null = null;
    try {
      mkdirSync(opts.dir, { recursive: true });
      dirFd = openSync(opts.dir, 'r');
      // The log directory's own entry is on disk before any record.
      syncDirSync(dirname(opts.dir));
    } catch (err) {
      if (dirFd !== null) closeSync(dirFd);
      throw new KvError('KV_ERR_STORAGE', `storage: cannot open the log in ${opts.dir}`, {
        cause: err,
      });
    }
    const log = new WriteAheadLog(opts, recovered, dirFd);
    try {
      log.#openSpare(recovered);
      log.#startSync();
    } catch (err) {
      log.#broken = brokenError(err, opts.dir);
    }
    return log.#started(recovered);
  }

  /**
   * open() whose disk operations run in the thread pool: once `signal` aborts it closes what it
   * opened and rejects with the signal's reason, even while a sync hangs (a dead volume), so that
   * a stop signal ends the start. Nothing is retired then: the next start replays the same log.
   */
  static async openAsync(
    opts: WalOptions,
    recovered: Recovered,
    signal: AbortSignal,
  ): Promise<WriteAheadLog> {
    let dirFd: number | null = null;
    try {
      await mkdirAsync(opts.dir, { recursive: true });
      dirFd = await openAsync(opts.dir, 'r');
      // The log directory's own entry is on disk before any record.
      await untilAborted(countDiskOp(syncDirAsync(dirname(opts.dir))), signal);
    } catch (err) {
      if (dirFd !== null) closeSync(dirFd);
      if (signal.aborted && err === signal.reason) throw err;
      throw new KvError('KV_ERR_STORAGE', `storage: cannot open the log in ${opts.dir}`, {
        cause: err,
      });
    }
    const log = new WriteAheadLog(opts, recovered, dirFd);
    try {
      log.#openSpare(recovered);
      // As a repair would: the spare, or a new file preallocated (a full disk fails here).
      await untilAborted(log.#rotate(true), signal);
    } catch (err) {
      if (signal.aborted && err === signal.reason) {
        log.#closeNow();
        throw err;
      }
      log.#broken = brokenError(err, opts.dir);
    }
    return log.#started(recovered);
  }

  private constructor(opts: WalOptions, recovered: Recovered, dirFd: number) {
    this.#o = opts;
    this.#track = opts.track ?? untracked;
    this.#dirFd = dirFd;
    this.#seq = Math.max(recovered.segments.at(-1) ?? 0, recovered.spare ?? 0);
    this.#seal = recovered.last;
  }

  /** Opens the spare segment recovery found, if any. */
  #openSpare(recovered: Recovered): void {
    const spare = recovered.spare;
    if (spare !== null) {
      this.#spare = { seq: spare, fd: openSync(join(this.#o.dir, spareName(spare)), DSYNC) };
    }
  }

  /** Once the first segment is open (or not: the log is broken): retires the replayed ones. */
  #started(recovered: Recovered): this {
    for (const seq of recovered.segments) this.#retire(seq);
    this.#prepareSpare();
    return this;
  }

  /** Closes the descriptors of a log whose open was stopped (a rotation in flight keeps its own). */
  #closeNow(): void {
    this.#closed = true;
    for (const fd of [this.#fd, this.#spare?.fd ?? null, this.#dirFd]) {
      if (fd !== null) closeSync(fd);
    }
    this.#fd = null;
    this.#spare = null;
  }

  /** How many full segments wait for a checkpoint before they can go. */
  get retiredSegments(): number {
    return this.#retired.size;
  }

  /**
   * How many times the log dropped records it was given without writing them (a group that
   * failed, with the records pending behind it): their writes were decided, so reads answer
   * them, and they are durable only once LMDB has flushed them, never through the log.
   */
  get dropped(): number {
    return this.#dropped;
  }

  /** Why writes fail until the next successful sync (null while the log is healthy). */
  get broken(): KvError | null {
    return this.#broken;
  }

  /** Appends one record (in memory until the next group commit). */
  append(op: WalEntry['op'], key: Buffer, payload: Buffer): void {
    // A large payload is written from the caller's buffer (which must not change afterwards)
    // rather than copied: the store holds it anyway until LMDB has committed it.
    this.#pending.append(op, key, payload);
    this.#appended++;
  }

  /**
   * Resolves once every record appended so far is on disk. Rejects (KV_ERR_STORAGE) when the
   * write fails, or, with nothing appended, when the log is broken and no new segment can be
   * started yet (so callers can check the log before deciding a write).
   */
  sync(): Promise<void> {
    if (this.#closed) return Promise.reject(new KvError('KV_ERR_STORAGE', 'storage: log closed'));
    if (this.#durable >= this.#appended && this.#broken === null) return Promise.resolve();
    // Appended and not pending: in the group being written (the records of a failed group were
    // dropped with it, and a broken log is repaired by the next group).
    if (this.#pending.records === 0 && this.#inflight !== null && this.#broken === null) {
      return this.#inflight.promise;
    }
    this.#next ??= newGroup();
    if (!this.#writing) void this.#pump();
    return this.#next.promise;
  }

  /**
   * Rejects every sync waiting now with `err` (the disk stalled: see stall.ts); their records
   * stay in the log's queue or on their way to the disk, so each may still become durable, as a
   * write whose client timed out may. Later syncs wait as usual.
   */
  abandonWaiters(err: Error): void {
    // The group on its way to disk stays in flight (settling it later does nothing); a sync
    // that joins it meanwhile gets the refusal too. Records appended after this wait on a new
    // group, which starts once the hung write returns.
    const groups = [this.#inflight, this.#next];
    this.#next = null;
    for (const g of groups) g?.reject(err);
  }

  /** Resolves once the background work queued so far (retiring segments, the spare) is done. */
  async idle(): Promise<void> {
    let seen: Promise<unknown>;
    do {
      seen = this.#background;
      await seen;
    } while (seen !== this.#background);
  }

  /**
   * Syncs what is pending, stops, and (once `checkpoint` resolves) deletes every segment. A
   * broken log keeps its segments: the next start replays them.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sync().catch(() => {});
    this.#closed = true;
    await this.idle();
    const current = this.#fd === null ? null : this.#seq;
    for (const fd of [this.#fd, this.#spare?.fd ?? null, this.#dirFd]) {
      if (fd !== null) closeSync(fd);
    }
    this.#fd = null;
    if (this.#broken) return;
    try {
      await this.#o.checkpoint();
    } catch {
      return; // the store could not flush: the segments stay for the next start
    }
    for (const seq of current === null ? this.#retired : [...this.#retired, current]) {
      await unlinkAsync(join(this.#o.dir, segmentName(seq))).catch(() => {});
    }
    this.#retired.clear();
  }

  /**
   * Writes and syncs groups until nothing is pending. One runs at a time. Each group starts at the
   * end of the event-loop turn, not at once: the records of every request read in this turn (the
   * sockets that were ready with the one that called `sync`, or with the previous group's
   * completion) join it instead of waiting a whole group behind it.
   */
  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.records > 0 || this.#broken !== null) {
        await turnEnd();
        if (this.#broken !== null || this.#pos >= this.#o.segmentBytes) await this.#rotate();
        if (this.#pending.records === 0) break;
        await this.#writeGroup();
      }
      // Nothing pending: what waits on the next group (a repair) is done.
      const next = this.#next;
      this.#next = null;
      next?.resolve();
    } catch (err) {
      this.#broken = brokenError(err, this.#o.dir);
      // Every record handed to the log so far belongs to a rejected sync: none is acknowledged.
      this.#pending.drop();
      if (this.#durable < this.#appended) this.#dropped++;
      this.#durable = this.#appended;
      const failed = [this.#inflight, this.#next];
      this.#inflight = null;
      this.#next = null;
      for (const g of failed) g?.reject(this.#broken);
    } finally {
      this.#writing = false;
    }
  }

  /** Writes the pending records as one group at the end of the current segment. */
  async #writeGroup(): Promise<void> {
    const upTo = this.#appended;
    const group = this.#pending.take(this.#seq, this.#pos === 0 ? this.#seal : null);
    if (group === null) return;
    // Whoever waits for these records (and, until it is written, for this group) waits on it.
    const waiting = this.#next ?? newGroup();
    this.#inflight = waiting;
    this.#next = null;
    const started = performance.now();
    // One write call per group, whatever its size: on an O_DSYNC descriptor every call is a sync
    // of its own (a device flush), so a group split over several calls paid several (with a disk
    // whose flush takes 500 ms, a group of 2,000 records took 2.5 s in five calls, past a peer's
    // 2 s timeout, and every write then waited behind it). PendingGroup keeps it to one.
    let written: number;
    try {
      ({ bytesWritten: written } = await this.#track(
        'write-ahead log sync',
        writevAsync(this.#fd!, group.parts, this.#pos),
      ));
    } finally {
      this.#pending.written();
    }
    if (written !== group.size) throw new Error(`short write (${written} of ${group.size})`);
    // Only a whole group moves the end: a failed one stays behind the next segment's seal.
    this.#pos += group.size;
    this.#o.onSync?.((performance.now() - started) / 1000, group.records, group.bytes);
    this.#durable = upTo;
    this.#inflight = null;
    waiting.resolve();
  }

  /** Opens the first segment at start-up (synchronously: nothing is served yet). */
  #startSync(): void {
    const next = this.#seq + 1;
    const path = join(this.#o.dir, segmentName(next));
    let fd: number;
    if (this.#spare !== null) {
      renameSync(join(this.#o.dir, spareName(this.#spare.seq)), path);
      fd = this.#spare.fd;
      this.#spare = null;
    } else {
      fd = openSync(path, CREATE_DSYNC);
      try {
        preallocateSync(fd, this.#o.segmentBytes);
      } catch (err) {
        closeSync(fd);
        rmSync(path, { force: true });
        throw err;
      }
    }
    // The segment's name is on disk before any record.
    fsyncSync(this.#dirFd);
    this.#fd = fd;
    this.#seq = next;
    this.#pos = 0;
  }

  /**
   * Continues in the next segment (the spare when it is ready), whose first group names where
   * the current one ends; retires the current one. After a failure this is the repair.
   */
  async #rotate(preallocateNew = this.#broken !== null): Promise<void> {
    const dir = this.#o.dir;
    const old = this.#fd === null ? null : this.#seq;
    if (old !== null) this.#seal = { seq: old, end: this.#pos };
    const next = this.#seq + 1;
    const path = join(dir, segmentName(next));
    let fd: number;
    if (this.#spare !== null) {
      const spare = this.#spare;
      await this.#track(
        'write-ahead log rotation',
        renameAsync(join(dir, spareName(spare.seq)), path),
      );
      this.#spare = null;
      fd = spare.fd;
    } else {
      // Writes outran the spare: a fresh file, synced as it grows (slower, still durable). After
      // a failure, and at start, it is preallocated first, so a disk still full fails here,
      // before any write.
      fd = await this.#track('write-ahead log rotation', openAsync(path, CREATE_DSYNC));
      if (preallocateNew) {
        await this.#track('write-ahead log rotation', preallocate(fd, path, this.#o.segmentBytes));
      }
    }
    try {
      // The new name must be on disk before any record in it is acknowledged.
      await this.#track('write-ahead log directory sync', fsyncAsync(this.#dirFd));
    } catch (err) {
      // The next try creates the file again (truncated) under the same number.
      await closeAsync(fd).catch(() => {});
      throw err;
    }
    if (this.#fd !== null) await closeAsync(this.#fd).catch(() => {});
    this.#seq = next;
    this.#fd = fd;
    this.#pos = 0;
    this.#broken = null;
    // The old segment becomes the next spare once it is checkpointed; after a failed start
    // there is none, so a fresh one is prepared.
    if (old !== null) this.#retire(old);
    else this.#prepareSpare();
  }

  /** Deletes (or keeps as the spare) segment `seq` once the store has flushed past it. */
  #retire(seq: number): void {
    this.#retired.add(seq);
    const path = join(this.#o.dir, segmentName(seq));
    const done = Promise.resolve(this.#o.checkpoint()).then(async () => {
      if (this.#closed || !this.#retired.delete(seq)) return;
      if (this.#spare === null && !this.#spareBusy) {
        // Recycled: allocated blocks, so syncs in it need no metadata update. Its old groups
        // carry an older segment's CRC seed and end replay at once.
        this.#spareBusy = true;
        try {
          const fd = await openAsync(path, DSYNC);
          try {
            await renameAsync(path, join(this.#o.dir, spareName(seq)));
          } catch (err) {
            await closeAsync(fd);
            throw err;
          }
          this.#adoptSpare(seq, fd);
        } catch {
          // No descriptor to spare: the segment just goes.
          await unlinkAsync(path).catch(() => {});
        } finally {
          this.#spareBusy = false;
        }
      } else {
        await unlinkAsync(path);
      }
    });
    this.#background = Promise.all([this.#background, done]).catch(() => {});
  }

  #adoptSpare(seq: number, fd: number): void {
    if (this.#closed) closeSync(fd);
    else this.#spare = { seq, fd };
  }

  /** Preallocates the spare segment in the background when there is none. */
  #prepareSpare(): void {
    if (this.#spare !== null || this.#spareBusy || this.#closed) return;
    this.#spareBusy = true;
    // Numbered like the current segment: zeros, and whatever it becomes is numbered higher.
    const seq = this.#seq;
    const path = join(this.#o.dir, spareName(seq));
    const done = (async () => {
      const fd = await openAsync(path, CREATE_DSYNC);
      await preallocate(fd, path, this.#o.segmentBytes);
      this.#adoptSpare(seq, fd);
    })()
      .catch(() => {
        // No spare (a full disk, no descriptors): the next rotation creates a plain file.
      })
      .finally(() => {
        this.#spareBusy = false;
      });
    this.#background = Promise.all([this.#background, done]).catch(() => {});
  }
}

/** A group's promise with its settle functions (Promise.withResolvers). */
type Group = PromiseWithResolvers<void>;

function newGroup(): Group {
  const g = Promise.withResolvers<void>();
  // A group nobody waits on any more (every waiter gone) must not reject unhandled.
  g.promise.catch(() => {});
  return g;
}

function brokenError(err: unknown, dir: string): KvError {
  if (err instanceof KvError) return err;
  return new KvError('KV_ERR_STORAGE', `storage: write-ahead log: ${describeIoError(err, dir)}`, {
    cause: err,
  });
}

/**
 * The zeros every preallocation writes, made once and never freed. The kernel reads them from
 * pages the process never wrote, so they take no RSS; a fresh 1 MiB buffer per segment did, in
 * effect: glibc serves it with mmap and, when it is freed, raises its mmap and trim thresholds to
 * its size (to 1 and 2 MiB), after which freed heap memory below those sizes stays resident
 * (about 1 MiB more for an empty node).
 */
let zeros: Buffer | null = null;
const zeroChunk = () => (zeros ??= Buffer.alloc(1 << 20));

/** Writes `bytes` of zeros to a new file (O_DSYNC: on disk); closes and deletes it on failure. */
async function preallocate(fd: number, path: string, bytes: number): Promise<void> {
  try {
    const chunk = zeroChunk().subarray(0, Math.min(bytes, 1 << 20));
    for (let at = 0; at < bytes; at += chunk.length) {
      await writeAsync(fd, chunk, 0, Math.min(chunk.length, bytes - at), at);
    }
  } catch (err) {
    await closeAsync(fd).catch(() => {});
    await unlinkAsync(path).catch(() => {});
    throw err;
  }
}

function preallocateSync(fd: number, bytes: number): void {
  const chunk = zeroChunk().subarray(0, Math.min(bytes, 1 << 20));
  for (let at = 0; at < bytes; at += chunk.length) {
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - at), at);
  }
}
