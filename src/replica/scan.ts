// This node's side of a peer scan: local records in key order, bounded, never an invalid version;
// and the node-wide bound on the records its scans read and merge in one event-loop turn.

import { Counter, Registry } from 'prom-client';
import { inPieces, TurnBudget } from '../net/index.ts';
import { type ScanBounds, type Storage, validWall, withoutValue } from '../storage/index.ts';
import { SCAN_REPLY_BYTES, type ScanReply, type ScanRequest, type WireEntry } from './messages.ts';

/**
 * Records the node's scans read from its storage and merge (ScanWork) in one event-loop turn,
 * over every scan: RANGE and PREFIX this node coordinates and the scans its peers ask of it.
 */
export const SCAN_TURN_RECORDS = 4096;
/** Records a scan reads or merges in one piece, between two looks at the turn's count. */
export const SCAN_PIECE_RECORDS = 256;
/**
 * Scans (a local read or a merge) that go on past their first piece at once; the others wait
 * for one of them to end, in the order they began to wait.
 */
export const SCAN_SLOTS = 4;
/**
 * Entries a coordinator's scan round asks of each member at most (messages.ts scanRoundLimit
 * aside): a member's reply is encoded, and decoded and checked here, in one piece of work each,
 * so it is kept to about half a turn's records. An unpaged RANGE of 9,000 keys takes five rounds.
 */
export const SCAN_ROUND_RECORDS = 2048;
/**
 * A member's scan reply is due once it has read for this share of the peer timeout (localScan):
 * the rest of the timeout is for its queueing, the transfer and a loaded asker.
 */
export const SCAN_REPLY_TIMEOUT_SHARE = 0.25;
/**
 * Entries this node's scan rounds may have asked of other members and not yet decoded, over
 * every scan (at least one round): the replies that arrive in one turn are decoded in it (the
 * peer transport reads a frame whole), and decoding and checking an entry cost about 1.3 times
 * reading or merging a record (a 3-node profile), so this bounds that work to about five turns'
 * records, where before the replies to the dozen scans the reply budget lets run (10,032 entries
 * a member each) came to 240,000. It also bounds the rounds in flight: four of an unpaged RANGE,
 * seven of a `LIMIT 1000` (with two other members each). At half of it (two rounds of an
 * unpaged RANGE) 3 nodes at load 50 answered a quarter of the RANGEs they answered before, their
 * CPU half idle waiting for round trips.
 */
export const SCAN_REMOTE_RECORDS = 4 * SCAN_TURN_RECORDS;

/**
 * What a scan's work is counted as: records read from storage, entries merged, or keys of a
 * scan's reply encoded for its client (server/connection.ts).
 */
export type ScanStage = 'read' | 'merge' | 'reply';

/**
 * The node's scan work, bounded per event-loop turn: a TurnBudget of SCAN_TURN_RECORDS records,
 * shared by every scan of the node, which does its work in pieces of SCAN_PIECE_RECORDS (`run`).
 * Before it, a scan read, merged and encoded its whole range in the turn it began: 20 clients
 * keeping unpaged RANGEs of 9,000 keys in flight held another client's PING for 10-28 s on one
 * node at load 40-60 (now p50 44-287 ms), and a client's INFO read with their RANGEs ran after
 * 720,000 records of them (now 4,096): bench/results/2026-12-07-s31-scan-fairness.md.
 */
export class ScanWork {
  readonly budget: TurnBudget;
  readonly #records: Counter<'stage'>;
  #total = 0;
  /** Scans past their first piece (SCAN_SLOTS). */
  readonly #slots: Admission;
  /** Entries asked of other members and not yet in (SCAN_REMOTE_RECORDS). */
  readonly #remote = new Admission(SCAN_REMOTE_RECORDS);

  constructor(opts: { registry?: Registry; limit?: number; slots?: number } = {}) {
    this.#slots = new Admission(opts.slots ?? SCAN_SLOTS);
    const registry = opts.registry ?? new Registry();
    const waits = counter(
      registry,
      'kvstore_scan_turn_waits_total',
      'Pieces of scans (records read or merged) that waited for a later event-loop turn: the node had read and merged SCAN_TURN_RECORDS (4096) records of scans in this one, or others waited.',
    );
    this.#records = counter(
      registry,
      'kvstore_scan_records_total',
      "Records this node's scans went through, by stage: read (from this node's storage, for its own RANGE/PREFIX or a peer's scan), merge (members' entries merged by this node as the coordinator) or reply (keys of replies of 256 keys or more encoded for clients).",
      ['stage'],
    );
    this.#records.labels('read').inc(0);
    this.#records.labels('merge').inc(0);
    this.#records.labels('reply').inc(0);
    this.budget = new TurnBudget(opts.limit ?? SCAN_TURN_RECORDS, () => waits.inc());
  }

  /** Records read, merged and replied since the node started (INFO's total_scan_records). */
  get records(): number {
    return this.#total;
  }

  /** Counts `n` records of `stage` done in this turn. */
  spend(stage: ScanStage, n: number): void {
    if (n === 0) return;
    this.budget.spend(n);
    this.#records.labels(stage).inc(n);
    this.#total += n;
  }

  /**
   * Runs `piece` until it returns true, in the budget's turns (net/turn-budget.ts inPieces):
   * its first piece in line with every other scan's, the rest once it holds one of SCAN_SLOTS.
   * So a scan of a piece or less (a PREFIX of a few keys) waits only for the pieces ahead of it,
   * and big scans go on a few at a time, in order, each a piece in turn. Round robin over all
   * of them would end each one only about when all of them end: a peer asked for 12 scans at
   * once would answer every one as late as the last (and past the asker's --peer-timeout-ms
   * together, where in order most are early).
   */
  async run(piece: () => boolean): Promise<void> {
    let done = false;
    await inPieces(this.budget, () => {
      done = piece();
      return true;
    });
    if (done) return;
    await this.#slots.take(1);
    try {
      await inPieces(this.budget, piece);
    } finally {
      this.#slots.give(1);
    }
  }

  /**
   * Resolves once `entries` more may be asked of other members (SCAN_REMOTE_RECORDS): a scan's
   * first round in the order asked, its later rounds before every first round that waits (so
   * scans end in the order they began, not all together); call `done` (once) when their
   * replies are in.
   */
  async askRemote(entries: number, first: boolean): Promise<() => void> {
    await this.#remote.take(entries, !first);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#remote.give(entries);
    };
  }
}

