// The store's options and the shapes it takes and reports.

import type { Registry } from 'prom-client';
import type { StoredRecord } from './record.ts';
import type { Recovered } from './wal.ts';

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
  /**
   * Called once if LMDB failed for good (a sync of its file, or a commit for another reason than
   * a full disk, failed: LmdbHealth.fatal). The store refuses writes from then on and gives LMDB
   * nothing more; only a restart, which reads the file again and replays the log, repairs it.
   * The node exits (docs/storage.md, "When the disk fails").
   */
  readonly onFatal?: (failure: string) => void;
  /**
   * A write-ahead log write or sync, or an LMDB commit, outstanding longer than this is a stalled
   * disk (0, the default: never): see Storage.stalled.
   */
  readonly stallTimeoutMs?: number;
  /**
   * Called when the store becomes stalled (with what hangs and how long it has been out, in ms)
   * and when it answers again (null, and how long the oldest operation was out then).
   */
  readonly onStall?: (what: string | null, outstandingMs: number) => void;
  /**
   * Called once, at the first write of a key (a value or a tombstone) the store takes once open
   * (the log's replay does not count): from then on it holds data that a read may have to fetch
   * from the disk again, once memory pressure took its pages from the page cache.
   */
  readonly onFirstWrite?: () => void;
  /**
   * Memory for the kinds (live, its expiry, or a tombstone) of the records of the keys written
   * last, so that a write to one of them that wins on its version alone reads no old record
   * (default 16 MiB, about 160,000 keys of 16 bytes; 0: none kept).
   */
  readonly recentKindsBytes?: number;
  /**
   * A record that holds no value (a tombstone, or a value expired already) applied more than
   * this after it took effect (its deletedAt: its version's time, or its expiry) landed later
   * than its copies could have (a hint of a failed delete, a REMOVE's tombstone versioned before
   * its read): where the store holds a record at its key, it is stored as a tombstone
   * (expiredForm) with its deletedAt moved to when it landed (its expiry set to then), so that
   * its collection
   * counts from then (the repair window, rebalance/transfer.ts repairWithinMs, counts on a
   * tombstone a read missed having landed within this of its deletedAt). The node sets a
   * tombstone copy's timeout plus --max-clock-offset-ms; absent: never moved.
   */
  readonly lateLandingMs?: number;
}

/** What opening the store found in its log, for the node to log. */
export interface RecoveryReport {
  readonly replayed: number;
  readonly torn: Recovered['torn'];
  readonly truncated: Recovered['truncated'];
}

/** One write of a batch. */
export interface Entry {
  readonly key: Buffer;
  readonly record: StoredRecord;
  /**
   * The record's encodeRecord bytes when the caller has them (a peer's apply, the coordinator's
   * write): stored and logged as they are, instead of encoding the record again.
   */
  readonly raw?: Buffer;
}

/** A long phase of Storage.openAsync, as it starts (a start-up logs it). */
export type OpenPhase =
  /** The LMDB file's meta pages and tree roots (a few reads). */
  | { readonly phase: 'checking the LMDB file' }
  | {
      readonly phase: 'reading the write-ahead log';
      readonly segments: number;
      readonly bytes: number;
    }
  | {
      readonly phase: 'cutting the damaged write-ahead log';
      readonly segment: string;
      readonly offset: number;
    }
  /** After an unclean stop; `bytes`: the snapshot's size, about what the check reads. */
  | { readonly phase: 'checking the LMDB trees'; readonly bytes: number }
  /** LMDB's open (its meta pages read, its map made; rolled back first when `rollback`). */
  | { readonly phase: 'opening LMDB'; readonly rollback: boolean }
  | { readonly phase: 'replaying the write-ahead log'; readonly records: number };
