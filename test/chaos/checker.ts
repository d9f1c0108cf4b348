// History checker for last-write-wins registers: lost writes, phantom and stale reads, resurrections, convergence.

import { effectiveEnd, formatOp, isAcked, isWrite, type Op } from './history.ts';

export type ViolationKind =
  /** A final read (after the run) shows a value older than an acknowledged write, or absence. */
  | 'lost-write'
  /** A read returned a value no PUT of that key wrote (or wrote only after the read ended). */
  | 'phantom'
  /** A read returned a value (or absence) older than a write acknowledged before it started. */
  | 'stale-read'
  /** A read returned a value deleted by a REMOVE acknowledged before the read started. */
  | 'resurrected'
  /** A read returned a value (SETEX) whose expiry had passed, by every clock, before it started. */
  | 'expired'
  /** A RANGE/PREFIX answer out of order, with duplicates, or with keys outside its bounds. */
  | 'malformed-scan'
  /** After the quiet period, nodes answer differently, or replicas of a key hold different data. */
  | 'divergence'
  /** The cluster did not settle (same ring, all up, no hints) after the heal. */
  | 'unsettled'
  /** A node exited on its own, or did not start again on its data directory. */
  | 'node-failure';

export interface Violation {
  readonly kind: ViolationKind;
  readonly key: string;
  readonly message: string;
  /** The operations that show it (formatOp lines). */
  readonly excerpt: readonly string[];
}

/** One thing a read saw about one key: a value (GET), or presence only (scans), or absence. */
interface Observation {
  readonly op: Op;
  readonly key: string;
  readonly present: boolean;
  /** The value, when the read returns one. */
  readonly value?: string;
}

/** Writes of one key sorted by some time, with running maxima, for binary searches. */
class Timeline {
  readonly #times: number[] = [];
  readonly #best: Op[] = [];
  readonly #bestValue: number[] = [];

  /** `ops` sorted by `time`; remembers, per prefix, the op with the largest `value`. */
  constructor(ops: readonly Op[], time: (o: Op) => number, value: (o: Op) => number) {
    const sorted = [...ops].sort((a, b) => time(a) - time(b));
    let best: Op | null = null;
    for (const o of sorted) {
      if (best === null || value(o) > value(best)) best = o;
      this.#times.push(time(o));
      this.#best.push(best);
      this.#bestValue.push(value(best));
    }
  }

  /** The op with the largest value among those whose time is < t, or null. */
  maxBefore(t: number): { op: Op; value: number } | null {
    let lo = 0;
    let hi = this.#times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#times[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? null : { op: this.#best[lo - 1]!, value: this.#bestValue[lo - 1]! };
  }
}

/** Everything the checks need about one key. */
class KeyIndex {
  readonly writes: Op[];
  /** Acknowledged writes by completion; value = invocation. */
  readonly acked: Timeline;
  readonly ackedRemoves: Timeline;
  /** Writes by invocation; value = effective end. */
  readonly puts: Timeline;
  readonly removes: Timeline;

  constructor(writes: Op[]) {
    this.writes = writes;
    const cmp = (o: Op) => o.cmp!;
    const inv = (o: Op) => o.inv;
    const acked = writes.filter(isAcked);
    this.acked = new Timeline(acked, cmp, inv);
    this.ackedRemoves = new Timeline(
      acked.filter((o) => o.type === 'remove'),
      cmp,
      inv,
    );
    this.puts = new Timeline(
      writes.filter((o) => o.type === 'put'),
      inv,
      effectiveEnd,
    );
    this.removes = new Timeline(
      writes.filter((o) => o.type === 'remove'),
      inv,
      effectiveEnd,
    );
  }
}

/**
 * Checks a history against last-write-wins register semantics, per key. A write w is
 * *superseded* for a read r when some acknowledged write w2 was invoked after w could last take
 * effect (w's reply; never for a write without a reply) and completed before r was invoked:
 * then w2's version is newer than w's and every read quorum after it sees w2 or newer. A read
 * must return a write (or, for absence, a REMOVE or the initial state) invoked before the read
 * ended and not superseded. Failed and indeterminate writes count: they may have been applied.
 * A REMOVE is a write whatever it answered (`NOT_FOUND` too: its tombstone is written all the
 * same) and, through its answer, a read made before that write.
 */
