// The durable ordered store: LMDB with binary keys (byte order) and versioned records.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { KvError } from '../errors/index.ts';
import { currentJob } from '../net/index.ts';
import { dueEnd, expiryIndexKey, INDEX_START, parseExpiryIndexKey } from './expiry-index.ts';
import { type Counters, HandOver } from './hand-over.ts';
import { guardLmdbRejections } from './health.ts';
import { compareVersions, HybridClock, isValidVersion, type Version } from './hlc.ts';
import { describeIoError } from './io-errors.ts';
import { ABSENT, expiryOf, hashOf, type Kind, kindOf, RecentKinds, TOMBSTONE } from './kinds.ts';
import {
  checkLmdbFile,
  checkLmdbTrees,
  checkLmdbTreesAsync,
  LMDB_ENV_OPTIONS,
  type OpenedMeta,
  rollBackUnflushed,
} from './lmdb-check.ts';
import { LmdbSync, type SyncableEnv } from './lmdb-sync.ts';
import { registerStorageMetrics, type StorageMetrics } from './metrics.ts';
import { NewestVersions } from './newest.ts';
import { QueuedWrites } from './queued-writes.ts';
import {
  compareCopies,
  decodeRecord,
  decodeRecordHeader,
  deletedAt,
  encodeRecord,
  expiredForm,
  isLive,
  type StoredRecord,
} from './record.ts';
import {
  mergeOverlay,
  overlayWithin,
  type Queued,
  QueuedDelete,
  type ScanBounds,
  type ScannedRecord,
} from './scan.ts';
import { SharedSync } from './shared-sync.ts';
import { DiskProbe, StallWatch } from './stall.ts';
import { runSteps, runStepsInSlices } from './steps.ts';
import type { Entry, OpenPhase, RecoveryReport, StorageOptions } from './types.ts';
import { type Recovered, WAL_DISCARD, WAL_PUT, type WalOptions, WriteAheadLog } from './wal.ts';
import { Writability } from './writability.ts';

export type { Entry, OpenPhase, RecoveryReport, StorageOptions } from './types.ts';

const WAL_SEGMENT_BYTES = 4 * 1024 * 1024;
/**
 * Acknowledged writes LMDB has not committed yet are held in memory (for reads, and in LMDB's
 * queue). Past this many bytes of them a write also waits for LMDB, so a burst of large values
 * cannot pile up behind it.
 */
const MAX_UNCOMMITTED_BYTES = 16 * 1024 * 1024;
/**
 * Writes go to LMDB in batches: the first write after a batch waits up to this long (in memory,
 * and in the log, which is what made it durable) for others to join it, or until the batch
 * holds LMDB_BATCH_BYTES. One LMDB transaction per batch instead of one per event-loop turn: one
 * commit and sync, and a B+tree page copied and written once for all of the batch's keys on it.
 * Reads and scans see the waiting writes (the overlay), so only a crash can tell, and the log
 * replays them. Measured side by side (bench/results/2026-12-03-lmdb-batches.md), node CPU per
 * durable SET against a transaction per turn: 0.64x at pipeline 1 and 0.86x at pipeline 16 with
 * 100 ms; 1 s takes another 0.83x and 0.78x off that. (etcd's backend batches the same way:
 * 100 ms or 10,000 writes.)
 */
const LMDB_BATCH_MS = 1000;
/** A batch this large goes to LMDB at once. */
const LMDB_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Memory for the kinds of the records of the keys written last (RecentKinds): about 160,000 keys
 * of 16 bytes. A write to one of them that wins on its version alone reads no old record.
 */
const RECENT_KINDS_BYTES = 16 * 1024 * 1024;

interface MetaState {
  liveKeys: number;
  tombstones: number;
  /** Live records with an expiry (absent in stores from before expiry: 0). */
  expiring?: number;
  hlc: Version;
}

/**
 * Entries of a batch given to LMDB per event-loop turn (Storage.#give): about 1 ms of lmdb-js
 * puts. A whole batch (~30,000 SETs at 4 MiB) in one run stopped the event loop for 7-25 ms at
 * every log rotation (bench/results/2026-12-07-s37-h4-handover.md).
 */
const HANDOVER_SLICE = 2048;

/** A batch of writes given to LMDB (see Storage.#issued). */
interface IssuedBatch {
  /** Its writes by key, the last of each key (as #queued held them). */
  readonly writes: QueuedWrites;
  /** What its writes counted in #uncommittedBytes. */
  readonly bytes: number;
}

/** Most due expiry index entries dueCount counts. */
const MAX_DUE_COUNT = 100_000;

/** How long a failed or stopped open waits for LMDB's close (see #abandon). */
const ABANDON_CLOSE_MS = 1000;

const META_KEY = 'state';
/** The file in the data directory the disk probe writes (DiskProbe). */
const DISK_PROBE_FILE = 'disk-probe';
/**
 * How often the disk probe runs while nothing else is out: half the stall timeout, within
 * 250 ms..5 s, so an idle node finds a hung disk within about 1.5 times the timeout.
 */
const probeIntervalMs = (stallMs: number) => Math.min(5000, Math.max(250, stallMs / 2));
const EMPTY = Buffer.alloc(0);

/**
 * A copy of bytes LMDB lent (getBinaryFast: a view of lmdb-js's read buffer, valid until the next
 * read, whose `length` alone is the record's). lmdb-js's own getBinary copies with
 * `Uint8Array.prototype.slice`, which gives every record its own ArrayBuffer; copied into
 * `Buffer.allocUnsafe`, a record under 32 KiB is carved from Node's shared 64 KiB pool instead,
 * 0.7-0.9 µs less per read (`node bench/copy-bench.ts`). Callers use the copy and drop
 * it (a reply, a repair, a stream batch); one kept for long would keep its pool slab. The view's
 * ends are explicit because of the lent buffer's `length`.
 */
function copyOut(lent: Buffer | undefined): Buffer | undefined {
  if (lent === undefined) return undefined;
  const length = lent.length;
  const copy = Buffer.allocUnsafe(length);
  copy.set(new Uint8Array(lent.buffer, lent.byteOffset, length));
  return copy;
}

/**
 * Why an open failed: a storage error as it is (KV_ERR_STORAGE or KV_ERR_CORRUPT, which say what
 * failed; the code decides the exit code), anything else wrapped as KV_ERR_STORAGE.
 */
function openFailure(path: string, err: unknown): KvError {
  if (err instanceof KvError && (err.code === 'KV_ERR_STORAGE' || err.code === 'KV_ERR_CORRUPT'))
    return err;
  const why = describeIoError(err, path);
  return new KvError('KV_ERR_STORAGE', `storage: cannot open ${path}: ${why}`, { cause: err });
}

/**
 * Opens LMDB (rolled back to its flushed snapshot first when it needs it) and the store on it
 * (`make`). Not a static private method of Storage: a node started from Node's compile cache
 * (V8's cached code, as the tests start them) failed that method's brand check at the call
 * ("TypeError: Receiver must be class #handing", sometimes SIGSEGV) once the class had a few
 * more private members, while the same sources ran without the cache.
 */
function openLmdb(
  opts: StorageOptions,
  opened: OpenedMeta | null,
  make: (root: RootDatabase) => Storage,
): Storage {
  let root: RootDatabase | null = null;
  try {
    if (opened?.rollback) rollBackUnflushed(opts.path);
    root = open({ path: opts.path, ...LMDB_ENV_OPTIONS });
    return make(root);
  } catch (err) {
    void root?.close().catch(() => {});
    throw openFailure(opts.path, err);
  }
}

