// RANGE and PREFIX across the cluster: scatter to members, k-way merge, newest version per key.

import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import type { Command, Reply } from '../protocol/index.ts';
import {
  type Replicas,
  SCAN_PIECE_RECORDS,
  SCAN_ROUND_RECORDS,
  SCAN_SLACK,
  type ScanReply,
  type ScanWork,
  scanRoundLimit,
  type WireEntry,
} from '../replica/index.ts';
import {
  compareRecords,
  decodeRecord,
  isLive,
  type ScanBounds,
  type StoredRecord,
} from '../storage/index.ts';
import { applyCursor, successorOfPrefix } from './keyspace.ts';

export interface ScatterOptions {
  readonly topology: Topology;
  readonly replicas: Replicas;
  readonly isUp: (name: string) => boolean;
  readonly readQuorum: number;
  readonly maxScanKeys: number;
  /** The time expiry is judged by (the coordinator's clock, see HybridClock.wallNow). */
  readonly now: () => number;
}

type ScanCommand = Extract<Command, { type: 'range' | 'prefix' }>;

function boundsOf(cmd: ScanCommand): ScanBounds | null {
  if (cmd.type === 'prefix') return { start: cmd.prefix, end: successorOfPrefix(cmd.prefix) };
  if (Buffer.compare(cmd.start, cmd.end) > 0) return null;
  return { start: cmd.start, end: cmd.end, inclusiveEnd: true };
}

/**
 * Answers RANGE/PREFIX as one node holding all data would. Every member is asked for its records
 * (tombstones included) in rounds; a member that had more than it sent bounds the round at its
 * last key, so only keys every member has reported are merged. Per key the newest record wins
 * (compareRecords) and tombstones and expired records are dropped. Missing answers from more than RF - R members is UNAVAILABLE: then
 * some key might have fewer than R replicas heard.
 */
export async function scatterScan(cmd: ScanCommand, o: ScatterOptions): Promise<Reply> {
  const page = cmd.page;
  const full = boundsOf(cmd);
  let bounds = full && applyCursor(full, page.cursor);
  const cap = page.limit ?? o.maxScanKeys;
  const work = o.replicas.scanWork;
  const keys: Buffer[] = [];
  const target = o.topology.target.members;
  // Every round asks as the scan was placed: a member recorded lost since (counted here as
  // present) must still be asked for the directory the ring recorded, and refuse.
  const terms = o.topology.termsNow();
  // A lost member out of the target ring (one that handed its data off) holds nothing the
  // target lacks: it is not asked.
  const lost = o.topology.lost.filter((m) => target.includes(m));
  const members = o.topology
    .allMembers()
    .filter((m) => target.includes(m) || !o.topology.lost.includes(m));
  const rf = Math.min(o.topology.rf(o.topology.settled), o.topology.rf(o.topology.target));
  const tolerated = rf - Math.min(o.readQuorum, rf);
  // A lost member in the target (back empty under its name) is asked, but counts as missing: it
  // holds only what was streamed to it so far.
  let pending = members.filter(o.isUp);
  let missing = members.filter((m) => lost.includes(m) || !o.isUp(m)).length;
  // Entries from members that already sent everything, above the last round's frontier.
  let carried: ScanReply[] = [];
  let rounds = 0;
  while (bounds !== null && keys.length <= cap) {
    checkCoverage(missing, tolerated, members.length);
    const b: ScanBounds = bounds;
    const l = Math.min(
      cap + 1 - keys.length + SCAN_SLACK,
      scanRoundLimit(o.maxScanKeys),
      SCAN_ROUND_RECORDS,
    );
    const req = {
      s: b.start,
      e: b.end,
      ie: b.inclusiveEnd ?? false,
      xs: b.exclusiveStart ?? false,
      l,
      // Versions are all the merge reads: no member sends values.
      h: true,
    };
    // What other members send is decoded in the turn it arrives: a node's rounds ask for so
    // many entries at once at most (SCAN_REMOTE_RECORDS), a scan's later rounds first.
    const others = pending.filter((m) => m !== o.replicas.self).length;
    const asked = others === 0 ? null : await work.askRemote(l * others, rounds++ === 0);
    let results: PromiseSettledResult<ScanReply>[];
    try {
      results = await Promise.allSettled(pending.map((m) => o.replicas.scan(m, req, terms.of(m))));
    } finally {
      asked?.();
    }
    const replies: ScanReply[] = [...carried];
    const stillMore: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        if (!lost.includes(pending[i]!)) missing++;
      } else {
        replies.push(r.value);
        if (r.value.more) stillMore.push(pending[i]!);
      }
    });
    checkCoverage(missing, tolerated, members.length);
    const frontier = roundFrontier(replies);
    const now = o.now();
    await mergeNewest(
      replies,
      frontier,
      (key, rec) => {
        if (isLive(rec, now) && keys.length <= cap) keys.push(key);
      },
      work,
    );
    if (frontier === null) break;
    carried = replies
      .filter((r) => !r.more)
      .map((r) => above(r, frontier))
      .filter((r) => r.e.length > 0);
    bounds = { ...b, start: frontier, exclusiveStart: true };
    pending = stillMore;
  }
  const more = keys.length > cap;
  if (more && page.limit === null) {
    throw new KvError(
      'KV_ERR_LIMIT_EXCEEDED',
      `coordinator: more than ${cap} keys match; page with LIMIT n [CURSOR key]`,
    );
  }
  const out = more ? keys.slice(0, cap) : keys;
  return {
    type: 'keys',
    keys: out,
    paged: page.limit !== null,
    next: more ? out[out.length - 1]! : null,
  };
}

