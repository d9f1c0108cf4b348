// Tombstone collection: remove a delete marker once every replica has it and the grace passed.

import type { Replicas } from '../coordinator/index.ts';
import type { Topology } from '../membership/index.ts';
import type { Logger } from '../observability/index.ts';
import { compareVersions, decodeRecord, type Storage, type Version } from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';

export interface GcOptions {
  readonly self: string;
  readonly storage: Storage;
  readonly topology: Topology;
  readonly replicas: Replicas;
  readonly isUp: (name: string) => boolean;
  /**
   * True while some member (this node included) is decommissioning: its hand-off sends records
   * it read earlier (and retries them until taken), which may be older than a tombstone.
   */
  readonly handingOff: () => boolean;
  readonly graceMs: number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
}

const BATCH = 256;

/**
 * One collection pass. Skipped while data moves between rings or a member hands its data off
 * (a late copy of an older value must meet the tombstone, not an empty key). A tombstone older
 * than the grace period is removed from this node only when every owner of its key is up and
 * answers with the same tombstone or something newer, or with nothing: then no replica holds an
 * older value that could come back. Each node collects its own copy. Returns how many it removed.
 */
export async function collectTombstones(o: GcOptions): Promise<number> {
  if (o.topology.moving || o.handingOff()) return 0;
  o.metrics.gcPasses.inc();
  const ring = o.topology.settled;
  const rf = o.topology.rf(ring);
  const cutoff = Date.now() - o.graceMs;
  let removed = 0;
  let after: Buffer | null = null;
  for (;;) {
    const batch: { key: Buffer; version: Version }[] = [];
    for (const key of o.storage.tombstoneKeys(after)) {
      after = Buffer.from(key);
      const rec = o.storage.get(key);
      if (rec?.tombstone && rec.version.wall < cutoff)
        batch.push({ key: after, version: rec.version });
      if (batch.length === BATCH) break;
    }
    if (batch.length === 0) break;
    const safe = await Promise.all(batch.map((t) => everyReplicaHas(o, ring.owners(t.key, rf), t)));
    removed += await o.storage.discard(batch.filter((_, i) => safe[i]));
    if (batch.length < BATCH) break;
  }
  o.metrics.tombstonesCollected.inc(removed);
  if (removed > 0) o.logger.info({ removed }, 'tombstones collected');
  return removed;
}

async function everyReplicaHas(
  o: GcOptions,
  owners: readonly string[],
  t: { key: Buffer; version: Version },
): Promise<boolean> {
  const others = owners.filter((n) => n !== o.self);
  if (!others.every(o.isUp)) return false;
  try {
    const answers = await Promise.all(others.map((n) => o.replicas.get(n, t.key)));
    return answers.every((raw) => {
      if (raw === null) return true;
      return compareVersions(decodeRecord(raw).version, t.version) >= 0;
    });
  } catch {
    return false;
  }
}