export function checkHistory(
  ops: readonly Op[],
  keySpace: readonly string[],
  opts: CheckOptions = {},
): Violation[] {
  const slack = opts.expirySlackMs ?? EXPIRY_SLACK_MS;
  const byKey = new Map<string, Op[]>();
  const putsByValue = new Map<string, Op>();
  for (const op of ops) {
    if (!isWrite(op)) continue;
    if (op.type === 'put') putsByValue.set(op.value!, op);
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  const indexes = new Map<string, KeyIndex>();
  const indexOf = (key: string): KeyIndex => {
    const ix = indexes.get(key) ?? new KeyIndex(byKey.get(key) ?? []);
    indexes.set(key, ix);
    return ix;
  };
  const violations: Violation[] = [];
  for (const op of ops) {
    if (op.cmp === null) continue;
    for (const obs of observations(op, keySpace, violations)) {
      const v = checkObservation(obs, indexOf(obs.key), putsByValue, slack);
      if (v) violations.push(v);
    }
  }
  return violations;
}

/**
 * Milliseconds a value written with an expiry (SETEX) may be seen past `ttlS` after its write
 * answered, and may be gone before `ttlS` after it was invoked: the expiry is counted from the
 * write's version, which the hybrid clock may put up to --max-clock-offset-ms (500 ms) ahead of
 * the wall clock, and each node judges it by its own clock (the harness's nodes share the host's,
 * but for --clock-jumps, whose checks pass a larger slack).
 */
export const EXPIRY_SLACK_MS = 1000;

export interface CheckOptions {
  /** See EXPIRY_SLACK_MS (the default). */
  readonly expirySlackMs?: number;
}

/**
 * The latest time a write's value may still be read: for a SETEX that answered (OK or an error:
 * either way its version and expiry were made before the answer), its answer + ttl + slack;
 * otherwise never bounded.
 */
function visibleUntil(w: Op, slack: number): number {
  if (w.ttlS === undefined) return Infinity;
  return effectiveEnd(w) + w.ttlS * 1000 + slack;
}

/** The earliest time a SETEX's value may be gone by its expiry (Infinity for a plain PUT). */
function expiresFrom(w: Op, slack: number): number {
  return w.ttlS === undefined ? Infinity : w.inv + w.ttlS * 1000 - slack;
}

/**
 * What a completed operation saw, key by key (GET, REMOVE's read, scans); malformed scans are
 * reported on the way.
 */
function observations(op: Op, keySpace: readonly string[], out: Violation[]): Observation[] {
  switch (op.outcome) {
    case 'value':
      return [{ op, key: op.key, present: true, value: op.read! }];
    case 'not_found':
      return [{ op, key: op.key, present: false }];
    case 'ok':
      // REMOVE answers OK only when its read found a live value.
      return op.type === 'remove' ? [{ op, key: op.key, present: true }] : [];
    case 'keys': {
      const keys = op.keys ?? [];
      const inBounds = (k: string) =>
        op.type === 'prefix' ? k.startsWith(op.key) : op.key <= k && k <= op.end!;
      const bad = keys.filter((k, i) => !inBounds(k) || (i > 0 && keys[i - 1]! >= k));
      if (bad.length > 0) {
        const message = `scan answer has keys out of bounds or order: ${bad.join(' ')}`;
        out.push({ kind: 'malformed-scan', key: bad[0]!, message, excerpt: [formatOp(op)] });
      }
      const seen = new Set(keys);
      return keySpace.filter(inBounds).map((key) => ({ op, key, present: seen.has(key) }));
    }
    default:
      return [];
  }
}

function checkObservation(
  obs: Observation,
  ix: KeyIndex,
  putsByValue: ReadonlyMap<string, Op>,
  slack: number,
): Violation | null {
  const r = obs.op;
  const rEnd = r.cmp!;
  // The newest acknowledged write completed before the read began: everything that could last
  // take effect before its invocation is superseded.
  const latest = ix.acked.maxBefore(r.inv);
  const horizon = latest?.value ?? -Infinity;
  const supersededBy = (end: number): Op | null => {
    if (end >= horizon) return null;
    const remove = ix.ackedRemoves.maxBefore(r.inv);
    return remove && remove.value > end ? remove.op : latest!.op;
  };
  const stale = r.final ? 'lost-write' : 'stale-read';
  if (obs.present && obs.value !== undefined) {
    const w = putsByValue.get(obs.value);
    if (!w || w.key !== obs.key || w.inv > rEnd) {
      const why = !w
        ? 'never written'
        : w.key !== obs.key
          ? `written to ${w.key}`
          : 'written later';
      return violation('phantom', obs, ix, `read ${obs.value}: ${why}`, w ? [w] : []);
    }
    const by = supersededBy(effectiveEnd(w));
    if (!by) {
      if (r.inv <= visibleUntil(w, slack)) return null;
      const message = `read ${obs.value}, expired ${w.ttlS} s after #${w.id} answered`;
      return violation('expired', obs, ix, message, [w]);
    }
    const kind = by.type === 'remove' ? 'resurrected' : stale;
    return violation(kind, obs, ix, `read ${obs.value}, superseded by #${by.id}`, [w, by]);
  }
  if (obs.present) {
    // A scan saw the key: some PUT invoked before the scan ended must not be superseded (nor
    // have expired before the scan began).
    const put = ix.puts.maxBefore(rEnd);
    if (!put) return violation('phantom', obs, ix, 'scan saw a key never written', []);
    if (put.value >= horizon) {
      const live = (w: Op) =>
        w.type === 'put' &&
        w.inv < rEnd &&
        effectiveEnd(w) >= horizon &&
        r.inv <= visibleUntil(w, slack);
      if (ix.writes.some(live)) return null;
      const message = 'scan saw the key, every PUT not superseded had expired';
      return violation('expired', obs, ix, message, [put.op]);
    }
    const by = supersededBy(put.value)!;
    const kind = by.type === 'remove' ? 'resurrected' : stale;
    const message = `scan saw the key, every PUT superseded by #${by.id}`;
    return violation(kind, obs, ix, message, [put.op, by]);
  }
  // Absent: the initial state before any acknowledged write, a REMOVE not superseded, or a
  // SETEX not superseded whose value may have expired before the read ended.
  if (latest === null) return null;
  if (removeExplains(ix, r, horizon)) return null;
  const expired = (w: Op) =>
    w.type === 'put' && effectiveEnd(w) >= horizon && expiresFrom(w, slack) < r.cmp!;
  if (ix.writes.some(expired)) return null;
  return violation(stale, obs, ix, `key absent after #${latest.op.id} was acknowledged`, [
    latest.op,
  ]);
}

/**
 * Whether some REMOVE invoked before `r` ended may have taken effect at or after `horizon` (so
 * absence is not stale). Not `r` itself: a REMOVE's read comes before its own tombstone.
 */
function removeExplains(ix: KeyIndex, r: Op, horizon: number): boolean {
  const best = ix.removes.maxBefore(r.cmp!);
  if (best === null || best.value < horizon) return false;
  if (best.op !== r) return true;
  return ix.writes.some(
    (w) => w !== r && w.type === 'remove' && w.inv < r.cmp! && effectiveEnd(w) >= horizon,
  );
}

function violation(
  kind: ViolationKind,
  obs: Observation,
  ix: KeyIndex,
  message: string,
  related: readonly Op[],
): Violation {
  const r = obs.op;
  // Context: the last writes acknowledged before the read, and the writes concurrent with it.
  const before = ix.writes
    .filter((w) => isAcked(w) && w.cmp! < r.inv)
    .sort((a, b) => a.cmp! - b.cmp!)
    .slice(-3);
  const concurrent = ix.writes
    .filter((w) => w.inv < r.cmp! && effectiveEnd(w) >= r.inv && !isAcked(w))
    .slice(-3);
  const concurrentAcked = ix.writes.filter((w) => isAcked(w) && w.inv < r.cmp! && w.cmp! >= r.inv);
  const lines = new Map<number, string>();
  for (const o of [...related, ...before, ...concurrentAcked.slice(-3), ...concurrent]) {
    lines.set(o.id, formatOp(o));
  }
  const sorted = [...lines].sort((a, b) => a[0] - b[0]).map(([, l]) => `  ${l}`);
  return {
    kind,
    key: obs.key,
    message: `${obs.key}: ${message}`,
    excerpt: [`> ${formatOp(r)}`, ...sorted],
  };
}

/** What one node answered in the final reads: per key a value, null (absent) or an error. */
export interface FinalAnswers {
  readonly node: string;
  readonly values: ReadonlyMap<string, string | null | Error>;
  /** The keys of a RANGE over the whole key space, or the error. */
  readonly range: readonly string[] | Error;
}

/**
 * Convergence after the quiet period: every node gives the same answer for every key, every
 * read succeeded, and every node's RANGE over the key space lists exactly the keys with values.
 */
export function checkConvergence(answers: readonly FinalAnswers[], keys: readonly string[]) {
  const out: Violation[] = [];
  const show = (v: string | null | Error | undefined) =>
    v instanceof Error ? `error ${v.message}` : v === null ? 'absent' : String(v);
  for (const key of keys) {
    const seen = answers.map((a) => `${a.node}=${show(a.values.get(key))}`);
    const distinct = new Set(answers.map((a) => show(a.values.get(key))));
    const failed = answers.some((a) => a.values.get(key) instanceof Error);
    if (distinct.size > 1 || failed) {
      out.push({
        kind: 'divergence',
        key,
        message: `${key}: nodes answer ${failed ? 'with errors' : 'differently'}`,
        excerpt: seen.map((s) => `  ${s}`),
      });
    }
  }
  for (const a of answers) {
    if (a.range instanceof Error) {
      const message = `RANGE on ${a.node} failed: ${a.range.message}`;
      out.push({ kind: 'divergence', key: '*', message, excerpt: [] });
      continue;
    }
    const expected = keys.filter((k) => {
      const v = a.values.get(k);
      return v !== null && v !== undefined && !(v instanceof Error);
    });
    if (a.range.join(' ') !== expected.join(' ')) {
      out.push({
        kind: 'divergence',
        key: '*',
        message: `RANGE on ${a.node} differs from its GETs`,
        excerpt: [`  RANGE: ${a.range.join(' ')}`, `  GETs:  ${expected.join(' ')}`],
      });
    }
  }
  return out;
}

/** A replica's record of a key as the peer scan returns it. */
export interface ReplicaRecord {
  readonly version: string;
  readonly tombstone: boolean;
  readonly value: string;
}

/**
 * Replica convergence: for every key, its owners hold the same live record, or all hold none
 * (a tombstone, or nothing once it was collected). `stores` maps node -> key -> record.
 */
export function checkReplicas(
  stores: ReadonlyMap<string, ReadonlyMap<string, ReplicaRecord>>,
  owners: (key: string) => readonly string[],
  keys: readonly string[],
): Violation[] {
  const out: Violation[] = [];
  for (const key of keys) {
    const held = owners(key).map((n) => {
      const rec = stores.get(n)?.get(key);
      const state = !rec || rec.tombstone ? 'dead' : `${rec.value} @${rec.version}`;
      return {
        n,
        state,
        raw: rec ? `${rec.tombstone ? 'tombstone' : rec.value} @${rec.version}` : 'none',
      };
    });
    if (new Set(held.map((h) => h.state)).size > 1) {
      out.push({
        kind: 'divergence',
        key,
        message: `${key}: replicas hold different records`,
        excerpt: held.map((h) => `  ${h.n}: ${h.raw}`),
      });
    }
  }
  return out;
}
