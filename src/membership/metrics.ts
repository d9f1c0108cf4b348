// Metrics owned by the membership module's rings: the settled epoch and how the settled ring changed.

import { Counter, Gauge, type Registry } from 'prom-client';

export type SettledChange = 'settled' | 'adopted' | 'replaced' | 'handed_off';

export interface RingMetrics {
  /** Counts a settled-ring change by reason. */
  readonly changed: (reason: SettledChange) => void;
}

/**
 * Registers `kvstore_ring_epoch` (read from `epoch` at scrape), `kvstore_ring_held_seconds` (from
 * `heldMs`, RingKeeper.heldMs) and the change counter.
 */
export function registerRingMetrics(
  registry: Registry,
  epoch: () => number,
  heldMs: () => number = () => 0,
): RingMetrics {
  new Gauge({
    name: 'kvstore_ring_epoch',
    help: 'Epoch of the settled ring this node routes by (it only grows).',
    registers: [registry],
    collect() {
      this.set(epoch());
    },
  });
  new Gauge({
    name: 'kvstore_ring_held_seconds',
    help: 'How long this node has held its target ring from settling for holders of its settled ring that are no member here (an address the source lists has not said who it is, or they are listed nowhere, within --unlisted-grace-ms), 0 when it does not: see docs/cluster.md.',
    registers: [registry],
    collect() {
      this.set(heldMs() / 1000);
    },
  });
  const changes = new Counter({
    name: 'kvstore_ring_settled_changes_total',
    help: 'Changes of the settled ring, by reason: settled (the target settled here), adopted (a newer ring a peer reported), replaced (an owner came back with a new data directory and was taken out), handed_off (an owner finished its decommission hand-off and no longer counts as a holder).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const r of ['settled', 'adopted', 'replaced', 'handed_off'] as const)
    changes.labels(r).inc(0);
  return { changed: (reason) => changes.labels(reason).inc() };
}
