// Metrics owned by the rebalance module: streams, hints, tombstone collection, decommission.

import { Counter, Gauge, type Registry } from 'prom-client';

export interface RebalanceMetrics {
  readonly scanned: Counter;
  readonly sentKeys: Counter;
  readonly sentBytes: Counter;
  readonly active: Gauge;
  readonly waitingMembers: Gauge;
  readonly batchRetries: Counter;
  readonly hintsDelivered: Counter;
  readonly hintsDropped: Counter<'reason'>;
  readonly tombstonesCollected: Counter;
  readonly gcPasses: Counter;
  readonly gcSkipped: Counter;
  readonly cleanedUp: Counter;
}

export function registerRebalanceMetrics(
  registry: Registry,
  hints: { readonly count: number; readonly bytes: number },
): RebalanceMetrics {
  const r = [registry];
  new Gauge({
    name: 'kvstore_hints_stored',
    help: 'Hints (writes kept for unreachable replicas) waiting on this node.',
    registers: r,
    collect() {
      this.set(hints.count);
    },
  });
  new Gauge({
    name: 'kvstore_hints_stored_bytes',
    help: 'Bytes of the hints waiting on this node (keys, records and ids; at most --max-hint-bytes).',
    registers: r,
    collect() {
      this.set(hints.bytes);
    },
  });
  const hintsDropped = new Counter({
    name: 'kvstore_hints_dropped_total',
    help: "Hints not kept or not delivered, by reason (full: over --max-hints or --max-hint-bytes; unwritable: this node's store refused them, its disk full or failing; left: for a member that left; taken_out: made of a record older than this node's drop of the records of a ring it was taken out of; expired: no longer used).",
    labelNames: ['reason'] as const,
    registers: r,
  });
  for (const reason of ['full', 'unwritable', 'expired', 'left', 'taken_out'])
    hintsDropped.labels(reason).inc(0);
  return {
    scanned: new Counter({
      name: 'kvstore_rebalance_keys_scanned_total',
      help: 'Local records examined by rebalance and decommission streams.',
      registers: r,
    }),
    sentKeys: new Counter({
      name: 'kvstore_rebalance_keys_sent_total',
      help: 'Records streamed to new owners (one per receiving replica).',
      registers: r,
    }),
    sentBytes: new Counter({
      name: 'kvstore_rebalance_bytes_sent_total',
      help: 'Bytes of records streamed to new owners.',
      registers: r,
    }),
    active: new Gauge({
      name: 'kvstore_rebalance_active',
      help: '1 while this node streams data for a ring change or a decommission.',
      registers: r,
    }),
    waitingMembers: new Gauge({
      name: 'kvstore_rebalance_waiting_members',
      help: "Members whose storage refuses the batches of this node's stream (disk full): it waits for them.",
      registers: r,
    }),
    batchRetries: new Counter({
      name: 'kvstore_rebalance_batch_retries_total',
      help: 'Stream batches a member did not take (refused, unreachable, too slow), sent again.',
      registers: r,
    }),
    hintsDelivered: new Counter({
      name: 'kvstore_hints_delivered_total',
      help: 'Hints delivered to replicas that came back.',
      registers: r,
    }),
    hintsDropped,
    tombstonesCollected: new Counter({
      name: 'kvstore_tombstones_collected_total',
      help: 'Tombstones removed after the grace period, once no member held anything older.',
      registers: r,
    }),
    gcPasses: new Counter({
      name: 'kvstore_gc_passes_total',
      help: 'Tombstone collection passes run (only while the whole cluster is at rest).',
      registers: r,
    }),
    gcSkipped: new Counter({
      name: 'kvstore_gc_skipped_total',
      help: 'Tombstone collection intervals skipped: some member down, moving data or leaving.',
      registers: r,
    }),
    cleanedUp: new Counter({
      name: 'kvstore_rebalance_keys_removed_total',
      help: 'Records removed from this node after it stopped owning them and the ring settled.',
      registers: r,
    }),
  };
}
