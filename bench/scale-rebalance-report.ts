// The report of bench/scale-rebalance.ts: tables per size, the fitted line, the extrapolation to 1, 10 and 50 GB.

import { DEFAULTS } from '../src/config/index.ts';
import type { PacedResult } from './paced-gets.ts';
import { markdownTable, num } from './table.ts';

/** One data size's join, as measured. Per-node arrays are kvstore-0..3 (3 is the joiner). */
export interface SizeResult {
  /** Keys x (key + value bytes): the data before any overhead. */
  readonly dataBytes: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly loadMs: number;
  /** Load chunks written again after an error. */
  readonly loadRetries: number;
  /** From the DNS change to every member routing by the 4-member settled ring, nothing moving. */
  readonly rebalanceMs: number;
  /** From the DNS change until the members hold 3 copies of each key again. */
  readonly cleanupMs: number;
  /** When each member's CLUSTER first showed its stream done (null: not seen). */
  readonly streamMs: readonly (number | null)[];
  readonly sentBytes: readonly number[];
  readonly sentKeys: readonly number[];
  readonly removedKeys: readonly number[];
  /** kvstore_storage_keys of each member after the clean-up. */
  readonly heldAfter: readonly number[];
  /** CPU of each member during the rebalance, percent of one core. */
  readonly cpuPct: readonly number[];
  readonly before: PacedResult;
  readonly during: PacedResult;
}

export interface ReportInput {
  readonly startedAt: string;
  readonly command: string;
  readonly results: readonly SizeResult[];
  /** Sizes that could not be measured, with the reason. */
  readonly failed: readonly string[];
  readonly rateBytes: number | null;
  readonly getsPerS: number;
  readonly loadBefore: readonly number[];
  readonly loadAfter: readonly number[];
  readonly seconds: number;
}

/** Least squares y = a + b x; with one point (or equal x) the line through the origin. */
export function fitLine(points: readonly [number, number][]): { a: number; b: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  if (n < 2 || sxx === 0) return { a: 0, b: my / mx };
  const b = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / sxx;
  return { a: my - b * mx, b };
}

/** CPU seconds member i used during the rebalance. */
const cpuSeconds = (r: SizeResult, i: number) => (r.cpuPct[i]! / 100) * (r.rebalanceMs / 1000);
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const mb = (bytes: number) => (bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 1);
const sec = (ms: number) => (ms / 1000).toFixed(ms >= 100_000 ? 0 : 1);
const pct = (x: number) => `${Math.round(x)}%`;
const msOf = (us: number) => (us / 1000).toFixed(us >= 100_000 ? 0 : 1);

function sizesTable(results: readonly SizeResult[]): string {
  const head = ['D (MB)', 'keys', 'load s', 'rebalance s', 'streams done s', 'clean-up s'];
  head.push('moved MB', 'moved / D', 'keys sent', 'joiner holds', 'D MB/s', 'moved MB/s');
  head.push('keys sent/s');
  const rows = results.map((r) => {
    const moved = sum(r.sentBytes);
    const streams = r.streamMs.slice(0, 3).filter((x): x is number => x !== null);
    const s = r.rebalanceMs / 1000;
    return [
      mb(r.dataBytes),
      num(r.keys),
      sec(r.loadMs),
      sec(r.rebalanceMs),
      streams.length === 3 ? sec(Math.max(...streams)) : 'n/a',
      sec(r.cleanupMs),
      mb(moved),
      (moved / r.dataBytes).toFixed(2),
      num(sum(r.sentKeys)),
      `${((100 * r.heldAfter[3]!) / r.keys).toFixed(1)}% of keys`,
      (r.dataBytes / 1e6 / s).toFixed(1),
      (moved / 1e6 / s).toFixed(1),
      num(sum(r.sentKeys) / s),
    ];
  });
  return markdownTable([head, ...rows]);
}

