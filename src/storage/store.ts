// The durable ordered store: LMDB with binary keys (byte order) and versioned records.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import { compareVersions, HybridClock, type Version } from './hlc.ts';
import { registerStorageMetrics, type StorageMetrics } from './metrics.ts';
import { decodeRecord, encodeRecord, type StoredRecord } from './record.ts';

export interface StorageOptions {
  /** Directory of the LMDB environment; created when missing. */
  readonly path: string;
  /** This node's name: the node part of the versions it makes. */
  readonly nodeName: string;
  /** Registry for the storage metrics; none are registered when omitted. */
  readonly registry?: Registry;
}

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
}

interface MetaState {
  liveKeys: number;
  tombstones: number;
  hlc: Version;
}

const META_KEY = 'state';
const EMPTY = Buffer.alloc(0);

/**
 * One node's store. Reads are synchronous (memory-mapped); writes are batched by LMDB and each
 * `apply()` resolves only once its transaction is flushed to disk, so an acknowledgement built
 * on it means durable. Keys compare as raw bytes. Every write is last-write-wins by version.
 */
export class Storage {
  readonly clock: HybridClock;
  readonly #root: RootDatabase;
  readonly #data: Database<Buffer, Buffer>;
  readonly #meta: Database<MetaState, string>;
  readonly #dataFile: string;
  readonly #metrics: StorageMetrics | null;
  #state: MetaState;
  #closed = false;

  private constructor(opts: StorageOptions, root: RootDatabase) {
    this.#root = root;
    this.#data = root.openDB<Buffer, Buffer>({
      name: 'data',
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    this.#meta = root.openDB<MetaState, string>({ name: 'meta', encoding: 'json' });
    this.#dataFile = join(opts.path, 'data.mdb');
    this.clock = new HybridClock(opts.nodeName);
    this.#state = this.#meta.get(META_KEY) ?? {
      liveKeys: 0,
      tombstones: 0,
      hlc: { wall: 0, logical: 0, node: opts.nodeName },
    };
    this.clock.observe(this.#state.hlc);
    this.#metrics = opts.registry ? registerStorageMetrics(opts.registry, this) : null;
  }

  /** Opens (or creates) the store at `opts.path`. Throws KV_ERR_STORAGE when LMDB cannot. */
  static open(opts: StorageOptions): Storage {
    try {
      const root = open({ path: opts.path, maxDbs: 4, compression: false });
      return new Storage(opts, root);
    } catch (err) {
      throw new KvError('KV_ERR_STORAGE', `storage: cannot open ${opts.path}`, { cause: err });
    }
  }

  /** The record at `key`, tombstones included; undefined when the key was never written. */
  get(key: Buffer): StoredRecord | undefined {
    const raw = this.#data.getBinary(key);
    return raw === undefined ? undefined : decodeRecord(raw);
  }

  /**
   * Stores `record` at `key` unless the stored version is the same or newer (last write wins).
   * Resolves once the write is durable: true when it was applied, false when it was older.
   */
  async apply(key: Buffer, record: StoredRecord): Promise<boolean> {
    return this.#write(key, record, false);
  }

  /**
   * Writes a tombstone at `version` only if the key holds a live value when the transaction
   * runs (atomic check and write). Resolves once durable: true when a value was deleted.
   */
  async removeIfLive(key: Buffer, version: Version): Promise<boolean> {
    return this.#write(key, { version, tombstone: true, value: EMPTY }, true);
  }

  async #write(key: Buffer, record: StoredRecord, onlyIfLive: boolean): Promise<boolean> {
    if (this.#closed) throw new KvError('KV_ERR_STORAGE', 'storage: store is closed');
    this.clock.observe(record.version);
    const started = performance.now();
    let applied: boolean;
    try {
      applied = await this.#root.transaction(() => this.#applyInTxn(key, record, onlyIfLive));
      await this.#root.flushed;
    } catch (err) {
      throw new KvError('KV_ERR_STORAGE', 'storage: write failed', { cause: err });
    }
    this.#metrics?.commitSeconds.observe((performance.now() - started) / 1000);
    return applied;
  }

  #applyInTxn(key: Buffer, record: StoredRecord, onlyIfLive: boolean): boolean {
    const raw = this.#data.getBinary(key);
    const old = raw === undefined ? undefined : decodeRecord(raw);
    if (onlyIfLive && (!old || old.tombstone)) return false;
    if (old && compareVersions(old.version, record.version) >= 0) return false;
    this.#data.putSync(key, encodeRecord(record));
    const s = this.#state;
    if (old) {
      if (old.tombstone) s.tombstones--;
      else s.liveKeys--;
    }
    if (record.tombstone) s.tombstones++;
    else s.liveKeys++;
    if (compareVersions(record.version, s.hlc) > 0) s.hlc = record.version;
    this.#meta.putSync(META_KEY, s);
    return true;
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
    for (const { key, value } of range) {
      yield { key, record: decodeRecord(value) };
    }
  }

  /** Counters for metrics and admin: exact, kept in the same transactions as the data. */
  stats(): { liveKeys: number; tombstones: number; sizeBytes: number } {
    let sizeBytes = 0;
    try {
      sizeBytes = statSync(this.#dataFile).size;
    } catch {
      // Not created yet: an empty store.
    }
    return { liveKeys: this.#state.liveKeys, tombstones: this.#state.tombstones, sizeBytes };
  }

  /** Waits for every write to be durable, then closes the environment. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#root.flushed;
    await this.#root.close();
  }
}
