// Anti-entropy: replicas compare digests of the keys they share and send each other what differs.

import { Counter, Gauge, type Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import type { Logger } from '../observability/index.ts';
import {
  type PeerCall,
  type RemoteVersions,
  type Replicas,
  readScanReply,
  type WireEntry,
} from '../replica/index.ts';
import { keyToken, xxh32 } from '../ring/index.ts';
import {
  compareCopies,
  decodeRecord,
  MAX_KEY_BYTES,
  type Storage,
  validWall,
} from '../storage/index.ts';
import { BatchSizes, tooSlow, transferTimeoutMs } from './transfer.ts';

/**
 * Why: a write can reach some of its replicas only and never the others. A coordinator killed
 * before a failed replica call made its hint (which happens at the peer timeout) leaves the
 * replicas that took the write and those that did not apart, and only a read that happens to ask
 * one holding it repairs the others. Anti-entropy finds such keys without a read.
 *
 * How: the members of the ring at rest compare, pair by pair, the keys both own. The member
 * whose name sorts first walks the keyspace in key order, a range at a time: its own next
 * DIGEST_KEYS keys or DIGEST_BYTES of records, cut short where the other's reach as many. The
 * other answers the range's digest (`antiEntropyDigest`), which
 * sums, in DIGEST_BUCKETS buckets by the top bits of each key's token, a 64-bit hash of the key
 * and its record bytes (replicas in step hold the same bytes); the walker computes its own
 * over the same range. For the buckets that differ, the other sends its records
 * (`antiEntropyEntries`), and the walker sends back the records where its own wins
 * (compareRecords; of two copies of one tombstone, the one that took effect later: compareCopies)
 * or the other has none, and stores those where the other's wins. So only
 * records that exist on an owner move, only between owners, and last write wins: nothing a pass
 * does can bring back a value a delete replaced. Tombstone collection removes a tombstone only
 * once no member holds an older copy (gc.ts), so no member has one left for a pass to spread.
 *
 * Pace: between ranges the walker waits as long as the range took (digest, comparison, repairs),
 * so a pass takes at most half of both members' time while it runs; a range of DIGEST_KEYS keys
 * blocks either event loop for about 2.5 ms (at 1M keys, DIGEST_KEYS 4,096 doubled the p99 of
 * reads beside a pass against 1,024; 256 gained nothing more and made passes 40% longer). A
 * range also ends once its records reach DIGEST_BYTES: 1,024 values of 1 MiB are 1 GiB to read
 * and hash, over a second of either event loop, longer than the peer timeout (every digest
 * request timed out and no pass ever completed), and as much again in memory for the repairs.
 *
 * When: only while the whole cluster is at rest (the tombstone collector's condition: every
 * member up, active, on this node's rings and not moving, no hints), rechecked after every range:
 * a change of rings ends the pass. A pass runs when the cluster comes to rest (after a heal, a
 * restart or a ring change) and then every `intervalMs` (an aborted one again after RETRY_MS),
 * never more than a tenth of the time (the next pass waits nine times the length of the last).
 */

/** Repairs not written back: their records were read longer ago than the repair window. */
const pastWindow = () =>
  new KvError(
    'KV_ERR_EXPIRED',
    'anti-entropy: records read longer ago than the repair window (--tombstone-grace-ms less clock offsets and a tombstone copy timeout) were not written back',
  );

/** Buckets per range: the top 8 bits of a key's token. */
export const DIGEST_BUCKETS = 256;
/** The most keys one `antiEntropyDigest` request scans on the member asked. */
export const DIGEST_KEYS = 1024;
/**
 * Bytes of keys and records after which a range ends (at the key that reaches it, so a range
 * holds at least one key): the walker cuts its own range there, and the member asked cuts the
 * digest it serves there too (a walker of an older version asks for DIGEST_KEYS keys only).
 */
export const DIGEST_BYTES = 4 * 1024 * 1024;
/**
 * The most keys an `antiEntropyEntries` request may make the member asked scan: its ranges come
 * from digests of at most DIGEST_KEYS keys, with room for the writes made since.
 */
const ENTRIES_SCAN_KEYS = 16 * DIGEST_KEYS;
/** Record bytes after which a member stops adding to an `antiEntropyEntries` reply. */
const ENTRIES_REPLY_BYTES = 4 * 1024 * 1024;
/** Most bytes of records in one `apply` of the repairs (halved per timeout, see BatchSizes). */
const APPLY_BATCH_BYTES = 256 * 1024;
/**
 * Every anti-entropy request is a bulk transfer: on the peer's large lane (never ahead of the
 * small requests clients wait on). An `antiEntropyEntries` request gets time for a full reply
 * (ENTRIES_REPLY_BYTES) on top of the peer timeout.
 */
const BULK = { bulk: true } as const;
/** Longest ring id and member name read from a request. */
const MAX_ID_CHARS = 256;
const BITMAP_BYTES = DIGEST_BUCKETS / 8;
/** How often the at-rest condition is looked at. */
const TICK_MS = 1000;
/** When a pass was aborted while the cluster stayed at rest, the next is due this much later. */
const RETRY_MS = 30_000;

export const ANTI_ENTROPY_METHODS = {
  digest: 'antiEntropyDigest',
  entries: 'antiEntropyEntries',
} as const;

/** `antiEntropyDigest`: the asker's name and target ring, and where the range starts. */
export interface DigestRequest {
  /** The asker's target ring id: a member routing by another refuses (KV_ERR_UNAVAILABLE). */
  readonly r: string;
  /** The asker: only keys whose owners include it and the member asked are counted. */
  readonly p: string;
  /** The range starts after this key; null: at the first key. */
  readonly a: Buffer | null;
  /** The range ends at this key (inclusive); null: at the end of the keyspace. */
  readonly e: Buffer | null;
  /** The most keys to scan, 1..DIGEST_KEYS: the range is cut short after that many. */
  readonly l: number;
}
export interface DigestReply {
  /** DIGEST_BUCKETS pairs of uint32 (big-endian): the sums of the two hash lanes. */
  readonly d: Buffer;
  /**
   * The last key the digest covers (inclusive): the request's `e`, or an earlier key where the
   * limit cut the range short; null only for a range to the end of the keyspace.
   */
  readonly end: Buffer | null;
}

/** `antiEntropyEntries`: the records of some buckets of a range, in key order. */
export interface EntriesRequest {
  readonly r: string;
  readonly p: string;
  /** Exclusive start, or null. */
  readonly a: Buffer | null;
  /** Inclusive end, or null for the end of the keyspace. */
  readonly e: Buffer | null;
  /** Bitmap of DIGEST_BUCKETS bits: the buckets wanted (bucket n is bit 7 - n % 8 of byte n / 8). */
  readonly b: Buffer;
}

export interface AntiEntropyMetrics {
  readonly passes: Counter<'result'>;
  readonly keys: Counter;
  readonly buckets: Counter;
  readonly repaired: Counter<'direction'>;
  readonly lastCompleted: Gauge;
  readonly lastSeconds: Gauge;
  readonly interval: Gauge;
}

export function registerAntiEntropyMetrics(registry: Registry): AntiEntropyMetrics {
  const r = [registry];
  /** A counter with every value of its one label present from the start. */
  const labelled = <L extends string>(name: string, help: string, label: L, values: string[]) => {
    const c = new Counter({ name, help, labelNames: [label] as const, registers: r });
    for (const v of values) c.labels(v).inc(0);
    return c;
  };
  const passes = labelled(
    'kvstore_anti_entropy_passes_total',
    'Anti-entropy passes started here, by result (completed; aborted: the cluster stopped being at rest or a member failed).',
    'result',
    ['completed', 'aborted'],
  );
  const repaired = labelled(
    'kvstore_anti_entropy_repaired_total',
    "Records anti-entropy moved: pushed (this node sent its newer record to a replica), pulled (stored a replica's newer record).",
    'direction',
    ['pushed', 'pulled'],
  );
  return {
    passes,
    repaired,
    keys: new Counter({
      name: 'kvstore_anti_entropy_keys_compared_total',
      help: 'Local records hashed into anti-entropy digests (for passes of this node and of the members that asked it).',
      registers: r,
    }),
    buckets: new Counter({
      name: 'kvstore_anti_entropy_buckets_mismatched_total',
      help: 'Digest buckets whose records differed between this node and a replica.',
      registers: r,
    }),
    interval: new Gauge({
      name: 'kvstore_anti_entropy_interval_seconds',
      help: 'The configured time between anti-entropy passes at rest (--anti-entropy-interval-ms); 0: off.',
      registers: r,
    }),
    lastSeconds: new Gauge({
      name: 'kvstore_anti_entropy_last_pass_seconds',
      help: 'How long the last completed anti-entropy pass of this node took.',
      registers: r,
    }),
    lastCompleted: new Gauge({
      name: 'kvstore_anti_entropy_last_completed_timestamp_seconds',
      help: 'When this node last completed an anti-entropy pass (0: never since it started).',
      registers: r,
    }),
  };
}

export interface AntiEntropyOptions {
  readonly self: string;
  readonly storage: Storage;
  readonly topology: Topology;
  /** Applies repairs (to this node and to others). */
  readonly replicas: Replicas;
  /** Sends the two anti-entropy requests to a member by name. */
  readonly call: PeerCall;
  /** Checks the versions of records pulled from other members. */
  readonly versions: RemoteVersions;
  /** True while the whole cluster is at rest (Topology.atRest). */
  readonly quiet: () => boolean;
  /**
   * A count that grows each time a member is called down or found restarted
   * (Membership.interruptions): a pass is due once the cluster is at rest after it, even when
   * the member was back before a look at the at-rest condition saw it gone.
   */
  readonly interruptions: () => number;
  /** Time between passes while at rest (--anti-entropy-interval-ms); 0: no passes at all. */
  readonly intervalMs: number;
  /**
   * The peer request timeout: a repair batch may take this plus its bytes, an entries request
   * this plus a full reply's (transfer.ts).
   */
  readonly timeoutMs: number;
  /**
   * How long after a range's records were read its repairs may still land (repairWithinMs,
   * --tombstone-grace-ms less clock offsets and a tombstone copy's timeout): a record pushed or
   * pulled later could land after a tombstone written over it since was collected. Pushes carry
   * the deadline; none is sent, nor a pulled one stored, past it (the pass ends, and is tried
   * again). Absent: no bound.
   */
  readonly repairWithinMs?: number;
  readonly metrics: AntiEntropyMetrics;
  readonly logger: Logger;
}

/** What one pass did. */
interface PassResult {
  readonly completed: boolean;
  /** Members compared with to the end of the keyspace. */
  readonly peers: number;
  readonly mismatched: number;
  readonly pushed: number;
  readonly pulled: number;
}

/** The sums of one range: two uint32 lanes per bucket. */
type Sums = Uint32Array;

export class AntiEntropy {
  readonly #o: AntiEntropyOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<PassResult> | null = null;
  #stopped = false;
  #wasQuiet = false;
  /** Set when the cluster came to rest: a pass is due at once (cleared as one starts). */
  #cameToRest = false;
  /** interruptions() when the last pass started: a pass is due at rest once it grew. */
  #interruptionsSeen = 0;
  /** When the next pass is due by the interval (ms since the epoch). */
  #nextAt = 0;
  /** The earliest the next pass may start: nine times the last one's length after it ended. */
  #earliest = 0;
  /** Bytes of the next repair batch to each member. */
  readonly #sizes = new BatchSizes(APPLY_BATCH_BYTES, 1);

  constructor(opts: AntiEntropyOptions) {
    this.#o = opts;
    opts.metrics.interval.set(Math.max(0, opts.intervalMs) / 1000);
  }

  /** The peer methods this node serves to the members that walk their shared keys with it. */
  methods(): Record<string, (body: unknown) => unknown> {
    return {
      [ANTI_ENTROPY_METHODS.digest]: (body) => this.#serveDigest(readDigestRequest(body)),
      [ANTI_ENTROPY_METHODS.entries]: (body) => this.#serveEntries(readEntriesRequest(body)),
    };
  }

  /** Starts the passes (none with intervalMs 0). */
  start(): void {
    if (this.#o.intervalMs <= 0 || this.#timer !== null) return;
    this.#timer = setInterval(() => this.#tick(), Math.min(TICK_MS, this.#o.intervalMs));
    this.#timer.unref();
  }

  /** Stops the timer and ends a running pass after its current range. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }

  #tick(): void {
    const quiet = this.#o.quiet();
    // Also while a pass still runs: it saw the cluster leave rest, and ends after its range.
    // A member down and back between two looks (or restarted before probes called it down)
    // left rest too, though no look saw it.
    const interrupted = this.#o.interruptions() !== this.#interruptionsSeen;
    if (quiet && (!this.#wasQuiet || interrupted)) this.#cameToRest = true;
    this.#wasQuiet = quiet;
    const now = Date.now();
    if (!quiet || this.#running !== null || now < this.#earliest) return;
    if (this.#cameToRest || now >= this.#nextAt) void this.#runPass();
  }

  /**
   * One pass: with every member whose name sorts after this node's, walks the keys both own and
   * repairs what differs. Resolves when done or aborted (the cluster left rest, a member failed
   * to answer); never rejects.
   */
  #runPass(): Promise<PassResult> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #pass(): Promise<PassResult> {
    const { topology, self, metrics, logger } = this.#o;
    const started = Date.now();
    const ring = topology.target;
    const unchanged = () =>
      !this.#stopped && !topology.moving && topology.target === ring && this.#o.quiet();
    const totals = { completed: false, peers: 0, mismatched: 0, pushed: 0, pulled: 0 };
    if (!unchanged()) return totals;
    this.#cameToRest = false;
    this.#interruptionsSeen = this.#o.interruptions();
    try {
      const peers = ring.members.filter((n) => n > self);
      for (const peer of peers) {
        if (!(await this.#walk(peer, unchanged, totals))) break;
        totals.peers++;
      }
      totals.completed = totals.peers === peers.length;
    } catch (err) {
      logger.warn({ err }, 'anti-entropy pass failed');
    }
    const ended = Date.now();
    // At most a tenth of the time, whatever makes a pass due.
    this.#earliest = ended + 9 * (ended - started);
    // An aborted pass (a member did not answer) is tried again sooner, unless rest ends first.
    const { intervalMs } = this.#o;
    this.#nextAt = ended + (totals.completed ? intervalMs : Math.min(intervalMs, RETRY_MS));
    metrics.passes.labels(totals.completed ? 'completed' : 'aborted').inc();
    if (totals.completed) {
      metrics.lastCompleted.set(ended / 1000);
      metrics.lastSeconds.set((ended - started) / 1000);
    }
    const fields = {
      ms: ended - started,
      peers: totals.peers,
      buckets: totals.mismatched,
      pushed: totals.pushed,
      pulled: totals.pulled,
    };
    if (totals.pushed + totals.pulled > 0) {
      logger.info(fields, 'anti-entropy repaired replicas');
    } else {
      const msg = totals.completed ? 'anti-entropy pass completed' : 'anti-entropy pass aborted';
      logger.debug(fields, msg);
    }
    return totals;
  }

  /** Walks every range shared with `peer`; false when the pass must end (rings changed). */
  async #walk(
    peer: string,
    unchanged: () => boolean,
    totals: { mismatched: number; pushed: number; pulled: number },
  ): Promise<boolean> {
    const { topology, self, call } = this.#o;
    const r = topology.target.id;
    let after: Buffer | null = null;
    for (;;) {
      const began = performance.now();
      // The range: this node's next DIGEST_KEYS keys (or DIGEST_BYTES), cut short where the
      // peer's reach as many.
      const mine = this.#sums(peer, after, null, DIGEST_KEYS, DIGEST_BYTES);
      const req: DigestRequest = { r, p: self, a: after, e: mine.last, l: DIGEST_KEYS };
      let reply: DigestReply;
      try {
        reply = readDigestReply(await call(peer, ANTI_ENTROPY_METHODS.digest, req, BULK));
        checkRangeEnd(reply.end, after, mine.last);
      } catch (err) {
        // A member of an older version (a rolling upgrade) does not know the method: not news.
        const older = err instanceof KvError && err.code === 'KV_ERR_UNKNOWN_COMMAND';
        this.#o.logger[older ? 'debug' : 'warn']({ peer, err }, 'anti-entropy digest not answered');
        return false;
      }
      if (!unchanged()) return false;
      const ours = digestBytes(
        sameBound(reply.end, mine.last)
          ? mine.sums
          : this.#sums(peer, after, reply.end, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY)
              .sums,
      );
      const bitmap = Buffer.alloc(BITMAP_BYTES);
      let differ = 0;
      for (let b = 0; b < DIGEST_BUCKETS; b++) {
        if (ours.compare(reply.d, b * 8, b * 8 + 8, b * 8, b * 8 + 8) !== 0) {
          bitmap[b >> 3]! |= 0x80 >> (b & 7);
          differ++;
        }
      }
      if (differ > 0) {
        this.#o.metrics.buckets.inc(differ);
        totals.mismatched += differ;
        const done = await this.#reconcile(peer, r, after, reply.end, bitmap, unchanged, totals);
        if (!done) return false;
      }
      if (reply.end === null) return true;
      after = reply.end;
      // As long again before the next range: the pass takes at most half of the time of both
      // members while it runs, and the requests they serve meanwhile get the rest.
      await new Promise((res) => setTimeout(res, performance.now() - began));
      if (!unchanged()) return false;
    }
  }

  /**
   * Fetches `peer`'s records in the buckets of `bitmap` within (after, end], compares them with
   * this node's and sends each side what the other lacks, adding what moved to `totals`. False
   * when the pass must end.
   */
  async #reconcile(
    peer: string,
    r: string,
    after: Buffer | null,
    end: Buffer | null,
    bitmap: Buffer,
    unchanged: () => boolean,
    totals: { pushed: number; pulled: number },
  ): Promise<boolean> {
    const { self, call, versions, replicas, logger } = this.#o;
    const within = this.#o.repairWithinMs ?? Number.POSITIVE_INFINITY;
    // Their records are read after this, and this node's after them: what is pulled is stored,
    // and what is pushed lands, by then plus the window. A push is made of what both read: the
    // record here, and its absence (or an older one) there, which a delete copied there just
    // after their answer may have ended; so its window starts here too, not when this node's
    // records were read (a long fetch of theirs would move it later).
    const by = Date.now() + within;
    const theirs = new Map<string, Buffer>();
    let from = after;
    for (;;) {
      const req: EntriesRequest = { r, p: self, a: from, e: end, b: bitmap };
      let page: ReturnType<typeof readScanReply>;
      try {
        page = readScanReply(
          await call(peer, ANTI_ENTROPY_METHODS.entries, req, {
            ...BULK,
            timeoutMs: transferTimeoutMs(this.#o.timeoutMs, ENTRIES_REPLY_BYTES),
          }),
          Number.MAX_SAFE_INTEGER,
        );
      } catch (err) {
        logger.warn({ peer, err }, 'anti-entropy records not answered');
        return false;
      }
      for (let i = 0; i < page.e.length; i++) {
        const [key, raw] = page.e[i]!;
        try {
          versions.check(page.records[i]!.version, 'reply', peer);
        } catch {
          continue; // a version too far ahead is not spread (RemoteVersions logs it)
        }
        theirs.set(key.toString('latin1'), raw);
      }
      if (!page.more || page.e.length === 0) break;
      from = page.e[page.e.length - 1]![0];
    }
    if (!unchanged()) return false;
    const push: WireEntry[] = [];
    const pull: WireEntry[] = [];
    for (const [key, raw] of this.#shared(peer, after, end, bitmap)) {
      const k = key.toString('latin1');
      const other = theirs.get(k);
      theirs.delete(k);
      if (other === undefined) {
        if (!this.#late(raw)) push.push([key, raw]);
      } else if (!other.equals(raw)) {
        // Copies of one tombstone, one landed late (kept as taking effect then): the later goes
        // to the other side too (compareCopies), so their bucket is not fetched again.
        const c = compareCopies(decodeRecord(raw), decodeRecord(other));
        if (c > 0) push.push([key, raw]);
        else if (c < 0) pull.push([key, other]);
      }
    }
    for (const [k, raw] of theirs) if (!this.#late(raw)) pull.push([Buffer.from(k, 'latin1'), raw]);
    // Counted as each batch is confirmed: the batches before one that failed did move.
    const moved = { pushed: 0, pulled: 0 };
    const { repaired } = this.#o.metrics;
    let done = true;
    try {
      await this.#push(peer, push, by, (n) => {
        moved.pushed += n;
        repaired.labels('pushed').inc(n);
      });
      for (const batch of batches(pull)) {
        if (Date.now() >= by) throw pastWindow();
        await replicas.apply(self, batch);
        moved.pulled += batch.length;
        repaired.labels('pulled').inc(batch.length);
      }
    } catch (err) {
      // Unconfirmed: a batch whose push timed out may have landed all the same (a later pass
      // then finds it in step), and the ones after it were not sent.
      const unconfirmed = push.length - moved.pushed + pull.length - moved.pulled;
      logger.warn({ peer, err, unconfirmed, ...moved }, 'anti-entropy repair not applied');
      done = false;
    }
    totals.pushed += moved.pushed;
    totals.pulled += moved.pulled;
    return done;
  }

  /**
   * Whether a record, for a member that holds nothing at its key, would land late there
   * (Storage.landsLate): it holds no value and took effect longer ago than a copy of it lands.
   * It is not moved: there is nothing to delete there (as read repair, coordinator/cluster.ts
   * #repairOne).
   */
  #late(raw: Buffer): boolean {
    return this.#o.storage.landsLate(decodeRecord(raw));
  }

  /**
   * Sends `entries` to `peer` in batches of #sizes' bytes (at least one record), each with time
   * for its bytes; a batch that took too long is sent again halved, down to one record, before
   * the repair gives up (a record the link carries in more than the peer timeout still gets
   * through). Rejects with the error of the batch that failed otherwise.
   */
  async #push(
    peer: string,
    entries: readonly WireEntry[],
    by: number,
    confirmed: (records: number) => void,
  ): Promise<void> {
    for (let from = 0; from < entries.length; ) {
      const limit = this.#sizes.limit(peer);
      const batch: WireEntry[] = [];
      let bytes = 0;
      for (let i = from; i < entries.length && (batch.length === 0 || bytes < limit); i++) {
        batch.push(entries[i]!);
        bytes += entries[i]![0].length + entries[i]![1].length;
      }
      if (Date.now() >= by) throw pastWindow();
      const timeoutMs = transferTimeoutMs(this.#o.timeoutMs, bytes);
      // Refused where it arrives past `by` (KV_ERR_EXPIRED), as it would be past its timeout.
      const how = { ...BULK, timeoutMs, deadline: Math.min(Date.now() + timeoutMs, by) };
      try {
        await this.#o.replicas.apply(peer, batch, undefined, how);
      } catch (err) {
        this.#sizes.failed(peer, limit, err);
        if (tooSlow(err) && batch.length > 1) continue;
        throw err;
      }
      this.#sizes.succeeded(peer, limit);
      confirmed(batch.length);
      from += batch.length;
    }
  }

  /** True when the key of `token` is owned by both this node and `peer` in the target ring. */
  #sharedWith(peer: string): (token: number) => boolean {
    const ring = this.#o.topology.target;
    const rf = this.#o.topology.rf(ring);
    const self = this.#o.self;
    return (token) => {
      const owners = ring.ownersOfToken(token, rf);
      return owners.includes(self) && owners.includes(peer);
    };
  }

  /** This node's records (copied) within (after, end] that `peer` also owns, in `bitmap`'s buckets. */
  *#shared(
    peer: string,
    after: Buffer | null,
    end: Buffer | null,
    bitmap: Buffer,
    limit = Number.POSITIVE_INFINITY,
  ): Generator<WireEntry> {
    const shared = this.#sharedWith(peer);
    let n = 0;
    for (const { key, raw } of this.#o.storage.scan(bounds(after, end))) {
      if (++n > limit) {
        throw new KvError(
          'KV_ERR_LIMIT_EXCEEDED',
          `anti-entropy: a records range of more than ${limit} keys`,
        );
      }
      if (!validWall(raw)) continue;
      const token = keyToken(key);
      if ((bitmap[token >>> 27]! & (0x80 >> ((token >>> 24) & 7))) === 0) continue;
      if (shared(token)) yield [Buffer.from(key), Buffer.from(raw)];
    }
  }

  /**
   * Sums of this node's records that `peer` also owns, from after `after` to `end` (inclusive;
   * null: the end of the keyspace), scanning at most `limit` keys and stopping at the key that
   * brings the bytes scanned (keys and records) to `maxBytes`. `last`: the last key scanned when
   * a limit stopped the scan, null when the range ended first.
   */
  #sums(
    peer: string,
    after: Buffer | null,
    end: Buffer | null,
    limit: number,
    maxBytes: number,
  ): { sums: Sums; last: Buffer | null } {
    const shared = this.#sharedWith(peer);
    const sums: Sums = new Uint32Array(DIGEST_BUCKETS * 2);
    let n = 0;
    let bytes = 0;
    let last: Buffer | null = null;
    let hashed = 0;
    for (const { key, raw } of this.#o.storage.scan(bounds(after, end))) {
      n++;
      bytes += key.length + raw.length;
      if (validWall(raw)) {
        const token = keyToken(key);
        if (shared(token)) {
          hashed++;
          const b = (token >>> 24) * 2;
          const h1 = xxh32(raw, token);
          sums[b] = (sums[b]! + h1) >>> 0;
          sums[b + 1] = (sums[b + 1]! + xxh32(key, h1)) >>> 0;
        }
      }
      if (n >= limit || bytes >= maxBytes) {
        // The scan may reuse its key buffer: the one that ends the range is copied.
        last = Buffer.from(key);
        break;
      }
    }
    this.#o.metrics.keys.inc(hashed);
    return { sums, last };
  }

  #serveDigest(req: DigestRequest): DigestReply {
    this.#check(req.r);
    const { sums, last } = this.#sums(req.p, req.a, req.e, req.l, DIGEST_BYTES);
    // The whole range asked for, unless the limit cut it short.
    return { d: digestBytes(sums), end: last ?? req.e };
  }

  #serveEntries(req: EntriesRequest): { e: WireEntry[]; more: boolean } {
    this.#check(req.r);
    const e: WireEntry[] = [];
    let bytes = 0;
    for (const entry of this.#shared(req.p, req.a, req.e, req.b, ENTRIES_SCAN_KEYS)) {
      if (bytes >= ENTRIES_REPLY_BYTES) return { e, more: true };
      e.push(entry);
      bytes += entry[0].length + entry[1].length;
    }
    return { e, more: false };
  }

  /** Refuses a request made under other rings than this node's, or while data moves. */
  #check(ring: string): void {
    const { topology } = this.#o;
    if (ring !== topology.target.id || topology.moving) {
      throw new KvError(
        'KV_ERR_UNAVAILABLE',
        'anti-entropy: asked under other rings than this node routes by, or while data moves',
      );
    }
  }
}