function nodesTable(results: readonly SizeResult[]): string {
  const head = ['D (MB)', 'member', 'CPU during', 'sent MB', 'keys sent', 'stream done s'];
  head.push('sent MB/s from 0', 'CPU s per GB of D', 'removed after', 'holds after');
  const rows = results.flatMap((r) =>
    r.cpuPct.map((c, i) => [
      mb(r.dataBytes),
      i === 3 ? 'kvstore-3 (joiner)' : `kvstore-${i}`,
      pct(c),
      mb(r.sentBytes[i]!),
      num(r.sentKeys[i]!),
      i === 3 || r.streamMs[i] === null ? '-' : sec(r.streamMs[i]!),
      i === 3 || !r.streamMs[i] ? '-' : (r.sentBytes[i]! / 1e3 / r.streamMs[i]!).toFixed(1),
      (cpuSeconds(r, i) / (r.dataBytes / 1e9)).toFixed(0),
      num(r.removedKeys[i]!),
      num(r.heldAfter[i]!),
    ]),
  );
  return markdownTable([head, ...rows], 2);
}

function trafficTable(results: readonly SizeResult[]): string {
  const head = ['D (MB)', 'when', 'GETs answered', 'wrong', 'p50 ms', 'p99 ms', 'max ms'];
  const rows = results.flatMap((r) =>
    (['before', 'during'] as const).map((when) => {
      const p = r[when];
      return [
        mb(r.dataBytes),
        when === 'before' ? 'before the join' : 'during the rebalance',
        num(p.answered),
        p.wrong === 0 ? '0' : `${p.wrong} (${p.firstWrong})`,
        msOf(p.latency.p50Us),
        msOf(p.latency.p99Us),
        msOf(p.latency.maxUs),
      ];
    }),
  );
  return markdownTable([head, ...rows], 2);
}

/** Time, bytes moved and the throttle's floor at 1, 10 and 50 GB from the fitted line. */
function extrapolation(results: readonly SizeResult[], rate: number) {
  const fit = fitLine(results.map((r) => [r.dataBytes, r.rebalanceMs / 1000]));
  const movedPerByte =
    sum(results.map((r) => sum(r.sentBytes))) / sum(results.map((r) => r.dataBytes));
  // The busiest sender's share of D: the throttle holds each sender to `rate` bytes/s.
  const senderPerByte = Math.max(
    ...results.map((r) => Math.max(...r.sentBytes.slice(0, 3)) / r.dataBytes),
  );
  // The busiest member's CPU per byte of D over all sizes: the time if each member had a core.
  const cpuPerByte = Math.max(
    ...[0, 1, 2, 3].map(
      (i) => sum(results.map((r) => cpuSeconds(r, i))) / sum(results.map((r) => r.dataBytes)),
    ),
  );
  const minutes = (t: number) => `${num(t)} s (${(t / 60).toFixed(1)} min)`;
  const rows = [1e9, 1e10, 5e10].map((d) => {
    const floor = (senderPerByte * d) / rate;
    return [
      `${d / 1e9} GB`,
      minutes(fit.a + fit.b * d),
      minutes(Math.max(cpuPerByte * d, floor)),
      `${num(floor)} s`,
      `${num((movedPerByte * d) / 1e9)} GB`,
    ];
  });
  const head = [
    'D',
    'time, fitted here',
    'time, a core per member',
    'throttle floor',
    'bytes moved',
  ];
  return { fit, movedPerByte, senderPerByte, cpuPerByte, table: markdownTable([head, ...rows]) };
}

