// Metrics owned by the storage module.

import { Counter, Gauge, type Registry } from 'prom-client';
import { type HistogramCell, HotHistogram } from '../observability/index.ts';

export interface StorageStatsSource {
  stats(): { liveKeys: number; tombstones: number; sizeBytes: number };
  /** Why writes are refused (a full disk, ...), or null. */
  writeFailure(): string | null;
  /** Non-null while the disk is stalled (see Storage.stalled). */
  stalled(): unknown;
  /** Seconds the oldest disk operation writes wait on has been out (0: none). */
  outstandingSeconds(): number;
}

export interface StorageMetrics {
  /** Observed on every write: an array-backed cell (see observability/hot-metrics.ts). */
  readonly commitSeconds: HistogramCell;
  readonly walReplayed: Gauge;
  /** Counts the store becoming stalled. */
  readonly stalls: Counter;
  /** Counts records that landed late where the store held the key (Storage.#asLanded). */
  readonly lateTombstones: Counter;
  /** One write-ahead log group commit: its sync time, records and bytes. */
  walSynced(seconds: number, records: number, bytes: number): void;
}

/** A hot metric's config for one without labels. */
const UNLABELED = { labelName: '', labelValues: [''] } as const;

/** Buckets of the storage latency histograms, 100 µs to 1 s. */
const SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Registers the storage metrics; gauges read `source` at scrape time. */
export function registerStorageMetrics(
  registry: Registry,
  source: StorageStatsSource,
): StorageMetrics {
  new Gauge({
    name: 'kvstore_storage_keys',
    help: 'Live keys stored on this node (tombstones excluded).',
    registers: [registry],
    collect() {
      this.set(source.stats().liveKeys);
    },
  });
  new Gauge({
    name: 'kvstore_storage_tombstones',
    help: 'Tombstones (deleted keys awaiting collection) stored on this node.',
    registers: [registry],
    collect() {
      this.set(source.stats().tombstones);
    },
  });
  new Gauge({
    name: 'kvstore_storage_size_bytes',
    help: 'Size of the LMDB data file on disk.',
    registers: [registry],
    collect() {
      this.set(source.stats().sizeBytes);
    },
  });
  new Gauge({
    name: 'kvstore_storage_writable',
    help: 'Whether the store takes writes (0 while a full disk, an I/O error or no file descriptors refuse them; reads still work).',
    registers: [registry],
    collect() {
      this.set(source.writeFailure() === null ? 1 : 0);
    },
  });
  new Gauge({
    name: 'kvstore_storage_stalled',
    help: 'Whether the disk stopped answering (1: a log sync or LMDB commit outstanding past --storage-stall-timeout-ms; the node refuses commands, is not ready, and peers route around it).',
    registers: [registry],
    collect() {
      this.set(source.stalled() === null ? 0 : 1);
    },
  });
  new Gauge({
    name: 'kvstore_storage_outstanding_seconds',
    help: 'How long the oldest disk operation writes wait on (a log sync, an LMDB commit) has been outstanding; 0 when none is.',
    registers: [registry],
    collect() {
      this.set(source.outstandingSeconds());
    },
  });
  const stalls = new Counter({
    name: 'kvstore_storage_stalls_total',
    help: 'Times the disk stalled (an operation outstanding past --storage-stall-timeout-ms).',
    registers: [registry],
  });
  const lateTombstones = new Counter({
    name: 'kvstore_storage_late_tombstones_total',
    help: 'Tombstones (and values expired already) that landed where this node held their key later than a tombstone copy can (its timeout plus --max-clock-offset-ms after they took effect: a hint after an outage, a late repair); each is kept a grace from when it landed, on every member (docs/cluster.md).',
    registers: [registry],
  });
  const commitSeconds = new HotHistogram({
    ...UNLABELED,
    name: 'kvstore_storage_commit_duration_seconds',
    help: 'Time from a write being queued (the first write of its event-loop job) to it being durable on disk.',
    buckets: SECONDS,
    registers: [registry],
  }).labels('');
  const walSyncSeconds = new HotHistogram({
    ...UNLABELED,
    name: 'kvstore_wal_sync_duration_seconds',
    help: 'Time to write and fdatasync one group of write-ahead log records.',
    buckets: SECONDS,
    registers: [registry],
  }).labels('');
  const walGroupRecords = new HotHistogram({
    ...UNLABELED,
    name: 'kvstore_wal_group_commit_records',
    help: 'Records made durable by one write-ahead log sync (group commit size).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers: [registry],
  }).labels('');
  const walBytes = new Counter({
    name: 'kvstore_wal_written_bytes_total',
    help: 'Bytes written to the write-ahead log.',
    registers: [registry],
  });
  const walReplayed = new Gauge({
    name: 'kvstore_wal_replayed_records',
    help: 'Write-ahead log records replayed when this node opened its store (0 after a clean stop).',
    registers: [registry],
  });
  return {
    commitSeconds,
    walReplayed,
    stalls,
    lateTombstones,
    walSynced(seconds, records, bytes) {
      walSyncSeconds.observe(seconds);
      walGroupRecords.observe(records);
      walBytes.inc(bytes);
    },
  };
}