/**
 * A count that may not pass `limit` (unless it is 0: one taker always goes), with the takers
 * that wait for room in the order they asked, those that go `ahead` before the others.
 */
class Admission {
  readonly #limit: number;
  #taken = 0;
  readonly #line: { n: number; ahead: boolean; go: () => void }[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Resolves once `n` is taken: at once when there is room and none waits. */
  take(n: number, ahead = false): Promise<void> {
    if (this.#line.length === 0 && this.#fits(n)) {
      this.#taken += n;
      return Promise.resolve();
    }
    return new Promise((go) => {
      const waiter = { n, ahead, go };
      const at = ahead ? this.#line.findIndex((w) => !w.ahead) : -1;
      if (at === -1) this.#line.push(waiter);
      else this.#line.splice(at, 0, waiter);
    });
  }

  give(n: number): void {
    this.#taken -= n;
    while (this.#line.length > 0 && this.#fits(this.#line[0]!.n)) {
      const next = this.#line.shift()!;
      this.#taken += next.n;
      next.go();
    }
  }

  #fits(n: number): boolean {
    return this.#taken === 0 || this.#taken + n <= this.#limit;
  }
}

/** The registry's counter `name`, made once (tests build several ScanWorks on one registry). */
function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: L[] = [],
): Counter<L> {
  const existing = registry.getSingleMetric(name) as Counter<L> | undefined;
  return existing ?? new Counter({ name, help, labelNames, registers: [registry] });
}

/**
 * Scans local storage for a peer: at most `l` entries, and at most SCAN_REPLY_BYTES of keys and
 * records (at least one entry), and whether more remain. With `h`, each record without its value.
 * Also ends, with more, once it has taken `replyMs` (at least one entry): its time scales with
 * the records read, values included even for headers, and on a loaded node one request reading
 * 80 values of 1 MiB outlasted the peer timeout (PREFIX answered UNAVAILABLE); the coordinator
 * pages on from the last key, as for the bounds above.
 * A record whose version is out of range (written before versions were checked) is left out:
 * never sent on.
 *
 * In pieces (ScanWork): each reads at most SCAN_PIECE_RECORDS records from a storage scan of its
 * own, which starts after the last key the piece before read; no read transaction is held from
 * one event-loop turn to the next (lmdb-js keeps a range's snapshot while it is iterated, and
 * one held long keeps LMDB from reusing freed pages). So each piece is one consistent snapshot,
 * and the whole is what paging through the range would read: every key present throughout is
 * there once, in order; one written or deleted meanwhile may or may not be.
 */
export async function localScan(
  storage: Storage,
  req: Omit<ScanRequest, 'i' | 'o'>,
  work: ScanWork = new ScanWork(),
  replyMs = Number.POSITIVE_INFINITY,
): Promise<ScanReply> {
  const started = performance.now();
  const entries: WireEntry[] = [];
  let bytes = 0;
  let more = false;
  let bounds: ScanBounds = {
    start: req.s,
    end: req.e,
    inclusiveEnd: req.ie,
    exclusiveStart: req.xs,
  };
  await work.run(() => {
    let read = 0;
    let last: Buffer | null = null;
    let ended = true;
    for (const { key, raw } of storage.scan(bounds)) {
      const late = entries.length > 0 && performance.now() - started >= replyMs;
      if (entries.length === req.l || bytes >= SCAN_REPLY_BYTES || late) {
        more = true;
        break;
      }
      if (read === SCAN_PIECE_RECORDS) {
        ended = false;
        break;
      }
      read++;
      last = key;
      if (!validWall(raw)) continue;
      // A copy of the header: a view would keep each whole value alive until the reply is sent.
      const header = req.h === true ? withoutValue(raw) : raw;
      const record = header === raw ? raw : Buffer.from(header);
      entries.push([key, record]);
      bytes += key.length + record.length;
    }
    work.spend('read', read);
    if (ended) return true;
    bounds = { ...bounds, start: last!, exclusiveStart: true };
    return false;
  });
  return { e: entries, more };
}