export function renderReport(input: ReportInput): string {
  const { results } = input;
  const rate = input.rateBytes ?? DEFAULTS.rebalanceRateBytes;
  const x = extrapolation(results, rate);
  const rateMBs = 1 / x.fit.b / 1e6;
  const floorPerGb = (x.senderPerByte * 1e9) / rate;
  const cpuBound = x.cpuPerByte * 1e9 > floorPerGb;
  const first = results[0]!;
  const joinerShare = sum(results.map((r) => r.heldAfter[3]!)) / sum(results.map((r) => r.keys));
  return [
    `# Rebalance on a join, by data size (${input.startedAt})`,
    '',
    `\`${input.command}\`: for each size D, a fresh 3-member cluster of real kvstore processes on`,
    'loopback (RF=3, W=2, R=2; DNS discovery as on Kubernetes) holds D bytes of keys and values',
    `(16-byte keys, ${first.valueBytes}-byte values; every member holds all of it), then a 4th member`,
    'joins (its address added to the DNS records: time 0). "rebalance" ends when all four route by',
    'the 4-member settled ring with nothing moving; "streams done" when the last sender finished;',
    '"clean-up" when the old owners have dropped what they no longer own (3 copies of each key left).',
    `Throttle: --rebalance-rate-bytes ${num(rate)} B/s per sending member${input.rateBytes === null ? ' (the default)' : ''}.`,
    `Sizes measured one after the other in this one run; the machine has 2 cores and is shared.`,
    '',
    sizesTable(results),
    '',
    `Load chunks (20,000 keys) written again after an error: ${sum(results.map((r) => r.loadRetries))}. Sizes not measured: ${input.failed.length === 0 ? 'none' : input.failed.join('; ')}.`,
    '',
    'Per member (CPU: percent of one core over the rebalance):',
    '',
    nodesTable(results),
    '',
    `Client traffic: a paced GET load of ${input.getsPerS}/s on one connection to kvstore-1 (open loop:`,
    "latency from each request's scheduled time), every answer checked against the value loaded.",
    '',
    trafficTable(results),
    '',
    `p99 during the rebalance / before: ${results.map((r) => `${mb(r.dataBytes)} MB ${(r.during.latency.p99Us / r.before.latency.p99Us).toFixed(1)}x`).join(', ')}.`,
    '',
    '## Expected vs measured',
    '',
    `- Share of the keys on the joiner: RF/(N+1) = 3/4 = 75.0% expected, ${(100 * joinerShare).toFixed(1)}% measured (consistent hashing, 1024 virtual nodes per member).`,
    `- Bytes moved: the joiner needs 0.75 D; the members sent ${x.movedPerByte.toFixed(2)} D. Every member holding a key under the settled ring streams it to a new owner (src/rebalance/manager.ts: targets are the target owners that are not settled owners), so with 3 holders the joiner receives each of its keys 3 times (2.25 D expected this way; record headers add a little). One sender per key would move a third of this.`,
    '',
    '## Extrapolation (not measured)',
    '',
    `Fitted over the ${results.length} sizes above: rebalance time = ${x.fit.a.toFixed(1)} s + D / ${rateMBs.toFixed(1)} MB/s.`,
    `The fit carries this machine's share of CPU along (2 cores shared by the lead and other helpers). "A core per member" is the busiest member's CPU time per byte of D (${(x.cpuPerByte * 1e9).toFixed(0)} CPU-s per GB, summed over the sizes) times D, or the throttle floor when that is longer: the busiest sender's share (${x.senderPerByte.toFixed(2)} D) at ${(rate / 2 ** 20).toFixed(0)} MiB/s, which no run can beat. Bytes moved scale with D (${x.movedPerByte.toFixed(2)} D).`,
    '',
    x.table,
    '',
    'What bends the line: the data here fits in the page cache (a larger D is read from disk by',
    "the senders' scans and written by the joiner's LMDB, at the disk's speed); loopback has no",
    `network limit (the joiner receives ${x.movedPerByte.toFixed(2)} D: at 1 Gb/s, 125 MB/s, 50 GB would take at least`,
    `${num((x.movedPerByte * 5e10) / 125e6 / 60)} min on its link); ${cpuBound ? `even with a core per member, CPU (${num(x.cpuPerByte * 1e9)} s per GB) stays the bound, not the throttle (${num(floorPerGb)} s per GB)` : `with a core per member the throttle (${num(floorPerGb)} s per GB), not CPU (${num(x.cpuPerByte * 1e9)} s per GB), is the bound`};`,
    'client load competes for the same CPU and disk.',
    '',
    `Load average ${input.loadBefore.join(' ')} -> ${input.loadAfter.join(' ')}; ${num(input.seconds)} s in all.`,
    '',
  ].join('\n');
}
