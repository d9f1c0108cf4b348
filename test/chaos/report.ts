// The chaos run's summary: operations by type and outcome, nemesis events, final state, violations.

import type { Violation } from './checker.ts';
import type { Crash } from './cluster.ts';
import type { FinalReport } from './final.ts';
import type { Op } from './history.ts';
import type { NemesisEvent } from './nemesis.ts';
import type { ChaosOptions } from './options.ts';

/** Violations shown in full; the rest are counted. */
const SHOWN = 12;

export interface RunResult {
  readonly options: ChaosOptions;
  readonly ops: readonly Op[];
  readonly events: readonly NemesisEvent[];
  readonly crashes: readonly Crash[];
  readonly final: FinalReport;
  readonly violations: readonly Violation[];
  readonly seconds: number;
}

/** Crashes and failed node starts are violations too: a node must survive and reopen. */
export function crashViolations(crashes: readonly Crash[]): Violation[] {
  return crashes.map((c) => ({
    kind: 'node-failure' as const,
    key: '*',
    message: `${c.node} exited on its own (${c.exit}) at ${(c.t / 1000).toFixed(1)} s`,
    excerpt: c.stderr
      .trim()
      .split('\n')
      .slice(-8)
      .map((l) => `  ${l}`),
  }));
}

export function formatSummary(r: RunResult): string {
  const o = r.options;
  const out: string[] = [];
  out.push(
    `chaos: seed ${o.seed}, ${o.nodes} nodes (RF=3 W=${o.writeQuorum} R=${o.readQuorum}), ${o.clients} clients, ` +
      `${o.keys} keys, ${o.durationS} s of faults (at most ${o.maxFaults} at once); ` +
      `${r.seconds.toFixed(0)} s in all`,
  );
  out.push('', 'operations (during the run):');
  const during = r.ops.filter((op) => !op.final);
  const outcomes = ['ok', 'value', 'not_found', 'keys', 'error', 'timeout'] as const;
  for (const type of ['put', 'get', 'remove', 'range', 'prefix'] as const) {
    const ofType = during.filter((op) => op.type === type);
    const parts = outcomes
      .map((oc) => [oc, ofType.filter((op) => op.outcome === oc).length] as const)
      .filter(([, n]) => n > 0)
      .map(([oc, n]) => `${oc} ${n}`);
    out.push(`  ${type.padEnd(7)} ${String(ofType.length).padStart(7)}  ${parts.join(', ')}`);
  }
  const errors = new Map<string, number>();
  for (const op of during) {
    if (op.error)
      errors.set(op.error.split(' ')[0]!, (errors.get(op.error.split(' ')[0]!) ?? 0) + 1);
  }
  const errorList = [...errors].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`);
  out.push(
    `  total   ${String(during.length).padStart(7)}  errors by code: ${errorList.join(', ') || 'none'}`,
  );
  const refusals = refusalReasons(during);
  if (refusals) out.push(`  refused UNAVAILABLE by reason: ${refusals}`);
  out.push(`  rate    ${(during.length / o.durationS).toFixed(0)} ops/s`);
  out.push('', 'latency of the operations answered (ms):');
  for (const type of ['put', 'get'] as const) {
    out.push(`  ${type.padEnd(7)} ${latencies(during.filter((op) => op.type === type))}`);
  }
  const slow = slowSpans(r.events);
  if (slow.length > 0) {
    // Gray failures: what a slow link costs the clients of the other nodes, and its own.
    const during_ = (op: Op) => slow.filter((w) => op.inv >= w.from && op.inv < w.to);
    for (const type of ['put', 'get'] as const) {
      const ofType = during.filter((op) => op.type === type && during_(op).length > 0);
      const via = (slowNode: boolean) =>
        ofType.filter((op) => during_(op).some((w) => w.node === op.node) === slowNode);
      out.push(
        `  ${type} while a link was slow, through the other nodes: ${latencies(via(false))}`,
        `  ${type} while a link was slow, through that node:       ${latencies(via(true))}`,
      );
    }
  }

  out.push('', `nemesis (${r.events.length} events; ${faultCounts(r.events)}):`);
  for (const e of r.events) {
    const mark = e.ok ? ' ' : '!';
    out.push(
      `${mark} ${e.t.toFixed(1).padStart(6)} s  ${e.kind.padEnd(14)} ${e.target.padEnd(8)} ${e.detail}`,
    );
  }

  const f = r.final;
  out.push('', 'final state:');
  out.push(`  members ${f.members.join(', ')}`);
  out.push(
    f.settleS === null
      ? '  did not settle after the heal'
      : `  settled (same ring, all up, no hints) ${f.settleS.toFixed(1)} s after the heal`,
  );
  out.push(
    `  replicas differing before the final reads: ${f.divergentBeforeReads} keys ` +
      '(failed writes on some replicas only, or a hint delivered late)',
  );
  out.push(
    f.repairS === null
      ? '  replicas still differ 10 s after the final reads'
      : `  replicas equal ${f.repairS.toFixed(1)} s after the final reads (read repair)`,
  );
  const finals = r.ops.filter((op) => op.final && op.type === 'get');
  const present = new Set(finals.filter((op) => op.outcome === 'value').map((op) => op.key));
  out.push(
    `  final reads: ${finals.length} GETs on ${f.members.length} nodes, ${present.size} keys present`,
  );

  const byKind = new Map<string, number>();
  for (const v of r.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  out.push('');
  if (r.violations.length === 0) {
    out.push(
      'violations: none (no lost writes, no phantom or stale reads, no resurrections; converged)',
    );
    return out.join('\n');
  }
  const kinds = [...byKind].map(([k, n]) => `${k} ${n}`).join(', ');
  out.push(`violations: ${r.violations.length} (${kinds})`);
  for (const v of r.violations.slice(0, SHOWN)) {
    out.push(`- ${v.kind}: ${v.message}`, ...v.excerpt.map((l) => `    ${l}`));
  }
  if (r.violations.length > SHOWN) out.push(`  ... and ${r.violations.length - SHOWN} more`);
  return out.join('\n');
}

/** Events that end a fault or report on one, not faults themselves. */
const UNDOING = new Set([
  'restart',
  'resume',
  'reconnect',
  'heal-split',
  'heal-partial',
  'heal-one-way',
  'readdress',
  'fast-link',
  'clock-back',
  'disk-freed',
  'disk-ok',
  'refilled',
]);

/** `kill 4, power-cut 3, ...`: the faults and membership changes that happened, by kind. */
function faultCounts(events: readonly NemesisEvent[]): string {
  const n = new Map<string, number>();
  for (const e of events) if (e.ok && !UNDOING.has(e.kind)) n.set(e.kind, (n.get(e.kind) ?? 0) + 1);
  return [...n].map(([kind, k]) => `${kind} ${k}`).join(', ') || 'no fault';
}

/** p50, p99 and max of the answered operations' latencies (errors included, timeouts not). */
function latencies(ops: readonly Op[]): string {
  const ms = ops
    .filter((op) => op.cmp !== null && op.outcome !== 'timeout')
    .map((op) => op.cmp! - op.inv)
    .sort((a, b) => a - b);
  if (ms.length === 0) return 'none';
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(0);
  const timeouts = ops.filter((op) => op.outcome === 'timeout').length;
  return `n ${ms.length}, p50 ${at(0.5)}, p99 ${at(0.99)}, max ${at(1)}; ${timeouts} timed out`;
}

/** The spans (run ms) during which a node's link was slow: slow-link to its fast-link. */
function slowSpans(events: readonly NemesisEvent[]): { node: string; from: number; to: number }[] {
  const spans: { node: string; from: number; to: number }[] = [];
  for (const [i, e] of events.entries()) {
    if (e.kind !== 'slow-link' || !e.ok) continue;
    const end = events.slice(i + 1).find((x) => x.kind === 'fast-link' && x.target === e.target);
    spans.push({ node: e.target, from: e.t * 1000, to: (end?.t ?? Infinity) * 1000 });
  }
  return spans;
}

/**
 * The UNAVAILABLE answers counted by the node's reason, its message with names and numbers
 * taken out (`write quorum N/N`, `read refused: settled owners lost`, `no member of this node's
 * settled ring`): how often each refusal rule answered, most first; '' when none.
 */
export function refusalReasons(ops: readonly Op[]): string {
  const counts = new Map<string, number>();
  for (const op of ops) {
    if (op.error !== 'UNAVAILABLE') continue;
    const r = refusalReason(op.detail ?? '');
    counts.set(r, (counts.get(r) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
}

/** One refusal's reason: `replication: read refused: 2 of the key's 3 ...` is `read refused: settled owners lost`. */
export function refusalReason(detail: string): string {
  const text = detail.replace(/^(replication|replica|anti-entropy): /, '');
  if (text === '') return 'unknown';
  const refused = /^(read|write) refused: .*settled owners are recorded lost/.exec(text);
  if (refused) return `${refused[1]} refused: settled owners lost`;
  return text
    .split(/ \(|: /)[0]!
    .replace(/\d+/g, 'N')
    .slice(0, 60);
}