/** The bytes a queued write counts (key and record) against MAX_UNCOMMITTED_BYTES and the batch. */
function queuedSize(key: Buffer, v: Queued): number {
  return key.length + (v instanceof QueuedDelete ? 0 : v.length);
}

/**
 * One node's store. Reads are synchronous (memory-mapped LMDB, overlaid with the writes LMDB has
 * not committed yet). A data write is decided on the main thread, queued to LMDB and appended to
 * the write-ahead log; the write call resolves once the log has it on disk (one fdatasync per
 * group of writes), so an acknowledgement built on it means durable. LMDB commits and syncs
 * behind the log; a log segment is dropped once LMDB has flushed past it, and a restart replays
 * what remains (idempotent: every write is last-write-wins by version). Keys compare as raw
 * bytes. Besides the data it keeps an index of tombstones (so garbage collection reads only
 * them), a small JSON state table for other modules, and the environment the hint store shares.
 */
export class Storage {
  readonly clock: HybridClock;
  readonly #root: RootDatabase;
  readonly #data: Database<Buffer, Buffer>;
  readonly #tombs: Database<Buffer, Buffer>;
  /** Live records that expire, by (expiry, key): see expiry-index.ts. */
  readonly #expiries: Database<Buffer, Buffer>;
  readonly #meta: Database<unknown, string>;
  readonly #hints: Database<Buffer, Buffer>;
  readonly #dataFile: string;
  readonly #metrics: StorageMetrics | null;
  #state: MetaState;
  #closed = false;
  /** The log's segment size (StorageOptions.walSegmentBytes). */
  readonly #walSegmentBytes: number;
  /** StorageOptions.lateLandingMs (infinite when absent: nothing lands late). */
  readonly #lateLandingMs: number;
  /**
   * The writes of the batch not given to LMDB yet, by key bytes: bytes or a delete, the last of
   * each key (what LMDB is given: see #issue). (While #held, every replayed write, and no batch.)
   */
  #queued = new QueuedWrites();
  /**
   * Batches given to LMDB and not committed yet, oldest first, each with its writes by key. A
   * batch is dropped whole once LMDB has committed it: no work per write then (a batch holds up
   * to a second of writes; forgetting them one by one stalled the event loop for 3 to 8 ms at
   * 30k SET/s). A failed one stays (reads keep seeing its writes) until the repair queues them
   * again. Reads look in #queued, then here from the newest batch to the oldest, then in LMDB.
   */
  #issued: IssuedBatch[] = [];
  /** The counters changed since the last batch went to LMDB. */
  #stateDirty = false;
  /**
   * Data writes decided and not yet given to LMDB (see LMDB_BATCH_MS): #queued holds the last of
   * each key, which is all LMDB is given (in slices, each with its counters: HandOver). Not counted
   * while #held: then there is no batch.
   */
  #batchWrites = 0;
  #batchBytes = 0;
  #batchTimer: NodeJS.Timeout | null = null;
  /** Record writes queued so far (see `changes`). */
  #changes = 0;
  /** Null while replaying the log at open (replayed writes are in it already). */
  #wal: WriteAheadLog | null = null;
  /** StorageOptions.onFirstWrite until it was called. */
  #firstWrite: (() => void) | null;
  /** Free space, LMDB failures, the log: while one stands, writes are refused until repaired. */
  readonly #w: Writability;
  /** Disk operations writes wait on, timed: past --storage-stall-timeout-ms the store is stalled. */
  readonly #stall: StallWatch;
  /** Finds a hung disk while no write is out (null: stall detection off). */
  readonly #probe: DiskProbe | null;
  readonly #unguard: () => void;
  #recovery: RecoveryReport = { replayed: 0, torn: null, truncated: null };
  /** True while replayed writes stay in memory only (too little space to give them to LMDB). */
  #held = false;
  /** Bytes of queued writes LMDB has not committed, and the newest one's commit. */
  /**
   * Expiry index entries put or removed whose writes have not all settled (lmdb-js reads see a
   * write only once its transaction commits), by index key, with what the last write makes of
   * the entry: dueCount corrects LMDB's count by them, so that DBSIZE and INFO's `expires` agree
   * with the counters, which move when a write is decided.
   */
  readonly #indexPending = new Map<string, { at: number; present: boolean; ops: number }>();
  #uncommittedBytes = 0;
  #lastCommit: Promise<unknown> = Promise.resolve();
  /**
   * Batches issued and not all given to LMDB yet, oldest first (see #give): a newer one's writes
   * go to LMDB only after every write of the older ones.
   */
  #handing: HandOver<MetaState, IssuedBatch>[] = [];
  /** The next turn's slice of #handing (see #give). */
  #giveTimer: NodeJS.Immediate | null = null;
  /** The counters given to LMDB with the last batch all given (see HandOver). */
  #givenState: Counters;
  /** Set once LMDB closes or failed for good: nothing more is given to it (#stopGiving). */
  #givingStopped = false;
  /** The kinds of the newest records of the keys written last (see #applyOne). */
  readonly #kinds: RecentKinds;
  /** Which writes are above every stored version of their key (see #applyOne). */
  readonly #newest = new NewestVersions(() => this.#state.hlc);
  /** The writes that decide true or false (apply, removeIfLive) wait for their log group here. */
  readonly #shared = new SharedSync(
    (starts) => {
      this.#w.report();
      return this.#synced(starts);
    },
    () => this.#w.report(),
  );

  private constructor(opts: StorageOptions, root: RootDatabase) {
    this.#root = root;
    const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
    this.#data = root.openDB<Buffer, Buffer>({ name: 'data', ...binary });
    this.#tombs = root.openDB<Buffer, Buffer>({ name: 'tombstones', ...binary });
    this.#expiries = root.openDB<Buffer, Buffer>({ name: 'expiries', ...binary });
    this.#meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'json' });
    // Every database is opened here, before the log's replay gives LMDB its first batch: lmdb-js
    // opens a database in a synchronous transaction, which, run while a batch waits in LMDB's
    // writer, commits that batch and restarts its rest as a synchronous commit, outside the
    // overlapping sync the crash guarantee rested on until LMDB ran with its own sync (harmless
    // since, and kept: a slice of a batch is not split from its counters; docs/storage.md,
    // power-loss testing).
    this.#hints = root.openDB<Buffer, Buffer>({ name: 'hints', ...binary });
    this.#dataFile = join(opts.path, 'data.mdb');
    this.#firstWrite = opts.onFirstWrite ?? null;
    this.#walSegmentBytes = opts.walSegmentBytes ?? WAL_SEGMENT_BYTES;
    this.#lateLandingMs = opts.lateLandingMs ?? Number.POSITIVE_INFINITY;
    this.#kinds = new RecentKinds(opts.recentKindsBytes ?? RECENT_KINDS_BYTES);
    // lmdb-js's root has sync(callback) (open.js), which its type declarations leave out.
    const lmdbSync = new LmdbSync(root as unknown as SyncableEnv);
    this.#w = new Writability({
      dir: opts.path,
      minFreeBytes: opts.minFreeBytes ?? 0,
      walBroken: () => this.#wal?.broken ?? null,
      walSync: () => this.#wal?.sync() ?? Promise.resolve(),
      repairLmdb: () => this.#repairLmdb(),
      onWritable: opts.onWritable ?? (() => {}),
      // Tracked as a commit is: a sync hung on the disk is a stall, and disk work out that an
      // exiting process must not wait for (diskWorkOut).
      syncLmdb: () => this.#stall.track('LMDB sync', lmdbSync.sync()),
      ...(opts.onFatal ? { onFatal: opts.onFatal } : {}),
    });
    this.clock = new HybridClock(opts.nodeName, Date.now, opts.maxClockOffsetMs);
    this.#state = (this.#meta.get(META_KEY) as MetaState | undefined) ?? {
      liveKeys: 0,
      tombstones: 0,
      hlc: { wall: 0, logical: 0, node: opts.nodeName },
    };
    this.clock.observe(this.#state.hlc);
    this.#givenState = { ...this.#state };
    this.#metrics = opts.registry ? registerStorageMetrics(opts.registry, this) : null;
    // Last: what runs by itself (a listener, timers, the probe's file) exists only once nothing
    // here can throw any more, so a constructor that fails leaves none of it behind.
    this.#unguard = guardLmdbRejections(this.#w.health);
    this.#stall = new StallWatch({
      timeoutMs: opts.stallTimeoutMs ?? 0,
      onChange: (stall, outstandingMs) => {
        // The writes waiting on the hung operation get their answer now, not when the disk
        // answers (if ever): not acknowledged, they may still land, as a timed-out write may.
        if (stall !== null) this.#wal?.abandonWaiters(this.#stall.error());
        if (stall !== null) this.#metrics?.stalls.inc();
        opts.onStall?.(stall === null ? null : stall.what, outstandingMs);
      },
    });
    const stallMs = opts.stallTimeoutMs ?? 0;
    this.#probe =
      stallMs > 0
        ? new DiskProbe(join(opts.path, DISK_PROBE_FILE), this.#stall, probeIntervalMs(stallMs))
        : null;
  }

  /**
   * Opens (or creates) the store at `opts.path` and replays its write-ahead log. Throws
   * KV_ERR_CORRUPT when the LMDB file or the log is damaged (checked before LMDB maps the file),
   * KV_ERR_STORAGE when they cannot be opened. A disk too full to replay into, or to start a log
   * segment on, opens the store refusing writes (see `writeFailure`) rather than failing.
   */
  static open(opts: StorageOptions): Storage {
    const walDir = join(opts.path, 'wal');
    let opened: OpenedMeta | null;
    let recovered: Recovered;
    try {
      opened = checkLmdbFile(opts.path);
      recovered = WriteAheadLog.recover(walDir, {
        truncateCorrupt: opts.walTruncateCorrupt ?? false,
      });
      // After an unclean stop (a commit newer than the snapshot LMDB opens, or a log to replay)
      // the snapshot's trees and free list are checked too: a power cut that kept some of the
      // unflushed writes and not others must be refused here, not met by an LMDB assertion
      // (SIGABRT) later.
      if (opened && (opened.superseded || recovered.entries.length > 0)) {
        checkLmdbTrees(opts.path, opened);
      }
    } catch (err) {
      throw openFailure(opts.path, err);
    }
    const store = openLmdb(opts, opened, (root) => new Storage(opts, root));
    try {
      runSteps(store.#replay(recovered));
      store.#replayed(recovered);
      store.#wal = WriteAheadLog.open(store.#walOptions(walDir), recovered);
      return store;
    } catch (err) {
      void store.#abandon();
      throw openFailure(opts.path, err);
    }
  }

  /**
   * open() that a stop signal can end: the log's segments are read, the trees checked and the log
   * replayed a slice at a time (about 20 ms of work each; the event loop turns between slices,
   * so a SIGTERM handler runs), and once `signal` aborts it closes what it opened and rejects
   * with the signal's reason. The log is left as it was (its segments are retired only once a new
   * one starts, after the replay): a start stopped during the replay replays all of it again,
   * as after a crash there. `phase` is told as each long phase starts.
   */
  static async openAsync(
    opts: StorageOptions,
    signal: AbortSignal,
    phase: (what: OpenPhase) => void = () => {},
  ): Promise<Storage> {
    const walDir = join(opts.path, 'wal');
    let opened: OpenedMeta | null;
    let recovered: Recovered;
    try {
      phase({ phase: 'checking the LMDB file' });
      opened = checkLmdbFile(opts.path);
      recovered = await WriteAheadLog.recoverAsync(walDir, signal, {
        truncateCorrupt: opts.walTruncateCorrupt ?? false,
        reading: (segments, bytes) =>
          phase({ phase: 'reading the write-ahead log', segments, bytes }),
        cutting: (segment, offset) =>
          phase({ phase: 'cutting the damaged write-ahead log', segment, offset }),
      });
      if (opened && (opened.superseded || recovered.entries.length > 0)) {
        const bytes = (Number(opened.lastPage) + 1) * opened.pageSize;
        phase({ phase: 'checking the LMDB trees', bytes });
        await checkLmdbTreesAsync(opts.path, opened, signal);
      }
      signal.throwIfAborted();
    } catch (err) {
      if (signal.aborted && err === signal.reason) throw err;
      throw openFailure(opts.path, err);
    }
    phase({ phase: 'opening LMDB', rollback: opened?.rollback ?? false });
    const store = openLmdb(opts, opened, (root) => new Storage(opts, root));
    // Every failure from here on closes what the open made (LMDB, the disk probe, the timers).
    try {
      phase({ phase: 'replaying the write-ahead log', records: recovered.entries.length });
      await runStepsInSlices(store.#replay(recovered), signal);
      store.#replayed(recovered);
      store.#wal = await WriteAheadLog.openAsync(store.#walOptions(walDir), recovered, signal);
      return store;
    } catch (err) {
      await store.#abandon();
      if (signal.aborted && err === signal.reason) throw err;
      throw openFailure(opts.path, err);
    }
  }

  /** After the replay: reports what the log held (a new segment starts after it next). */
  #replayed(recovered: Recovered): void {
    this.#metrics?.walReplayed.set(recovered.entries.length);
    this.#recovery = {
      replayed: recovered.entries.length,
      torn: recovered.torn,
      truncated: recovered.truncated,
    };
  }

  /** The log's options: its segments retire once LMDB flushed past them. */
  #walOptions(walDir: string): WalOptions {
    const m = this.#metrics;
    return {
      dir: walDir,
      segmentBytes: this.#walSegmentBytes,
      // The rotation's: the batch goes to LMDB over the next turns (#give), and the flush is
      // asked for once all of it was given.
      checkpoint: async () => {
        this.#issue();
        await this.#handing.at(-1)?.given();
        return this.#w.checkpoint(this.#root);
      },
      ...(m ? { onSync: m.walSynced } : {}),
      track: (what, io) => this.#stall.track(what, io),
    };
  }

  /**
   * Closes a store whose open failed or was stopped: what it queued is dropped, not given to LMDB
   * (the log still holds it, and the next start replays it); LMDB closes once what it was given
   * is committed. Waits for that at most ABANDON_CLOSE_MS: on a hung disk the commit may never
   * end, and the stop of a start must not wait for it (LMDB's close goes on; the process that
   * exits meanwhile leaves LMDB as a crash would, and the log replays).
   */
  async #abandon(): Promise<void> {
    this.#closed = true;
    if (this.#batchTimer !== null) clearTimeout(this.#batchTimer);
    this.#batchTimer = null;
    this.#stopGiving();
    this.#w.close();
    this.#stall.close();
    this.#probe?.close();
    this.#unguard();
    const closed = this.#root.close().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ABANDON_CLOSE_MS).unref();
    });
    await Promise.race([closed, late]);
    clearTimeout(timer);
  }

  /** What the log held at open: replayed records, a torn tail dropped, damage cut off. */
  get recovery(): RecoveryReport {
    return this.#recovery;
  }

  /**
   * Why writes are refused now (`disk full (ENOSPC)`, `out of file descriptors (EMFILE)`), or
   * null while the store takes writes. Reads work either way. The next write, and a retry every
   * second, try again, so writes resume once the cause is gone.
   */
  writeFailure(): string | null {
    return this.#w.failure();
  }

  /**
   * KV_ERR_STORAGE_STALLED while a disk operation writes wait on has been outstanding longer
   * than the stall timeout (StorageOptions.stallTimeoutMs), else null. Writes are refused at
   * once meanwhile; the store takes them again as soon as the operation returns.
   */
  stalled(): KvError | null {
    return this.#stall.stalled === null ? null : this.#stall.error();
  }

  /** Seconds the oldest disk operation writes wait on has been outstanding (0: none). */
  outstandingSeconds(): number {
    return this.#stall.outstandingMs() / 1000;
  }

  /** Applies what the log holds beyond LMDB's last flush (most of it is already there). */
  /** Replays the log's entries into the store, a step per 256 (open, openAsync). */
  *#replay(recovered: Recovered): Generator<void, void> {
    // On a disk too full for them, replayed writes are kept in memory (reads see them) and the
    // repair gives them to LMDB once there is room.
    this.#held = recovered.entries.length > 0 && this.#w.space.short(true) !== null;
    if (this.#held) this.#w.health.fail(new Error(this.#w.space.short()!));
    let n = 0;
    for (const e of recovered.entries) {
      const record = decodeRecord(e.payload);
      this.clock.observe(record.version);
      if (e.op === WAL_PUT) this.#applyOne(e.key, record, false);
      else this.#discardOne(e.key, record.version);
      if (++n % 256 === 0) yield;
    }
  }

  /** The LMDB environment, for stores that share it (hints). */
  get root(): RootDatabase {
    return this.#root;
  }

  /** The hint store's table (binary keys and values), opened with the others at open. */
  get hintsTable(): Database<Buffer, Buffer> {
    return this.#hints;
  }

  /** The record at `key`, tombstones included; undefined when the key was never written. */
  get(key: Buffer): StoredRecord | undefined {
    const raw = this.getRaw(key);
    return raw === undefined ? undefined : decodeRecord(raw);
  }

  /**
   * Calls `use` with the stored bytes at `key` (encodeRecord format; undefined when the key was
   * never written) and returns what it returns. The bytes are LMDB's own, not a copy: they are
   * valid only during the call, which must not read the store again (GET encodes its reply from
   * them). LMDB's bytes are a view of lmdb-js's 16 MiB read buffer whose `length` alone is the
   * record's: copy() and subarray() them only with explicit ends
   * (bench/results/2026-12-04-read-cache.md).
   */
  withRaw<T>(key: Buffer, use: (raw: Buffer | undefined) => T): T {
    // Nothing queued (the common case for reads): no lookup in the overlay.
    if (this.#nothingQueued()) return use(this.#data.getBinaryFast(key));
    return use(this.#peek(key));
  }

  /**
   * How many record writes (puts and deletes, every key) this store has taken so far. While it
   * is unchanged, every record reads as it did: a copy read before is what a read now returns.
   */
  get changes(): number {
    return this.#changes;
  }

  /** The stored bytes at `key` (encodeRecord format), or undefined. */
  getRaw(key: Buffer): Buffer | undefined {
    return this.#current(key);
  }

  /**
   * Stores `record` at `key` unless the stored version is the same or newer (last write wins;
   * of two copies of one tombstone, the later: compareCopies).
   * Resolves once the write is durable: true when it was applied, false when it was older.
   */
  apply(key: Buffer, record: StoredRecord): Promise<boolean> {
    // Not async (a call per SET): a refused version rejects all the same.
    try {
      this.#observe(record.version);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#durable(this.#applyOneOf, key, record);
  }

  /**
   * `record` as this store keeps it when it lands now: one that holds no value (a tombstone, or
   * a value expired already) landing more than lateLandingMs after it took effect (deletedAt)
   * is kept as its tombstone (expiredForm) with its expiry set to now (its versions kept), so
   * tombstone collection counts its age from when it landed here. Never as a value expiring
   * now: a clock behind this one (within the offset) would read that value as live, and an
   * expiry change made by it (PERSIST) would keep it for good. The same record otherwise, where
   * the store holds the same write (a copy of the tombstone, or the value it is the expiry of:
   * it landed in time, or as it took effect later, compareCopies), and where it holds nothing at
   * `key`: no read found a value here for it to delete, and a
   * write-back of one a read found elsewhere is bounded by the copy that landed where that
   * value was (rebalance/transfer.ts lateLandingMs). Kept as landing now, a tombstone streamed
   * to a new owner held its collection on every member up a grace longer, and its bytes, not
   * the others', had anti-entropy fetch its bucket on every pass. Decided in the write's own
   * step (#durable's), so both are judged when it lands, not before a wait for the disk.
   */
  #asLanded(key: Buffer, record: StoredRecord): StoredRecord {
    if (!record.tombstone && record.expiresAt === undefined) return record;
    const now = Date.now();
    if (!this.#late(record, now)) return record;
    const stored = this.#peek(key);
    // Nothing here, or the same write (its other form or another copy's, see #applyOne).
    if (stored === undefined) return record;
    if (compareVersions(decodeRecordHeader(stored).version, record.version) === 0) return record;
    return { ...expiredForm(record), expiresAt: now };
  }

  /**
   * Whether `record`, landing on a store now, would land late: it holds no value, and took effect
   * more than StorageOptions.lateLandingMs ago (see #asLanded).
   */
  landsLate(record: StoredRecord): boolean {
    return this.#late(record, Date.now());
  }

  #late(record: StoredRecord, now: number): boolean {
    return !isLive(record, now) && now > deletedAt(record) + this.#lateLandingMs;
  }

  /** #applyOne as apply() decides it, without a closure per write (see #durable). */
  readonly #applyOneOf = (key: Buffer, record: StoredRecord): boolean =>
    this.#applyLanded(key, record, this.#asLanded(key, record));

  /**
   * Applies `landed` (#asLanded of `record`), counting it in kvstore_storage_late_tombstones_total
   * when it landed late (moved) and was taken. `raw`: `record`'s bytes, if at hand (a moved
   * record's are encoded again).
   */
  #applyLanded(key: Buffer, record: StoredRecord, landed: StoredRecord, raw?: Buffer): boolean {
    if (landed === record) return this.#applyOne(key, record, false, raw);
    const applied = this.#applyOne(key, landed, false);
    if (applied) this.#metrics?.lateTombstones.inc();
    return applied;
  }

  /** Applies many entries (last write wins each); resolves with how many applied, once durable. */
  applyBatch(entries: readonly Entry[]): Promise<number> {
    // Not async (one call per write on every replica): a refused version rejects all the same.
    try {
      for (const e of entries) this.#observe(e.record.version);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#durable(() => {
      let n = 0;
      for (const e of entries) {
        if (this.#applyLanded(e.key, e.record, this.#asLanded(e.key, e.record), e.raw)) n++;
      }
      return n;
    });
  }

  /**
   * Writes a tombstone at `version` only if the key holds a live value, not expired by the
   * clock's wallNow (checked and queued as one step: no other write can come between). Resolves
   * once durable: true when a value was deleted.
   */
  async removeIfLive(key: Buffer, version: Version): Promise<boolean> {
    this.#observe(version);
    const record = { version, tombstone: true, value: EMPTY };
    return this.#durable(() => this.#applyOne(key, record, true));
  }

  /** Moves the clock past `v`; throws KV_ERR_BAD_RECORD (nothing written) if `v` is invalid. */
  #observe(v: Version): void {
    if (!this.clock.observe(v)) {
      throw new KvError('KV_ERR_BAD_RECORD', `storage: version wall ${v.wall} is out of range`);
    }
  }

  /**
   * Physically deletes each key whose stored version still equals the given one (so a newer
   * write is never lost): collected tombstones, and data this node no longer owns.
   * Resolves with how many were deleted, once durable.
   */
  async discard(entries: readonly { key: Buffer; version: Version }[]): Promise<number> {
    return this.#durable(() => {
      let n = 0;
      for (const e of entries) if (this.#discardOne(e.key, e.version)) n++;
      return n;
    });
  }

  /**
   * Turns up to `limit` records whose expiry has passed (by the clock's wallNow) into their
   * tombstones (expiredForm), earliest expiry first, and drops index entries that no longer
   * match their record (each counts toward `limit`). Resolves once durable: how many records
   * expired, and whether due entries remain beyond the limit.
   */
  async expireDue(limit: number): Promise<{ expired: number; more: boolean }> {
    const now = this.clock.wallNow();
    return this.#durable(() => {
      let expired = 0;
      let seen = 0;
      for (const ik of this.#expiries.getKeys({ start: INDEX_START, end: dueEnd(now) })) {
        // Removed already, not committed yet (a sweep less than a batch ago): nothing to do.
        if (this.#indexPending.get(ik.toString('latin1'))?.present === false) continue;
        if (seen++ === limit) return { expired, more: true };
        const { expiresAt, key } = parseExpiryIndexKey(ik);
        const raw = this.#current(key);
        const rec = raw === undefined ? undefined : decodeRecord(raw);
        if (rec && !rec.tombstone && rec.expiresAt === expiresAt) {
          if (this.#applyOne(Buffer.from(key), expiredForm(rec), false)) expired++;
        } else {
          this.#indexWrite(Buffer.from(ik), expiresAt, -1);
        }
      }
      return { expired, more: false };
    });
  }

  /**
   * Index entries whose expiry is at or before `now` (live records not swept yet), counted up
   * to MAX_DUE_COUNT: the sweeper keeps the backlog far below that, and a count stays cheap for
   * DBSIZE, INFO and metrics while it catches up.
   */
  dueCount(now: number): number {
    let n = this.#expiries.getKeysCount({
      start: INDEX_START,
      end: dueEnd(now),
      limit: MAX_DUE_COUNT,
    });
    const due = Math.max(0, Math.floor(now));
    for (const [id, e] of this.#indexPending) {
      if (e.at > due) continue;
      // Committed or not, LMDB says which: count the entry as its last write leaves it.
      const seen = this.#expiries.doesExist(Buffer.from(id, 'latin1'));
      if (e.present && !seen) n++;
      else if (!e.present && seen) n--;
    }
    return Math.min(MAX_DUE_COUNT, Math.max(0, n));
  }

  /**
   * Runs `decide(a, b)` (its arguments given apart, so that a SET makes no closure), which
   * checks and queues writes synchronously, then waits until the log has
   * everything appended so far on disk. Every write of this process is decided here, on the
   * main thread, against the stored value or a queued newer one, so the decisions are serial;
   * the log and LMDB's writer thread get them in the same order. (A `transaction()` callback
   * would make the writer thread wait for the main thread on every commit.)
   */
  #durable<T, A = undefined, B = undefined>(decide: (a: A, b: B) => T, a?: A, b?: B): Promise<T> {
    const wal = this.#wal;
    // A stalled disk: refused at once, nothing decided (it would wait behind the hung operation).
    if (this.#stall.stalled !== null) return Promise.reject(this.#stall.error());
    // The common case without an async function (one per write on every replica): the log
    // healthy, the writes decided at once, one reaction when their group is on disk.
    if (this.#closed || wal === null || this.#w.refusing())
      return this.#durableSlowly(() => decide(a as A, b as B));
    const started = this.#jobStart();
    let result: T;
    try {
      result = decide(a as A, b as B);
    } catch (err) {
      return Promise.reject(err);
    }
    const sync = wal.sync();
    // A write that decides true or false (one per client SET) shares its group's reaction.
    if (typeof result === 'boolean') return this.#shared.wait(sync, started, result) as Promise<T>;
    return sync.then(
      () => {
        this.#w.report();
        return this.#sync1(result, started);
      },
      (err: unknown) => {
        this.#w.report();
        throw err;
      },
    );
  }

  /**
   * When the job running now (a callback of the event loop: currentJob) began
   * to write (performance.now()): the start of each of its writes' wait for the disk. Read once
   * per job, not per write (one of a SET's seven reads of the clocks at pipeline 16; the job's
   * writes are decided within microseconds of each other, their waits take milliseconds).
   */
  #jobStart(): number {
    const job = currentJob();
    if (this.#startedJob !== job) {
      this.#jobStarted = performance.now();
      this.#startedJob = job;
    }
    return this.#jobStarted;
  }

  /** #jobStart's time, and the job (currentJob) it was read in; 0: none. */
  #jobStarted = 0;
  #startedJob = 0;

  /** #durable when the store is closed or refusing writes (it waits until the log can take them). */
  async #durableSlowly<T>(decide: () => T): Promise<T> {
    const wal = this.#wal;
    if (this.#closed || wal === null) {
      throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    }
    // Checked before deciding, so a refused write is never queued to LMDB.
    if (this.#w.refusing()) await this.#w.ensure();
    const started = performance.now();
    const result = decide();
    try {
      await wal.sync();
    } finally {
      this.#w.report();
    }
    return this.#sync1(result, started);
  }

  /** #synced for one write, then its result. */
  #sync1<T>(result: T, started: number): T | Promise<T> {
    const waited = this.#synced([started]);
    return waited === undefined ? result : waited.then(() => result);
  }

  /**
   * After the log group of writes started at `starts` is on disk: waits for LMDB to commit when
   * too much is uncommitted (the promise returned), and observes each write's commit time.
   */
  #synced(starts: readonly number[]): undefined | Promise<unknown> {
    // LMDB commits in queue order: the newest queued write's commit covers these.
    if (this.#uncommittedBytes > MAX_UNCOMMITTED_BYTES) {
      this.#issueAll();
      return this.#lastCommit.catch(() => {}).then(() => this.#observeCommits(starts));
    }
    this.#observeCommits(starts);
    return undefined;
  }

  #observeCommits(starts: readonly number[]): void {
    const m = this.#metrics;
    if (m === null) return;
    const now = performance.now();
    for (const started of starts) m.commitSeconds.observe((now - started) / 1000);
  }

  /**
   * Queues again every write LMDB has not committed (the failed ones stayed queued), with its
   * tombstone index entry and the counters; LMDB is writable again once that commits.
   */
  async #repairLmdb(): Promise<void> {
    const generation = this.#w.health.generation;
    this.#held = false;
    // Every uncommitted write, the newest of each key, into a new batch. A batch still on its
    // way to LMDB subtracts its bytes when it settles, as a failed one did.
    const all = new QueuedWrites();
    for (const batch of this.#issued) for (const [key, v] of batch.writes) all.set(key, v);
    for (const [key, v] of this.#queued) all.set(key, v);
    this.#dropHandOvers();
    this.#issued = [];
    this.#queued = new QueuedWrites(all.size);
    this.#uncommittedBytes -= this.#batchBytes;
    this.#batchWrites = 0;
    this.#batchBytes = 0;
    for (const [key, queued] of all) {
      const raw = queued instanceof QueuedDelete ? null : queued;
      this.#queue(key, raw);
      const rec = raw === null ? null : decodeRecord(raw);
      const tomb = rec?.tombstone ?? false;
      this.#watch(() => (tomb ? this.#tombs.put(key, EMPTY) : this.#tombs.remove(key)));
      // An index entry of an older record may stay behind: the sweeper drops it when due.
      const at = rec && !rec.tombstone ? rec.expiresAt : undefined;
      if (at !== undefined) this.#indexWrite(expiryIndexKey(at, key), at, 1);
    }
    this.#stateDirty = false;
    this.#issueAll();
    this.#givenState = { ...this.#state };
    const probe = this.#meta.put(META_KEY, { ...this.#state });
    try {
      await probe;
      this.#w.health.recovered(generation);
    } catch (err) {
      this.#w.health.fail(err);
    }
  }

  /** The newest record bytes at `key`: a queued (uncommitted) write, else what LMDB holds. */
  #current(key: Buffer): Buffer | undefined {
    // Nothing queued (the common case for reads): no lookup in the overlay.
    if (this.#nothingQueued()) return copyOut(this.#data.getBinaryFast(key));
    const queued = this.#queuedAt(key);
    if (queued !== undefined) return queued instanceof QueuedDelete ? undefined : queued;
    return copyOut(this.#data.getBinaryFast(key));
  }

  #nothingQueued(): boolean {
    return this.#queued.size === 0 && this.#issued.length === 0;
  }

  /** The newest uncommitted write of `key`, or undefined. */
  #queuedAt(key: Buffer): Queued | undefined {
    const queued = this.#queued.get(key);
    if (queued !== undefined) return queued;
    for (let i = this.#issued.length - 1; i >= 0; i--) {
      const issued = this.#issued[i]!.writes.get(key);
      if (issued !== undefined) return issued;
    }
    return undefined;
  }

  /**
   * #current for a write's decision. LMDB's bytes are not copied: they are valid only until the next LMDB read, so the caller
   * must be done with them (and with a record decoded from them) before it reads again. They are
   * the same view of lmdb-js's read buffer as in withRaw (whose end is not the record's), so
   * only the header is decoded from them (decodeRecordHeader).
   */
  #peek(key: Buffer): Buffer | undefined {
    const queued = this.#queuedAt(key);
    if (queued !== undefined) return queued instanceof QueuedDelete ? undefined : queued;
    return this.#data.getBinaryFast(key);
  }

  /**
   * Queues a put (raw) or a delete (null) of `key` to LMDB (in the next batch) and remembers it
   * until committed, so reads see it at once. The caller appends it to the log in the same turn
   * (or is replaying the log). The key's bytes are copied into #queued, so a queued write does
   * not keep the caller's key (often a view of a whole socket read) alive. A write that fills the
   * batch issues it here, with the counters as they stand (stored with its last slice: #give):
   * the caller has counted the write already. (Counted after, the write whose value filled a batch was missing from the
   * stored counters until the next write: after a stop or a crash, for good.)
   */
  #queue(key: Buffer, raw: Buffer | null, hash = hashOf(key), was = Number.NaN, next = Number.NaN) {
    this.#changes++;
    const queued = raw ?? new QueuedDelete();
    this.#queued.set(key, queued, hash, was, next);
    if (this.#held) return;
    const size = queuedSize(key, queued);
    this.#uncommittedBytes += size;
    this.#stateDirty = true;
    this.#batchWrites++;
    this.#batchBytes += size;
    if (this.#batchBytes >= LMDB_BATCH_BYTES) this.#issue();
    else this.#batchTimer ??= setTimeout(() => this.#issue(), LMDB_BATCH_MS);
  }

  /**
   * Any other LMDB write (the tombstone and expiry indexes), queued at once rather than in the
   * batch: they are read from LMDB directly (garbage collection, the sweeper, DBSIZE's count of
   * due keys), without the overlay. A failure makes the store refuse writes until repaired.
   */
  /**
   * Puts (1) or removes (-1) the expiry index entry `ik` (expiry `at`), kept in #indexPending
   * until the write settles.
   */
  #indexWrite(ik: Buffer, at: number, delta: 1 | -1): void {
    if (this.#held) return; // the repair writes the index and counters
    if (this.#w.health.fatal !== null) return; // see #issue
    const id = ik.toString('latin1');
    let e = this.#indexPending.get(id);
    if (e === undefined) {
      e = { at, present: false, ops: 0 };
      this.#indexPending.set(id, e);
    }
    e.present = delta > 0;
    e.ops++;
    const entry = e;
    const done = () => {
      if (--entry.ops === 0) this.#indexPending.delete(id);
    };
    const write = delta > 0 ? this.#expiries.put(ik, EMPTY) : this.#expiries.remove(ik);
    write.then(done, (err: unknown) => {
      done();
      this.#w.health.fail(err);
    });
  }

  #watch(write: () => Promise<unknown>): void {
    if (this.#held) return; // the repair writes the index and counters
    if (this.#w.health.fatal !== null) return; // see #issue
    write().catch((err: unknown) => this.#w.health.fail(err));
  }

  /**
   * Issues the batch, with the counters as they stand after it: from now on #issued answers its
   * reads, and it goes to LMDB after the batches issued before it, a slice per event-loop turn
   * (#give), not in one synchronous run (that stopped the event loop for 7-25 ms at each log
   * rotation). lmdb-js commits the writes of one turn in one transaction, in the order they
   * were made; a batch given over several turns may commit in several, each with the counters of
   * what it holds (HandOver).
   */
  #issue(): void {
    if (this.#batchTimer !== null) clearTimeout(this.#batchTimer);
    this.#batchTimer = null;
    // LMDB failed for good (LmdbHealth.fatal): it gets no transaction again in this process. The
    // writes stay in memory and in the log, which the restart replays.
    if (this.#w.health.fatal !== null) return;
    let batch: IssuedBatch | null = null;
    if (this.#batchWrites > 0) {
      // #queued holds this batch's writes (not while #held: then there is no batch).
      const writes = this.#queued;
      batch = { writes, bytes: this.#batchBytes };
      // The next batch is likely to hold about as many keys.
      this.#queued = new QueuedWrites(writes.size);
      this.#issued.push(batch);
    }
    this.#batchWrites = 0;
    this.#batchBytes = 0;
    let state: MetaState | null = null;
    if (this.#stateDirty && !this.#held) {
      this.#stateDirty = false;
      state = { ...this.#state };
    }
    if (batch === null && state === null) return;
    this.#handing.push(new HandOver(batch, state));
    this.#giveSoon();
  }

  /** Asks for the next turn's slice of #handing (#give). */
  #giveSoon(): void {
    this.#giveTimer ??= setImmediate(() => {
      this.#giveTimer = null;
      this.#give(HANDOVER_SLICE);
    });
  }

  /** #issue, and every issued batch given to LMDB now, in this synchronous run. */
  #issueAll(): void {
    this.#issue();
    this.#give(Number.POSITIVE_INFINITY);
  }

  /**
   * Gives LMDB up to `budget` writes of the issued batches, oldest first, then, while some are
   * left, the counters of what was given so far, and asks for the next turn's slice. A batch all
   * given is settled (#settle) and its counters stored after it.
   */
  #give(budget: number): void {
    while (this.#handing.length > 0) {
      if (this.#givingStopped || this.#w.health.fatal !== null) {
        this.#stopGiving();
        return;
      }
      const h = this.#handing[0]!;
      budget -= h.give(this.#data, budget, this.#givenState);
      if (h.left > 0) {
        const partial = h.partialState();
        if (partial !== null) this.#putState(partial);
        this.#giveSoon();
        return;
      }
      this.#handing.shift();
      if (h.batch !== null) {
        if (h.last !== null) this.#lastCommit = h.last;
        // (A batch with no write left to give, none: its writes were deleted.)
        this.#settle(h.batch, h.last === null ? Promise.resolve() : h.committed());
      }
      if (h.state !== null) {
        this.#putState(h.state);
        this.#givenState = h.state;
      }
      h.settled();
      if (budget <= 0 && this.#handing.length > 0) {
        this.#giveSoon();
        return;
      }
    }
  }

  #putState(state: MetaState): void {
    this.#meta.put(META_KEY, state).catch((err: unknown) => this.#w.health.fail(err));
  }

  /** Gives LMDB nothing more (it closes, or failed for good); whoever waits is told. */
  #stopGiving(): void {
    if (this.#giveTimer !== null) clearImmediate(this.#giveTimer);
    this.#giveTimer = null;
    this.#givingStopped = true;
    for (const h of this.#handing) h.settled();
  }

  /**
   * For the repair, which queues every uncommitted write again: the issued batches are given no
   * further. One partly given settles on what LMDB was given of it (its bytes come off
   * #uncommittedBytes then, as a failed one's do); one not begun has its bytes taken off now.
   */
  #dropHandOvers(): void {
    if (this.#giveTimer !== null) clearImmediate(this.#giveTimer);
    this.#giveTimer = null;
    for (const h of this.#handing) {
      if (h.batch !== null) {
        if (h.last !== null) this.#settle(h.batch, h.committed());
        else this.#uncommittedBytes -= h.batch.bytes;
      }
      h.settled();
    }
    this.#handing = [];
  }

  /**
   * When `done` (the LMDB commit of `batch`) resolves, drops the batch: LMDB holds its writes. On
   * failure it stays (reads keep seeing it; the log has its writes, a repair queues them again
   * and a restart replays them) and health fails.
   */
  #settle(batch: IssuedBatch, done: Promise<unknown>): void {
    this.#stall.trackInOrder('LMDB commit', done).then(
      () => {
        this.#uncommittedBytes -= batch.bytes;
        const at = this.#issued.indexOf(batch);
        if (at < 0) return; // a repair queued its writes again
        this.#issued.splice(at, 1);
        // #issue sized the table after this batch's, for the writes to come. None came: a burst's
        // table is not kept for an idle store (a batch of 100,000 keys left 4.5 MiB).
        if (this.#queued.entries === 0) this.#queued = new QueuedWrites();
        // Commits come in queue order, so older batches are gone, except failed ones: a key this
        // batch committed must not be shadowed by an older write still kept there.
        for (let i = 0; i < at; i++) {
          const older = this.#issued[i]!.writes;
          for (const [key] of batch.writes) older.delete(key);
        }
      },
      (err: unknown) => {
        this.#uncommittedBytes -= batch.bytes;
        this.#w.health.fail(err);
      },
    );
  }

  /**
   * `encoded`, when given, is encodeRecord(record): stored as it is. What the write replaces is
   * known by its kind (kinds.ts) for the counters and indexes. A write that wins on its version
   * alone (above the newest one of its key, which #kinds holds only for keys whose every change
   * this process made: s.hlc is at or above it, and so is its bucket's bound in #newest, which
   * also finds most of a replica's writes that are not above s.hlc; and no base version, which
   * compareRecords ranks first) takes the kind from #kinds when it knows the key; any other write
   * reads the old record
   * (the overlay, then LMDB's lookup: about a quarter of a SET's CPU at pipeline 16,
   * bench/results/2026-12-07-s31-durable-set-cpu.md) and decides against it.
   */
  #applyOne(key: Buffer, record: StoredRecord, onlyIfLive: boolean, encoded?: Buffer): boolean {
    const s = this.#state;
    const newest = compareVersions(record.version, s.hlc) > 0;
    const bucket = this.#newest.bucket(key);
    // Above every stored version of its key: the store's newest, or its bucket's bound.
    const above = newest || this.#newest.above(bucket, record.version);
    // One hash of the key for the recent kinds and the overlay (hashOf: a keyed hash).
    const hash = hashOf(key);
    const known =
      above && !onlyIfLive && record.base === undefined ? this.#kinds.get(key, hash) : undefined;
    let was = known;
    if (was === undefined) {
      // `old` is used only here, and nothing below reads LMDB (see #peek). Its value is never
      // read: the header alone is decoded (with every check of a whole decode).
      const raw = this.#peek(key);
      const old = raw === undefined ? undefined : decodeRecordHeader(raw);
      if (onlyIfLive && (!old || !isLive(old, this.clock.wallNow()))) return false;
      // A stored version out of range (written before versions were checked) loses to any write.
      // The same write's tombstone taking effect later (a copy that landed late elsewhere) is
      // taken: copies of one tombstone become the same bytes (anti-entropy's digests).
      if (old && compareCopies(old, record) >= 0 && isValidVersion(old.version)) return false;
      was = old === undefined ? ABSENT : kindOf(old);
    }
    const bytes = encoded ?? encodeRecord(record);
    const next = kindOf(record);
    // The counters first: #queue may give LMDB the batch, with the counters, at once (see #queue).
    if (was === TOMBSTONE) s.tombstones--;
    else if (was !== ABSENT) s.liveKeys--;
    if (next === TOMBSTONE) {
      s.tombstones++;
      if (was !== TOMBSTONE) this.#watch(() => this.#tombs.put(key, EMPTY));
    } else {
      s.liveKeys++;
      if (was === TOMBSTONE) this.#watch(() => this.#tombs.remove(key));
    }
    this.#indexExpiry(key, was, next);
    if (known !== next) this.#kinds.set(key, next, hash);
    this.#newest.wrote(bucket, record.version, above);
    if (newest) s.hlc = record.version;
    this.#queue(key, bytes, hash, was, next);
    if (this.#wal === null) return true; // the replay: nothing to log, nor a first write
    this.#wal.append(WAL_PUT, key, bytes);
    if (this.#firstWrite !== null) this.#wroteFirst();
    return true;
  }

  /** Calls onFirstWrite, once (outside #applyOne's hot path). */
  #wroteFirst(): void {
    const told = this.#firstWrite;
    this.#firstWrite = null;
    told?.();
  }

  /** Keeps the expiry index and its counter in step with `key` going from kind `old` to `next`. */
  #indexExpiry(key: Buffer, old: Kind, next: Kind): void {
    const was = expiryOf(old);
    const now = expiryOf(next);
    if (was === now) return;
    const s = this.#state;
    if (was !== undefined) {
      s.expiring = (s.expiring ?? 1) - 1;
      this.#indexWrite(expiryIndexKey(was, key), was, -1);
    }
    if (now !== undefined) {
      s.expiring = (s.expiring ?? 0) + 1;
      this.#indexWrite(expiryIndexKey(now, key), now, 1);
    }
  }

  #discardOne(key: Buffer, version: Version): boolean {
    const raw = this.#current(key);
    if (raw === undefined) return false;
    const old = decodeRecord(raw);
    if (compareVersions(old.version, version) !== 0) return false;
    // The counters first, as in #applyOne.
    if (old.tombstone) {
      this.#state.tombstones--;
      this.#watch(() => this.#tombs.remove(key));
    } else {
      this.#state.liveKeys--;
    }
    this.#indexExpiry(key, kindOf(old), ABSENT);
    this.#kinds.set(key, ABSENT);
    this.#queue(key, null, hashOf(key), kindOf(old), ABSENT);
    this.#wal?.append(WAL_DISCARD, key, encodeRecord({ version, tombstone: true, value: EMPTY }));
    return true;
  }

  /**
   * Records in ascending key order within `bounds`, tombstones included (callers that answer
   * clients skip them). Lazy: reads only as many entries as the caller consumes, from one
   * consistent snapshot.
   */
  *scan(bounds: ScanBounds): Generator<ScannedRecord> {
    // An empty end is the empty key (ScanBounds), which lmdb-js takes as no end: LMDB holds no
    // key at or below it (keys are never empty), so it is not asked; the overlay reads it right.
    const range =
      bounds.end?.length === 0
        ? []
        : this.#data.getRange({
            start: bounds.start,
            ...(bounds.end === null ? {} : { end: bounds.end }),
            inclusiveEnd: bounds.inclusiveEnd ?? false,
            exclusiveStart: bounds.exclusiveStart ?? false,
          });
    // Writes LMDB has not committed yet (acknowledged: they are in the log) merged in.
    const overlay = this.#nothingQueued()
      ? []
      : overlayWithin([...this.#issued.map((b) => b.writes), this.#queued], bounds);
    yield* mergeOverlay(range, overlay);
  }

  /** Keys that hold a tombstone, ascending, strictly after `after` when given. */
  *tombstoneKeys(after: Buffer | null = null): Generator<Buffer> {
    const range = this.#tombs.getRange(after ? { start: after, exclusiveStart: true } : {});
    for (const { key } of range) yield key;
  }

  /**
   * A small JSON document other modules keep durable, as stored (unchecked): read it with
   * readStateDoc (state-keys.ts), which checks it against its key's schema.
   */
  readState(name: string): unknown {
    return this.#meta.get(`x:${name}`);
  }

  /**
   * Stores a JSON document; resolves once durable (LMDB-synced, not through the log). Rejects
   * with KV_ERR_STORAGE while the store refuses writes.
   */
  async writeState(name: string, value: unknown): Promise<void> {
    await this.#commit(() => this.#meta.put(`x:${name}`, value));
  }

  /**
   * Runs `fn` (synchronous LMDB writes, e.g. `putSync`) as one LMDB transaction of the shared
   * environment; resolves once it is flushed. Rejects with KV_ERR_STORAGE when the store
   * refuses writes or the commit fails (the store then refuses writes until repaired).
   */
  async transact(fn: () => void): Promise<void> {
    await this.#commit(() => this.#root.transaction(fn));
  }

  /**
   * Resolves once every record write decided so far (applied, deleted, discarded) is on disk:
   * in the log, or, for the writes of a log group that failed (decided, so reads answer them,
   * but dropped from the log), flushed by LMDB. Reads answer writes still on their way there:
   * what a read made before this call returned survives a power cut once it resolves. Rejects
   * with KV_ERR_STORAGE when the store is closed, its disk stalled, the log fails, or LMDB must
   * flush and refuses writes or fails to (ask again once it is repaired).
   */
  async synced(): Promise<void> {
    const wal = this.#wal;
    if (this.#closed || wal === null) {
      throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    }
    if (this.#stall.stalled !== null) throw this.#stall.error();
    await wal.sync();
    // Writes dropped from the log since the last such flush: every one was decided (and queued
    // for LMDB) before its group failed, so before now; LMDB's flush of all queued covers them.
    const dropped = wal.dropped;
    if (dropped === this.#droppedFlushed) return;
    if (this.#w.health.failure !== null) throw this.#w.refusal();
    this.#issueAll();
    await this.#w.flushed(this.#root);
    if (dropped > this.#droppedFlushed) this.#droppedFlushed = dropped;
  }

  /** WriteAheadLog.dropped as of the last LMDB flush that synced() made for them. */
  #droppedFlushed = 0;

  /** Runs an LMDB write outside the log and waits until it is flushed, through failures. */
  async #commit(write: () => PromiseLike<unknown>): Promise<void> {
    if (this.#closed) throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    if (this.#stall.stalled !== null) throw this.#stall.error();
    if (this.#w.refusing()) await this.#w.ensure();
    try {
      const generation = this.#w.health.generation;
      await this.#stall.trackInOrder('LMDB commit', Promise.resolve(write()));
      await this.#w.flushed(this.#root, generation);
    } catch (err) {
      if (err instanceof KvError) throw err;
      this.#w.health.fail(err);
      throw this.#w.refusal();
    }
  }

  /**
   * Gives LMDB the writes waiting for the next batch and resolves once LMDB has flushed them
   * (they are durable already, in the log: this is for tools and tests that read LMDB itself).
   */
  async flush(): Promise<void> {
    if (this.#closed) throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    this.#issueAll();
    await this.#w.flushed(this.#root);
  }

  /**
   * For a node gone idle (its heap trimmer): lets the kinds of the keys written last go when
   * they answered fewer writes than they learnt keys since the last call (RecentKinds.idle);
   * returns the keys and bytes let go, garbage for the next collection.
   */
  idle(): { keys: number; bytes: number } {
    return this.#kinds.idle();
  }

  /**
   * The bytes held by the tables that let a write skip reading the record it replaces (the recent
   * kinds' ring and index, the newest versions' bounds): none in a store not written since it was
   * opened, so that an empty node does not carry them (docs/memory.md).
   */
  writeTableBytes(): { kinds: number; newest: number } {
    return { kinds: this.#kinds.tableBytes, newest: this.#newest.bytes };
  }

  /** Writes of issued batches not given to LMDB yet (they go a slice per event-loop turn). */
  get handingOver(): number {
    let n = 0;
    for (const h of this.#handing) n += h.left;
    return n;
  }

  /**
   * The bytes of the table the writes waiting for the next batch go to (its index, entry ends and
   * key buffer; their records not counted).
   */
  overlayTableBytes(): number {
    return this.#queued.tableBytes;
  }

  /**
   * Counters for metrics and admin: exact, written in the same transactions as the data.
   * `liveKeys` counts every record that is not a tombstone, expired ones the sweeper has not
   * turned into tombstones yet included (see dueCount); `expiring` those of them with an expiry.
   */
  stats(): { liveKeys: number; tombstones: number; expiring: number; sizeBytes: number } {
    let sizeBytes = 0;
    try {
      sizeBytes = statSync(this.#dataFile).size;
    } catch {
      // Not created yet: an empty store.
    }
    const { liveKeys, tombstones, expiring } = this.#state;
    return { liveKeys, tombstones, expiring: expiring ?? 0, sizeBytes };
  }

  /**
   * Waits for every write to be durable, flushes LMDB, drops the log (nothing to replay after a
   * clean stop), then closes the environment. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#w.health.failure !== null) await this.#w.ensure().catch(() => {});
    this.#closed = true;
    this.#w.close();
    this.#stall.close();
    this.#probe?.close();
    this.#unguard();
    await this.#wal?.close();
    if (this.#w.health.failure !== null) {
      // LMDB's close waits for a flush that never comes after a failed commit; the log keeps
      // every acknowledged write for the next start.
      if (this.#batchTimer !== null) clearTimeout(this.#batchTimer);
      this.#batchTimer = null;
      this.#stopGiving();
      void this.#root.close().catch(() => {});
      return;
    }
    this.#issueAll();
    await this.#w.flushed(this.#root).catch(() => {});
    this.#stopGiving();
    await this.#root.close();
  }
}