function digestBytes(sums: Sums): Buffer {
  const d = Buffer.allocUnsafe(DIGEST_BUCKETS * 8);
  for (let i = 0; i < sums.length; i++) d.writeUInt32BE(sums[i]!, i * 4);
  return d;
}

function sameBound(a: Buffer | null, b: Buffer | null): boolean {
  return a === null ? b === null : b !== null && a.equals(b);
}

/**
 * A digest reply's end must lie in the range asked for, (after, end]: anything else would walk
 * backwards or skip keys.
 */
function checkRangeEnd(got: Buffer | null, after: Buffer | null, end: Buffer | null): void {
  const ok =
    got === null
      ? end === null
      : (after === null || Buffer.compare(got, after) > 0) &&
        (end === null || Buffer.compare(got, end) <= 0);
  if (!ok) throw new KvError('KV_ERR_PEER_PROTOCOL', 'anti-entropy: digest end outside the range');
}

function bounds(after: Buffer | null, end: Buffer | null) {
  return {
    start: after ?? Buffer.alloc(0),
    end,
    exclusiveStart: after !== null,
    inclusiveEnd: true,
  };
}

/** `entries` in slices of about APPLY_BATCH_BYTES. */
function* batches(entries: readonly WireEntry[]): Generator<WireEntry[]> {
  let batch: WireEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    batch.push(e);
    bytes += e[0].length + e[1].length;
    if (bytes >= APPLY_BATCH_BYTES) {
      yield batch;
      batch = [];
      bytes = 0;
    }
  }
  if (batch.length > 0) yield batch;
}

