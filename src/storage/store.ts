// The durable ordered store: LMDB with binary keys (byte order) and versioned records.

import { statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import { guardLmdbRejections, LmdbHealth } from './health.ts';
import { compareVersions, HybridClock, isValidVersion, type Version } from './hlc.ts';
import { checkLmdbFile } from './lmdb-check.ts';
import { registerStorageMetrics, type StorageMetrics } from './metrics.ts';
import { decodeRecord, encodeRecord, type StoredRecord } from './record.ts';
import { type Recovered, WAL_DISCARD, WAL_PUT, WriteAheadLog } from './wal.ts';

export interface StorageOptions {
  /** Directory of the LMDB environment; created when missing. */
  readonly path: string;
  /** This node's name: the node part of the versions it makes. */
  readonly nodeName: string;
  /** Registry for the storage metrics; none are registered when omitted. */
  readonly registry?: Registry;
  /** Size of a write-ahead log segment (default 4 MiB): bounds what a restart replays. */
  readonly walSegmentBytes?: number;
  /** The clock's --max-clock-offset-ms (see HybridClock). */
  readonly maxClockOffsetMs?: number;
  /** Damage before the log's last group: cut the log there and start (else KV_ERR_CORRUPT). */
  readonly walTruncateCorrupt?: boolean;
  /**
   * Writes are refused while the data directory's file system has less free space than this
   * (0: never), so LMDB and the log never run into a full disk under their own writes.
   */
  readonly minFreeBytes?: number;
  /** Called when the store starts refusing writes (with why) and when it takes them again. */
  readonly onWritable?: (failure: string | null) => void;
}

/** What opening the store found in its log, for the node to log. */
export interface RecoveryReport {
  readonly replayed: number;
  readonly torn: Recovered['torn'];
  readonly truncated: Recovered['truncated'];
}

const WAL_SEGMENT_BYTES = 4 * 1024 * 1024;
/**
 * Acknowledged writes LMDB has not committed yet are held in memory (for reads, and in LMDB's
 * queue). Past this many bytes of them a write also waits for LMDB, so a burst of large values
 * cannot pile up behind it.
 */
const MAX_UNCOMMITTED_BYTES = 16 * 1024 * 1024;

/** Bounds of an ordered scan, on raw key bytes. */
export interface ScanBounds {
  /** First key (inclusive unless `exclusiveStart`). */
  readonly start: Buffer;
  /** Last key: exclusive by default, inclusive with `inclusiveEnd`; null scans to the end. */
  readonly end: Buffer | null;
  readonly inclusiveEnd?: boolean;
  readonly exclusiveStart?: boolean;
}

export interface ScannedRecord {
  readonly key: Buffer;
  readonly record: StoredRecord;
  /** The record as stored (encodeRecord bytes): what peers send each other. */
  readonly raw: Buffer;
}

/** One write of a batch. */
export interface Entry {
  readonly key: Buffer;
  readonly record: StoredRecord;
}

interface MetaState {
  liveKeys: number;
  tombstones: number;
  hlc: Version;
}

const META_KEY = 'state';
const EMPTY = Buffer.alloc(0);

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
  readonly #meta: Database<unknown, string>;
  readonly #dataFile: string;
  readonly #metrics: StorageMetrics | null;
  #state: MetaState;
  #closed = false;
  /** Writes queued and not yet committed, by key (latin1 of the key bytes); raw null: delete. */
  readonly #queued = new Map<string, { raw: Buffer | null }>();
  #stateQueued = false;
  /** Null while replaying the log at open (replayed writes are in it already). */
  #wal: WriteAheadLog | null = null;
  /** LMDB failures: while one stands, writes are refused and a repair re-queues what failed. */
  readonly #health: LmdbHealth;
  readonly #unguard: () => void;
  #repairing: Promise<void> | null = null;
  #repairTimer: NodeJS.Timeout | null = null;
  #recovery: RecoveryReport = { replayed: 0, torn: null, truncated: null };
  readonly #onWritable: (failure: string | null) => void;
  #reported: string | null = null;
  readonly #path: string;
  readonly #minFreeBytes: number;
  /** The last free-space check: when, and why space is short (null: enough). */
  #space = { at: 0, short: null as string | null };
  /** True while replayed writes stay in memory only (too little space to give them to LMDB). */
  #held = false;
  /** Bytes of queued writes LMDB has not committed, and the newest one's commit. */
  #uncommittedBytes = 0;
  #lastCommit: Promise<unknown> = Promise.resolve();

  private constructor(opts: StorageOptions, root: RootDatabase) {
    this.#root = root;
    const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
    this.#data = root.openDB<Buffer, Buffer>({ name: 'data', ...binary });
    this.#tombs = root.openDB<Buffer, Buffer>({ name: 'tombstones', ...binary });
    this.#meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'json' });
    this.#dataFile = join(opts.path, 'data.mdb');
    this.#onWritable = opts.onWritable ?? (() => {});
    this.#path = opts.path;
    this.#minFreeBytes = opts.minFreeBytes ?? 0;
    this.#health = new LmdbHealth(opts.path, (failure) => this.#healthChanged(failure));
    this.#unguard = guardLmdbRejections(this.#health);
    this.clock = new HybridClock(opts.nodeName, Date.now, opts.maxClockOffsetMs);
    this.#state = (this.#meta.get(META_KEY) as MetaState | undefined) ?? {
      liveKeys: 0,
      tombstones: 0,
      hlc: { wall: 0, logical: 0, node: opts.nodeName },
    };
    this.clock.observe(this.#state.hlc);
    this.#metrics = opts.registry ? registerStorageMetrics(opts.registry, this) : null;
  }

  /**
   * Opens (or creates) the store at `opts.path` and replays its write-ahead log. Throws
   * KV_ERR_CORRUPT when the LMDB file or the log is damaged (checked before LMDB maps the file),
   * KV_ERR_STORAGE when they cannot be opened. A disk too full to replay into, or to start a log
   * segment on, opens the store refusing writes (see `writeFailure`) rather than failing.
   */
  static open(opts: StorageOptions): Storage {
    const walDir = join(opts.path, 'wal');
    checkLmdbFile(opts.path);
    const recovered = WriteAheadLog.recover(walDir, {
      truncateCorrupt: opts.walTruncateCorrupt ?? false,
    });
    let store: Storage;
    try {
      const root = open({ path: opts.path, noSubdir: false, maxDbs: 8, compression: false });
      store = new Storage(opts, root);
      store.#replay(recovered);
    } catch (err) {
      throw new KvError('KV_ERR_STORAGE', `storage: cannot open ${opts.path}`, { cause: err });
    }
    const m = store.#metrics;
    m?.walReplayed.set(recovered.entries.length);
    store.#recovery = {
      replayed: recovered.entries.length,
      torn: recovered.torn,
      truncated: recovered.truncated,
    };
    store.#wal = WriteAheadLog.open(
      {
        dir: walDir,
        segmentBytes: opts.walSegmentBytes ?? WAL_SEGMENT_BYTES,
        checkpoint: () => store.#checkpoint(),
        ...(m ? { onSync: m.walSynced } : {}),
      },
      recovered,
    );
    return store;
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
    const space = this.#spaceShort();
    if (space !== null) return space;
    const lmdb = this.#health.failure;
    if (lmdb !== null) return `LMDB: ${lmdb}`;
    const wal = this.#wal?.broken;
    return wal ? wal.message.replace(/^storage: /, '') : null;
  }

  /** Applies what the log holds beyond LMDB's last flush (most of it is already there). */
  #replay(recovered: Recovered): void {
    // On a disk too full for them, replayed writes are kept in memory (reads see them) and the
    // repair gives them to LMDB once there is room.
    this.#held = recovered.entries.length > 0 && this.#spaceShort(true) !== null;
    if (this.#held) this.#health.fail(new Error(this.#spaceShort()!));
    for (const e of recovered.entries) {
      const record = decodeRecord(e.payload);
      this.clock.observe(record.version);
      if (e.op === WAL_PUT) this.#applyOne(e.key, record, false);
      else this.#discardOne(e.key, record.version);
    }
  }

  /** The LMDB environment, for stores that share it (hints). */
  get root(): RootDatabase {
    return this.#root;
  }

  /** The record at `key`, tombstones included; undefined when the key was never written. */
  get(key: Buffer): StoredRecord | undefined {
    const raw = this.getRaw(key);
    return raw === undefined ? undefined : decodeRecord(raw);
  }

  /** The stored bytes at `key` (encodeRecord format), or undefined. */
  getRaw(key: Buffer): Buffer | undefined {
    return this.#current(key);
  }

  /**
   * Stores `record` at `key` unless the stored version is the same or newer (last write wins).
   * Resolves once the write is durable: true when it was applied, false when it was older.
   */
  async apply(key: Buffer, record: StoredRecord): Promise<boolean> {
    this.#observe(record.version);
    return this.#durable(() => this.#applyOne(key, record, false)) as Promise<boolean>;
  }

  /** Applies many entries (last write wins each); resolves with how many applied, once durable. */
  async applyBatch(entries: readonly Entry[]): Promise<number> {
    for (const e of entries) this.#observe(e.record.version);
    return this.#durable(() => {
      let n = 0;
      for (const e of entries) if (this.#applyOne(e.key, e.record, false)) n++;
      return n;
    }) as Promise<number>;
  }

  /**
   * Writes a tombstone at `version` only if the key holds a live value (checked and queued as
   * one step: no other write can come between). Resolves once durable: true when a value was
   * deleted.
   */
  async removeIfLive(key: Buffer, version: Version): Promise<boolean> {
    this.#observe(version);
    const record = { version, tombstone: true, value: EMPTY };
    return this.#durable(() => this.#applyOne(key, record, true)) as Promise<boolean>;
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
    }) as Promise<number>;
  }

  /**
   * Runs `decide`, which checks and queues writes synchronously, then waits until the log has
   * everything appended so far on disk. Every write of this process is decided here, on the
   * main thread, against the stored value or a queued newer one, so the decisions are serial;
   * the log and LMDB's writer thread get them in the same order. (A `transaction()` callback
   * would make the writer thread wait for the main thread on every commit.)
   */
  async #durable(decide: () => number | boolean): Promise<number | boolean> {
    const wal = this.#wal;
    if (this.#closed || wal === null) {
      throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    }
    // Checked before deciding, so a refused write is never queued to LMDB.
    if (this.#refusing()) await this.#ensureWritable();
    const started = performance.now();
    const result = decide();
    try {
      await wal.sync();
    } finally {
      this.#report();
    }
    // LMDB commits in queue order: the newest queued write's commit covers this one's.
    if (this.#uncommittedBytes > MAX_UNCOMMITTED_BYTES) await this.#lastCommit.catch(() => {});
    this.#metrics?.commitSeconds.observe((performance.now() - started) / 1000);
    return result;
  }

  #refusing(): boolean {
    return this.#spaceShort() !== null || this.#health.failure !== null || !!this.#wal?.broken;
  }

  /**
   * Why free space is short (below minFreeBytes), or null. Checked at most every 100 ms unless
   * `fresh`: a write is refused from the check after space ran short, at most that late.
   */
  #spaceShort(fresh = false): string | null {
    if (this.#minFreeBytes === 0) return null;
    const now = Date.now();
    if (fresh || now - this.#space.at >= 100) {
      let short: string | null = null;
      try {
        const fs = statfsSync(this.#path);
        const free = fs.bavail * fs.bsize;
        if (free < this.#minFreeBytes) {
          short = `disk full (${free} bytes free in ${this.#path}, below --min-free-disk-bytes ${this.#minFreeBytes})`;
        }
      } catch {
        // Cannot tell: the writes themselves will say.
      }
      this.#space = { at: now, short };
    }
    return this.#space.short;
  }

  /** Repairs what it can; throws KV_ERR_STORAGE (with the reason) if writes are still refused. */
  async #ensureWritable(): Promise<void> {
    if (this.#spaceShort(true) !== null) {
      this.#report();
      throw this.#refusal();
    }
    if (this.#health.failure !== null) {
      this.#repairing ??= this.#repairLmdb().finally(() => {
        this.#repairing = null;
      });
      await this.#repairing;
    }
    // With nothing appended, a sync of a broken log only tries to start a new segment.
    if (this.#health.failure === null) await this.#wal?.sync().catch(() => {});
    this.#report();
    if (this.writeFailure() !== null) throw this.#refusal();
  }

  /** Tells `onWritable` when writes start being refused or accepted. */
  #report(): void {
    const failure = this.writeFailure();
    if ((failure === null) === (this.#reported === null)) return;
    this.#reported = failure;
    this.#onWritable(failure);
  }

  #refusal(): KvError {
    return new KvError(
      'KV_ERR_STORAGE',
      `storage: not writable: ${this.writeFailure() ?? 'LMDB commit failed'}; reads work, writes resume once that is fixed`,
    );
  }

  /**
   * Queues again every write LMDB has not committed (the failed ones stayed queued), with its
   * tombstone index entry and the counters; LMDB is writable again once that commits.
   */
  async #repairLmdb(): Promise<void> {
    const generation = this.#health.generation;
    this.#held = false;
    for (const [k, { raw }] of [...this.#queued]) {
      const key = Buffer.from(k, 'latin1');
      this.#queue(key, raw);
      const tomb = raw !== null && decodeRecord(raw).tombstone;
      this.#watch(() => (tomb ? this.#tombs.put(key, EMPTY) : this.#tombs.remove(key)));
    }
    const probe = this.#meta.put(META_KEY, { ...this.#state });
    try {
      await probe;
      this.#health.recovered(generation);
    } catch (err) {
      this.#health.fail(err);
    }
  }

  /** While writes are refused, retries the repair every second (unref'd). */
  #healthChanged(failure: string | null): void {
    this.#report();
    if (failure !== null && this.#repairTimer === null && !this.#closed) {
      this.#repairTimer = setInterval(() => {
        void this.#ensureWritable().catch(() => {});
      }, 1000).unref();
    } else if (failure === null && this.#repairTimer !== null) {
      clearInterval(this.#repairTimer);
      this.#repairTimer = null;
    }
  }

  /**
   * Resolves once LMDB has flushed every write queued before the call, rejects when a commit
   * fails meanwhile (LMDB's own `flushed` never resolves for a failed transaction).
   */
  async #flushed(generation = this.#health.generation): Promise<void> {
    const ok = await Promise.race([
      Promise.resolve(this.#root.flushed).then(() => true),
      this.#health.failed().then(() => false),
    ]);
    if (!ok || this.#health.generation !== generation) {
      throw new KvError('KV_ERR_STORAGE', `storage: LMDB flush failed: ${this.writeFailure()}`);
    }
  }

  /**
   * The log's checkpoint: resolves once every write queued before the call is flushed in
   * LMDB, waiting through failures for the repair that queues them again. Rejects once the
   * store closes (the segment then stays for the next start to replay).
   */
  async #checkpoint(): Promise<void> {
    for (;;) {
      if (this.#closed && this.#health.failure !== null) throw this.#refusal();
      try {
        if (this.#health.failure === null) return await this.#flushed();
      } catch {
        // A failure while flushing: wait for the repair, then flush again.
      }
      await this.#health.healthy();
    }
  }

  /** The newest record bytes at `key`: a queued (uncommitted) write, else what LMDB holds. */
  #current(key: Buffer): Buffer | undefined {
    // Nothing queued (the common case for reads): no key string to build.
    if (this.#queued.size === 0) return this.#data.getBinary(key);
    const queued = this.#queued.get(key.toString('latin1'));
    if (queued !== undefined) return queued.raw ?? undefined;
    return this.#data.getBinary(key);
  }

  /**
   * Queues a put (raw) or a delete (null) of `key` to LMDB and remembers it until committed,
   * so reads see it at once. The caller appends it to the log in the same turn (or is replaying
   * the log). The key is kept only as its latin1 string (the map key): scans rebuild Buffers
   * from it, which keeps the write path to that one conversion.
   */
  #queue(key: Buffer, raw: Buffer | null): void {
    const k = key.toString('latin1');
    const entry = { raw };
    this.#queued.set(k, entry);
    if (this.#held) return;
    const done = raw === null ? this.#data.remove(key) : this.#data.put(key, raw);
    const size = key.length + (raw?.length ?? 0);
    this.#uncommittedBytes += size;
    this.#lastCommit = done;
    done.then(
      () => {
        this.#uncommittedBytes -= size;
        if (this.#queued.get(k) === entry) this.#queued.delete(k);
      },
      (err: unknown) => {
        // The log has the write and reads keep seeing it (the entry stays queued); a repair
        // queues it again, and a restart replays it.
        this.#uncommittedBytes -= size;
        this.#health.fail(err);
      },
    );
    this.#saveStateSoon();
  }

  /** Any other LMDB write: a failure makes the store refuse writes until repaired. */
  #watch(write: () => Promise<unknown>): void {
    if (this.#held) return; // the repair writes the index and counters
    write().catch((err: unknown) => this.#health.fail(err));
  }

  #applyOne(key: Buffer, record: StoredRecord, onlyIfLive: boolean): boolean {
    const raw = this.#current(key);
    const old = raw === undefined ? undefined : decodeRecord(raw);
    if (onlyIfLive && (!old || old.tombstone)) return false;
    // A stored version out of range (written before versions were checked) loses to any write.
    if (old && compareVersions(old.version, record.version) >= 0 && isValidVersion(old.version))
      return false;
    const encoded = encodeRecord(record);
    this.#queue(key, encoded);
    this.#wal?.append(WAL_PUT, key, encoded);
    const s = this.#state;
    if (old) {
      if (old.tombstone) s.tombstones--;
      else s.liveKeys--;
    }
    if (record.tombstone) {
      s.tombstones++;
      if (!old?.tombstone) this.#watch(() => this.#tombs.put(key, EMPTY));
    } else {
      s.liveKeys++;
      if (old?.tombstone) this.#watch(() => this.#tombs.remove(key));
    }
    if (compareVersions(record.version, s.hlc) > 0) s.hlc = record.version;
    return true;
  }

  #discardOne(key: Buffer, version: Version): boolean {
    const raw = this.#current(key);
    if (raw === undefined) return false;
    const old = decodeRecord(raw);
    if (compareVersions(old.version, version) !== 0) return false;
    this.#queue(key, null);
    this.#wal?.append(WAL_DISCARD, key, encodeRecord({ version, tombstone: true, value: EMPTY }));
    if (old.tombstone) {
      this.#state.tombstones--;
      this.#watch(() => this.#tombs.remove(key));
    } else {
      this.#state.liveKeys--;
    }
    return true;
  }

  /**
   * Writes the counters once per event-loop turn, after that turn's data writes, so they land
   * in the same LMDB transaction (LMDB batches the writes of one turn into one transaction).
   */
  #saveStateSoon(): void {
    if (this.#stateQueued) return;
    this.#stateQueued = true;
    queueMicrotask(() => {
      this.#stateQueued = false;
      this.#watch(() => this.#meta.put(META_KEY, { ...this.#state }));
    });
  }

  /**
   * Records in ascending key order within `bounds`, tombstones included (callers that answer
   * clients skip them). Lazy: reads only as many entries as the caller consumes, from one
   * consistent snapshot.
   */
  *scan(bounds: ScanBounds): Generator<ScannedRecord> {
    const range = this.#data.getRange({
      start: bounds.start,
      ...(bounds.end === null ? {} : { end: bounds.end }),
      inclusiveEnd: bounds.inclusiveEnd ?? false,
      exclusiveStart: bounds.exclusiveStart ?? false,
    });
    // Writes LMDB has not committed yet (acknowledged: they are in the log) merged in.
    const overlay = this.#queued.size === 0 ? [] : this.#overlay(bounds);
    let i = 0;
    for (const { key, value } of range) {
      let shadowed = false;
      while (i < overlay.length) {
        const c = Buffer.compare(overlay[i]!.key, key);
        if (c > 0) break;
        const o = overlay[i++]!;
        if (o.raw !== null) yield { key: o.key, record: decodeRecord(o.raw), raw: o.raw };
        if (c === 0) {
          shadowed = true;
          break;
        }
      }
      if (!shadowed) yield { key, record: decodeRecord(value), raw: value };
    }
    for (; i < overlay.length; i++) {
      const o = overlay[i]!;
      if (o.raw !== null) yield { key: o.key, record: decodeRecord(o.raw), raw: o.raw };
    }
  }

  /** The queued writes within `bounds`, in key order. */
  #overlay(bounds: ScanBounds): { key: Buffer; raw: Buffer | null }[] {
    const out: { key: Buffer; raw: Buffer | null }[] = [];
    for (const [k, e] of this.#queued) {
      const key = Buffer.from(k, 'latin1');
      const c = Buffer.compare(key, bounds.start);
      if (c < 0 || (c === 0 && bounds.exclusiveStart)) continue;
      if (bounds.end !== null) {
        const d = Buffer.compare(key, bounds.end);
        if (d > 0 || (d === 0 && !bounds.inclusiveEnd)) continue;
      }
      out.push({ key, raw: e.raw });
    }
    return out.sort((a, b) => Buffer.compare(a.key, b.key));
  }

  /** Keys that hold a tombstone, ascending, strictly after `after` when given. */
  *tombstoneKeys(after: Buffer | null = null): Generator<Buffer> {
    const range = this.#tombs.getRange(after ? { start: after, exclusiveStart: true } : {});
    for (const { key } of range) yield key;
  }

  /** A small JSON document other modules keep durable (rebalance cursors and the like). */
  readState<T>(name: string): T | undefined {
    return this.#meta.get(`x:${name}`) as T | undefined;
  }

  /**
   * Stores a JSON document; resolves once durable (LMDB-synced, not through the log). Rejects
   * with KV_ERR_STORAGE while the store refuses writes.
   */
  async writeState(name: string, value: unknown): Promise<void> {
    await this.transact(() => {
      this.#meta.putSync(`x:${name}`, value);
    });
  }

  /**
   * Runs `fn` (synchronous LMDB writes, e.g. `putSync`) as one LMDB transaction of the shared
   * environment; resolves once it is flushed. Rejects with KV_ERR_STORAGE when the store
   * refuses writes or the commit fails (the store then refuses writes until repaired).
   */
  async transact(fn: () => void): Promise<void> {
    if (this.#closed) throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    if (this.#refusing()) await this.#ensureWritable();
    try {
      const generation = this.#health.generation;
      await this.#root.transaction(fn);
      await this.#flushed(generation);
    } catch (err) {
      if (err instanceof KvError) throw err;
      this.#health.fail(err);
      throw this.#refusal();
    }
  }

  /** Counters for metrics and admin: exact, written in the same transactions as the data. */
  stats(): { liveKeys: number; tombstones: number; sizeBytes: number } {
    let sizeBytes = 0;
    try {
      sizeBytes = statSync(this.#dataFile).size;
    } catch {
      // Not created yet: an empty store.
    }
    return { liveKeys: this.#state.liveKeys, tombstones: this.#state.tombstones, sizeBytes };
  }

  /**
   * Waits for every write to be durable, flushes LMDB, drops the log (nothing to replay after a
   * clean stop), then closes the environment. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#health.failure !== null) await this.#ensureWritable().catch(() => {});
    this.#closed = true;
    if (this.#repairTimer !== null) clearInterval(this.#repairTimer);
    this.#health.wake();
    this.#unguard();
    await this.#wal?.close();
    if (this.#health.failure !== null) {
      // LMDB's close waits for a flush that never comes after a failed commit; the log keeps
      // every acknowledged write for the next start.
      void this.#root.close().catch(() => {});
      return;
    }
    await this.#flushed().catch(() => {});
    await this.#root.close();
  }
}
