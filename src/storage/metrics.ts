// Metrics owned by the storage module.

import { Gauge, Histogram, type Registry } from 'prom-client';

export interface StorageStatsSource {
  stats(): { liveKeys: number; tombstones: number; sizeBytes: number };
}

export interface StorageMetrics {
  readonly commitSeconds: Histogram;
}

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
  const commitSeconds = new Histogram({
    name: 'kvstore_storage_commit_duration_seconds',
    help: 'Time from a write being queued to it being durable on disk.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  return { commitSeconds };
}