// Decoders: requests fail with KV_ERR_INVALID_ARGUMENT, replies with KV_ERR_PEER_PROTOCOL.

function object(v: unknown, code: 'KV_ERR_INVALID_ARGUMENT' | 'KV_ERR_PEER_PROTOCOL') {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new KvError(code, 'anti-entropy: body must be a map');
  }
  return v as Record<string, unknown>;
}

function invalid(message: string): KvError {
  return new KvError('KV_ERR_INVALID_ARGUMENT', `anti-entropy: ${message}`);
}

function id(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS) {
    throw invalid(`${what} must be a string of 1 to ${MAX_ID_CHARS} characters`);
  }
  return v;
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** A key bound: null, or 1 to MAX_KEY_BYTES bytes. */
function bound(
  v: unknown,
  what: string,
  code: 'KV_ERR_INVALID_ARGUMENT' | 'KV_ERR_PEER_PROTOCOL' = 'KV_ERR_INVALID_ARGUMENT',
): Buffer | null {
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array) || v.length === 0 || v.length > MAX_KEY_BYTES) {
    throw new KvError(code, `anti-entropy: ${what} must be null or a key`);
  }
  return asBuffer(v);
}

export function readDigestRequest(body: unknown): DigestRequest {
  const b = object(body, 'KV_ERR_INVALID_ARGUMENT');
  const l = b.l;
  if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > DIGEST_KEYS) {
    throw invalid(`l must be an integer from 1 to ${DIGEST_KEYS}`);
  }
  return { r: id(b.r, 'r'), p: id(b.p, 'p'), a: bound(b.a, 'a'), e: bound(b.e, 'e'), l };
}

export function readDigestReply(reply: unknown): DigestReply {
  const b = object(reply, 'KV_ERR_PEER_PROTOCOL');
  if (!(b.d instanceof Uint8Array) || b.d.length !== DIGEST_BUCKETS * 8) {
    throw new KvError(
      'KV_ERR_PEER_PROTOCOL',
      `anti-entropy: d must be ${DIGEST_BUCKETS * 8} bytes`,
    );
  }
  return { d: asBuffer(b.d), end: bound(b.end, 'end', 'KV_ERR_PEER_PROTOCOL') };
}

export function readEntriesRequest(body: unknown): EntriesRequest {
  const b = object(body, 'KV_ERR_INVALID_ARGUMENT');
  if (!(b.b instanceof Uint8Array) || b.b.length !== BITMAP_BYTES) {
    throw invalid(`b must be a bitmap of ${BITMAP_BYTES} bytes`);
  }
  return {
    r: id(b.r, 'r'),
    p: id(b.p, 'p'),
    a: bound(b.a, 'a'),
    e: bound(b.e, 'e'),
    b: asBuffer(b.b),
  };
}