function checkCoverage(missing: number, tolerated: number, total: number): void {
  if (missing > tolerated) {
    throw new KvError(
      'KV_ERR_UNAVAILABLE',
      `replication: scan heard ${total - missing}/${total} members, needs ${total - tolerated}`,
    );
  }
}

/** The smallest last key among replies that had more: keys above it are not complete yet. */
function roundFrontier(replies: readonly ScanReply[]): Buffer | null {
  let frontier: Buffer | null = null;
  for (const r of replies) {
    if (!r.more || r.e.length === 0) continue;
    const last = r.e[r.e.length - 1]![0];
    if (frontier === null || Buffer.compare(last, frontier) < 0) frontier = last;
  }
  return frontier;
}

/** The entries of `r` (keys ascending) above `frontier`, with their decoded records if any. */
function above(r: ScanReply, frontier: Buffer): ScanReply {
  let i = 0;
  while (i < r.e.length && Buffer.compare(r.e[i]![0], frontier) <= 0) i++;
  const e = r.e.slice(i);
  return r.records === undefined
    ? { e, more: false }
    : { e, more: false, records: r.records.slice(i) };
}

/**
 * K-way merge of sorted replies up to `frontier` (all when null), calling `emit` once per key
 * in ascending order with the newest record among the replies; in pieces of SCAN_PIECE_RECORDS
 * entries, counted in the node's scan work per event-loop turn (ScanWork), between which other
 * clients' work goes on. The replies are not changed meanwhile (each round has its own).
 */
async function mergeNewest(
  replies: readonly ScanReply[],
  frontier: Buffer | null,
  emit: (key: Buffer, rec: StoredRecord) => void,
  work: ScanWork,
): Promise<void> {
  const pos = replies.map(() => 0);
  const head = (i: number): WireEntry | undefined => {
    const e = replies[i]!.e[pos[i]!];
    return e && (frontier === null || Buffer.compare(e[0], frontier) <= 0) ? e : undefined;
  };
  /** Merges keys until `SCAN_PIECE_RECORDS` entries are used; true once none is left. */
  const piece = (): boolean => {
    let used = 0;
    try {
      while (used < SCAN_PIECE_RECORDS) {
        let min: Buffer | null = null;
        for (let i = 0; i < replies.length; i++) {
          const e = head(i);
          if (e && (min === null || Buffer.compare(e[0], min) < 0)) min = e[0];
        }
        if (min === null) return true;
        let best: StoredRecord | null = null;
        for (let i = 0; i < replies.length; i++) {
          const e = head(i);
          if (!e?.[0].equals(min)) continue;
          const rec = replies[i]!.records?.[pos[i]!] ?? decodeRecord(e[1]);
          pos[i]!++;
          used++;
          if (best === null || compareRecords(rec, best) > 0) best = rec;
        }
        emit(min, best!);
      }
      return false;
    } finally {
      work.spend('merge', used);
    }
  };
  await work.run(piece);
}
