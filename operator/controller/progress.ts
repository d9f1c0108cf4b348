// Transfer progress in the KVCluster status: a decommission's and the rebalancing nodes' totals.

import type { KVClusterStatus } from '../api/v1alpha1/index.ts';
import type { ProgressView } from './node-admin.ts';
import type { Observed } from './observe.ts';

type Rebalance = NonNullable<KVClusterStatus['rebalance']>;

const whole = (n: number | undefined) => Math.max(0, Math.round(n ?? 0));

/** `51.2% (512/1000 records), ETA 3s`; without a total (an older node): `512 records sent`. */
export function progressText(t: {
  readonly scanned?: number;
  readonly total?: number;
  readonly percent?: number;
  readonly etaSeconds?: number | null;
  readonly sent?: number;
}): string {
  if (t.total === undefined) return `${whole(t.sent)} records sent`;
  const eta = typeof t.etaSeconds === 'number' ? `, ETA ${whole(t.etaSeconds)}s` : '';
  return `${t.percent ?? 0}% (${whole(t.scanned)}/${whole(t.total)} records)${eta}`;
}

/**
 * `; waits for kv-0, which refuses writes (not writable: disk full ...)` for each member whose
 * storage refuses a stream's batches (the node's waitingFor): the stream goes on by itself once
 * it stores again. Empty when it waits for none.
 */
export function waitsText(t: { readonly waitingFor?: Readonly<Record<string, string>> }): string {
  return Object.entries(t.waitingFor ?? {})
    .map(([member, why]) => `; waits for ${member}, which refuses writes (${why})`)
    .join('');
}

/** The progress fields of a decommission's status from the node's transfer. */
export function transferFields(t: ProgressView | null | undefined) {
  if (!t || t.total === undefined) return {};
  return {
    total: whole(t.total),
    percent: Math.min(100, Math.max(0, t.percent ?? 0)),
    ...(typeof t.etaSeconds === 'number' ? { etaSeconds: whole(t.etaSeconds) } : {}),
  };
}

/**
 * The rebalance streams the nodes report running, added up: records scanned against records to
 * scan, and the time left of the slowest. Undefined when no node reports one with a total.
 */
export function rebalanceProgress(o: Observed): Rebalance | undefined {
  let nodes = 0;
  let scanned = 0;
  let total = 0;
  let eta: number | undefined;
  for (const n of o.nodes.values()) {
    const t = n.reachable ? n.view.transfer : null;
    if (t?.kind !== 'rebalance' || t.done || t.total === undefined) continue;
    nodes++;
    scanned += whole(t.scanned);
    total += whole(t.total);
    if (typeof t.etaSeconds === 'number') eta = Math.max(eta ?? 0, whole(t.etaSeconds));
  }
  if (nodes === 0) return undefined;
  const percent = total === 0 ? 0 : Math.min(99.9, Math.floor((scanned / total) * 1000) / 10);
  return { nodes, scanned, total, percent, ...(eta === undefined ? {} : { etaSeconds: eta }) };
}
