// Reaches a replica by name: this node's storage directly, any other node over the peer port.

import { KvError } from '../errors/index.ts';
import { atTurnEnd } from '../net/index.ts';
import {
  decodeRecord,
  decodeRecordHeader,
  type Storage,
  type StoredRecord,
  validWall,
} from '../storage/index.ts';
import {
  type ApplyRequest,
  type ExpectIncarnation,
  GET_MANY_MAX_KEYS,
  type GetManyRequest,
  type GetRequest,
  METHODS,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from './messages.ts';
import { localScan, ScanWork } from './scan.ts';
import { RemoteVersions } from './versions.ts';
import {
  readApplyReply,
  readGetManyReply,
  readGetReply,
  readScanReply,
  readSyncedReply,
  type Synced,
} from './wire.ts';

/**
 * Single-entry applies to one member that are made in the same event-loop turn (one each per
 * client write) go out as one request: one frame, one decode, one log group wait and one reply
 * on the replica, instead of one per write. A batch goes at once past these bounds. The bytes
 * keep a batch of small writes a small frame, on the peer's small lane (LARGE_FRAME_BYTES):
 * small writes coalesced into one 1 MiB request waited behind hint batches and large values.
 */
const COALESCE_MAX_ENTRIES = 256;
export const COALESCE_MAX_BYTES = 56 * 1024;
/** An entry at least this large is sent on its own. */
const COALESCE_ENTRY_BYTES = 64 * 1024;

/** Key bytes after which a turn's gets to one member go out at once. */
const COALESCE_GET_KEY_BYTES = 256 * 1024;
/**
 * How long a member that answered `getMany` with KV_ERR_UNKNOWN_COMMAND (an older version, in a
 * rolling upgrade) is sent single `get`s before `getMany` is tried again.
 */
const GET_MANY_RETRY_MS = 30_000;

/** A caller of get waiting for its record. */
/** A record a member sent for a get: its bytes, and the record they decode to. */
type GotRecord = NonNullable<ReturnType<typeof readGetReply>>;

/** A get waiting for its member's reply; `resolve` and `reject` must not throw. */
interface GetWaiter {
  readonly key: Buffer;
  readonly resolve: (raw: Buffer | null) => void;
  readonly reject: (err: unknown) => void;
}

/** Gets to one member waiting for the end of the turn. */
interface GetBox {
  readonly waiters: GetWaiter[];
  bytes: number;
  /** The terms every get of the box was made with (a get with others starts a new box). */
  readonly terms: ExpectIncarnation;
  /** Whether its gets ask for records without their values (GetRequest.h). */
  readonly headers: boolean;
}

/** Applies to one member waiting for the end of the turn, all placed under the same rings. */
interface Outbox {
  /** ApplyRequest.p of them all, or undefined. */
  readonly rings: string | undefined;
  readonly entries: WireEntry[];
  readonly waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  bytes: number;
  /**
   * Date.now() when its first entry came: its deadline counts from then, not from the end of the
   * turn, when it goes (a copy's deadline is its version plus its timeout at most, which the
   * repair window counts on: transfer.ts repairWithinMs).
   */
  readonly at: number;
}

/** How an apply goes to another member (see Replicas.apply). */
export interface ApplyHow {
  readonly rings?: string | undefined;
  readonly deadline?: number | undefined;
  /**
   * The request's timeout and deadline window instead of applyTimeoutMs's: for a transfer (hint
   * delivery), which no tombstone collection runs beside, so no tombstone grace bounds it.
   */
  readonly timeoutMs?: number | undefined;
  /** A bulk transfer (hints, streams, anti-entropy): see PeerCall's `bulk`. */
  readonly bulk?: boolean | undefined;
}

/**
 * Sends one peer request; rejects with a KvError (unavailable, timeout, remote code). `timeoutMs`
 * replaces the peer timeout for this request. `bulk`: a background transfer, sent on the peer's
 * large lane whatever its size, behind the other bulk requests to that member and ahead of none
 * of the small requests clients wait on (peer RequestOptions.bulk). `deadline` and `maxWaitMs`:
 * the body's first key is its deadline, set as it leaves; `landBy`: its deadline, fixed (peer
 * PeerRequestOptions).
 */
export type PeerCall = (
  name: string,
  method: string,
  body: unknown,
  opts?: {
    readonly timeoutMs?: number;
    readonly bulk?: boolean;
    readonly deadline?: boolean;
    readonly maxWaitMs?: number;
    readonly landBy?: number;
  },
) => Promise<unknown>;

/**
 * An apply's timeout and deadline window in ms, fixed or by the bytes of its entries (keys and
 * records); null: no deadline, and the peer's own timeout.
 */
export type ApplyTimeout = number | ((bytes: number) => number) | null;

/**
 * How reads count a member (ExpectIncarnation): `i`, the incarnation the settled ring recorded
 * for it (absent when not a settled holder, or not recorded); `o`, set when it is not in the
 * target ring. Called when a read is made without terms of its own, with the rings as they are
 * then.
 */
export type ReadTerms = (name: string) => ExpectIncarnation;

/**
 * Whether a copy of this record may wait past its own timeout behind other frames to a slow
 * member: a live value without an expiry. Not a tombstone nor an expiring record, collected a
 * grace after their version: the repair window counts on their copies landing within their
 * timeout of being sent (repairWithinMs).
 */
function waitable(entry: WireEntry): boolean {
  const r = decodeRecordHeader(entry[1]);
  return !r.tombstone && r.expiresAt === undefined;
}

/** Whether two reads' terms are the same. */
function sameTerms(a: ExpectIncarnation, b: ExpectIncarnation): boolean {
  return a === b || (a.i === b.i && a.ir === b.ir && a.o === b.o);
}

const NO_TERMS: ExpectIncarnation = Object.freeze({});

/**
 * The replica operations the coordinator needs, whatever node holds the replica. Reads (`get`,
 * `scan`) of another member carry the terms `terms` gives for it (ReadTerms): a member back with
 * another data directory refuses them (KV_ERR_WRONG_INCARNATION) instead of answering as a
 * holder of data it does not have, and a member that handed its data off refuses reads that
 * count it in the target ring (KV_ERR_HANDED_OFF). Writes carry none: a copy written there is
 * real.
 *
 * Every reply from another member is checked before it is used (replica/wire.ts), and so is
 * every version in it (RemoteVersions): a malformed reply rejects with KV_ERR_PEER_PROTOCOL or
 * KV_ERR_BAD_RECORD, a version too far ahead with KV_ERR_CLOCK_OFFSET, so a quorum counts it as
 * a failed replica and nothing of it is adopted or repaired onto others.
 */
export class Replicas {
  readonly self: string;
  readonly #storage: Storage;
  readonly #call: PeerCall;
  readonly #terms: ReadTerms;
  readonly #versions: RemoteVersions;
  readonly #applyTimeoutMs: ApplyTimeout;
  readonly #applyWaitMs: number;
  /** The node's scan work per event-loop turn: its own scans' reads, and the coordinator's merges. */
  readonly scanWork: ScanWork;
  readonly #outboxes = new Map<string, Outbox>();
  readonly #getBoxes = new Map<string, GetBox>();
  /** The same for gets of records without their values (a box of their own per member). */
  readonly #headBoxes = new Map<string, GetBox>();
  /** Members that did not know `getMany`, and when to try it again. */
  readonly #singleGets = new Map<string, number>();

  constructor(
    self: string,
    storage: Storage,
    call: PeerCall,
    terms: ReadTerms = () => NO_TERMS,
    versions: RemoteVersions = new RemoteVersions({ clock: storage.clock }),
    applyTimeoutMs: ApplyTimeout = null,
    scanWork: ScanWork = new ScanWork(),
    applyWaitMs = Number.POSITIVE_INFINITY,
  ) {
    this.self = self;
    this.#storage = storage;
    this.#call = call;
    this.#terms = terms;
    this.#versions = versions;
    this.#applyTimeoutMs = applyTimeoutMs;
    this.#applyWaitMs = applyWaitMs;
    this.scanWork = scanWork;
  }

  /**
   * The record stored at `key` on `name` (encodeRecord bytes, tombstones included), or null.
   * A local record whose version is out of range (stored before versions were checked) reads
   * as null, so any write replaces it. The gets to one other member made in one event-loop turn
   * (one per client read) with the same terms go out as one `getMany` request at the end of the
   * turn; each caller gets its own record, or its own error when its record's version is
   * refused. `terms`: those of the rings the read was placed under (Placement.terms); by default
   * the terms of the rings now. Never the terms when the request leaves: the rings may change
   * before the end of the turn. `headers`: another member is asked for the record without its
   * value (GetRequest.h; one before it sends it whole); this node's own is always whole.
   */
  get(
    name: string,
    key: Buffer,
    terms: ExpectIncarnation = this.#terms(name),
    headers = false,
  ): Promise<Buffer | null> {
    if (name === this.self) return Promise.resolve(this.getHere(key));
    const { promise, resolve, reject } = Promise.withResolvers<Buffer | null>();
    this.getThen(name, key, terms, headers, resolve, reject);
    return promise;
  }

  /**
   * get() answered through callbacks instead of a promise (a replicated GET's read, once per
   * client GET): exactly one of `resolve` and `reject` is called, once, at once for this node's
   * own record, otherwise when the member's reply is in. They must not throw.
   */
  getThen(
    name: string,
    key: Buffer,
    terms: ExpectIncarnation,
    headers: boolean,
    resolve: (raw: Buffer | null) => void,
    reject: (err: unknown) => void,
  ): void {
    if (name === this.self) {
      let raw: Buffer | null;
      try {
        raw = this.getHere(key);
      } catch (err) {
        reject(err);
        return;
      }
      resolve(raw);
      return;
    }
    const boxes = headers ? this.#headBoxes : this.#getBoxes;
    let box = boxes.get(name);
    // The rings changed since the box was opened: its gets go now, under their own terms.
    if (box !== undefined && !sameTerms(box.terms, terms)) {
      this.#flushGets(name, box);
      box = undefined;
    }
    if (box === undefined) {
      const opened: GetBox = { waiters: [], bytes: 0, terms, headers };
      box = opened;
      boxes.set(name, opened);
      atTurnEnd(() => this.#flushGets(name, opened));
    }
    box.waiters.push({ key, resolve, reject });
    box.bytes += key.length;
    if (box.waiters.length >= GET_MANY_MAX_KEYS || box.bytes >= COALESCE_GET_KEY_BYTES) {
      this.#flushGets(name, box);
    }
  }

  /** get() of this node's own record, at once. */
  getHere(key: Buffer): Buffer | null {
    const raw = this.#storage.getRaw(key);
    return raw !== undefined && validWall(raw) ? raw : null;
  }

  /** Sends `box` (once: a full box goes early, and its turn's flush then finds it gone). */
  #flushGets(name: string, box: GetBox): void {
    const boxes = box.headers ? this.#headBoxes : this.#getBoxes;
    if (boxes.get(name) !== box) return;
    boxes.delete(name);
    const retryAt = this.#singleGets.get(name);
    if (retryAt !== undefined && retryAt <= Date.now()) this.#singleGets.delete(name);
    if (box.waiters.length === 1 || this.#singleGets.has(name)) {
      for (const w of box.waiters) this.#getOne(name, w, box.terms, box.headers);
    } else {
      this.#getMany(name, box.waiters, box.terms, box.headers);
    }
  }

  /**
   * Sends a request from the end-of-turn flush: whatever goes wrong reaches the caller as a
   * rejection, never as an exception thrown out of the flush.
   */
  #request(name: string, method: string, body: () => unknown): Promise<unknown> {
    try {
      return this.#call(name, method, body());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** One `get` request for one waiter. */
  #getOne(name: string, w: GetWaiter, terms: ExpectIncarnation, headers: boolean): void {
    const body = (): GetRequest =>
      headers ? { k: w.key, ...terms, h: true } : { k: w.key, ...terms };
    this.#request(name, METHODS.get, body).then((reply) => {
      let got: GotRecord | null;
      try {
        got = readGetReply(reply);
      } catch (err) {
        w.reject(err);
        return;
      }
      this.#answer(name, w, got);
    }, w.reject);
  }

  /**
   * Settles `w` with the record `got` from `name`, or with the error its version raised. Its
   * callback runs outside the check's try: one that threw (none should) is not also rejected,
   * and surfaces without keeping the waiters after it unanswered.
   */
  #answer(name: string, w: GetWaiter, got: GotRecord | null): void {
    try {
      if (got !== null) this.#versions.check(got.record.version, 'reply', name);
    } catch (err) {
      w.reject(err);
      return;
    }
    try {
      w.resolve(got === null ? null : got.raw);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  /**
   * One `getMany` request for `waiters` (2 or more); asks again for the keys a reply left out,
   * and falls back to single gets on a member that does not know the method.
   */
  #getMany(
    name: string,
    waiters: readonly GetWaiter[],
    terms: ExpectIncarnation,
    headers: boolean,
  ): void {
    const body = (): GetManyRequest => {
      const ks = waiters.map((w) => w.key);
      return headers ? { ks, ...terms, h: true } : { ks, ...terms };
    };
    this.#request(name, METHODS.getMany, body).then(
      (reply) => {
        let got: ReturnType<typeof readGetManyReply>;
        try {
          got = readGetManyReply(reply, waiters.length);
        } catch (err) {
          for (const w of waiters) w.reject(err);
          return;
        }
        for (let n = 0; n < got.length; n++) this.#answer(name, waiters[n]!, got[n]!);
        const rest = waiters.slice(got.length);
        if (rest.length === 1) this.#getOne(name, rest[0]!, terms, headers);
        else if (rest.length > 1) this.#getMany(name, rest, terms, headers);
      },
      (err: unknown) => {
        if (err instanceof KvError && err.code === 'KV_ERR_UNKNOWN_COMMAND') {
          this.#singleGets.set(name, Date.now() + GET_MANY_RETRY_MS);
          for (const w of waiters) this.#getOne(name, w, terms, headers);
          return;
        }
        for (const w of waiters) w.reject(err);
      },
    );
  }

  /**
   * Applies entries on `name` (last write wins); resolves (with nothing of use) once durable
   * there. With `applyTimeoutMs` (the peer timeout, plus time for the entries' bytes) the request
   * carries its deadline, and a replica that reads it too late refuses it (ApplyRequest.d). `records`, when given, are the entries'
   * records decoded (in the same order): a local apply then neither decodes nor re-encodes them.
   * `how.rings`: the rings a coordinator placed the writes under (Placement.rings), which another
   * member routing by other rings passes them on under (ApplyRequest.p); absent for a write meant
   * for `name` alone. `how.deadline`: the deadline of a write passed on, the one its coordinator
   * set (a copy must not land later than the write itself could have). A single small entry for
   * another member, without a deadline of its own, joins the others of this turn placed under
   * the same rings (see COALESCE_*): they succeed or fail together, each caller seeing the
   * request's outcome.
   */
  apply(
    name: string,
    entries: WireEntry[],
    records?: readonly StoredRecord[],
    how: ApplyHow = {},
  ): Promise<unknown> {
    // Not an async function: a client write makes one call per replica, and the wrapper promise
    // (with the reactions that adopt the inner one) was work for nothing; what throws rejects.
    try {
      if (name === this.self) {
        return this.#storage.applyBatch(
          entries.map(([key, raw], i) => ({ key, record: records?.[i] ?? decodeRecord(raw), raw })),
        );
      }
      return this.#applyThere(name, entries, how);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** apply() to another member. */
  #applyThere(name: string, entries: WireEntry[], how: ApplyHow): Promise<unknown> {
    const [only] = entries;
    const { rings } = how;
    if (
      entries.length !== 1 ||
      only![0].length + only![1].length >= COALESCE_ENTRY_BYTES ||
      how.deadline !== undefined ||
      how.timeoutMs !== undefined ||
      how.bulk === true
    ) {
      return this.#send(name, entries, how);
    }
    const bytes = only![0].length + only![1].length;
    let box = this.#outboxes.get(name);
    // Rings changed within the turn (rare): what was placed under the old ones goes now; so does
    // a box this entry would take past COALESCE_MAX_BYTES.
    if (box !== undefined && (box.rings !== rings || box.bytes + bytes > COALESCE_MAX_BYTES)) {
      this.#flush(name, box);
      box = undefined;
    }
    if (box === undefined) {
      box = { rings, entries: [], waiters: [], bytes: 0, at: Date.now() };
      this.#outboxes.set(name, box);
      atTurnEnd(() => this.#flush(name, box!));
    }
    box.entries.push(only!);
    box.bytes += bytes;
    const done = new Promise<void>((resolve, reject) => box.waiters.push({ resolve, reject }));
    if (box.entries.length >= COALESCE_MAX_ENTRIES) this.#flush(name, box);
    return done;
  }

  /** Sends `box` (once: a full box goes early, and its turn's flush then finds it gone). */
  #flush(name: string, box: Outbox): void {
    if (this.#outboxes.get(name) !== box) return;
    this.#outboxes.delete(name);
    const t = this.#timeoutOf(box.entries);
    const how: ApplyHow = {
      ...(box.rings === undefined ? {} : { rings: box.rings }),
      ...(t === null ? {} : { timeoutMs: t, deadline: box.at + t }),
    };
    this.#send(name, box.entries, how).then(
      () => {
        for (const w of box.waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of box.waiters) w.reject(err);
      },
    );
  }

  async #send(name: string, entries: WireEntry[], how: ApplyHow): Promise<void> {
    const t = how.timeoutMs ?? this.#timeoutOf(entries);
    const opts: {
      timeoutMs?: number;
      bulk?: boolean;
      deadline?: boolean;
      maxWaitMs?: number;
      landBy?: number;
    } = {};
    let d: number | undefined;
    if (how.deadline !== undefined) {
      // A deadline given (a repair's, an expiry change's: the repair window of their read; a
      // write passed on: its coordinator's) is the latest it may land, never later than its own
      // timeout from now: a repair held on its way landed up to the window (an hour) after it
      // was sent.
      d = t === null ? how.deadline : Math.min(how.deadline, Date.now() + t);
    } else if (t !== null) {
      d = Date.now() + t;
      // A copy of a value is set again as the frame leaves (peer `deadline`), to when the client
      // stops waiting, which a wait behind other frames to the member moves: a copy of a client
      // write lands within freshWithin of when it was sent (applyWaitMs), a transfer's
      // (how.timeoutMs) within the peer client's own bound. Not a tombstone's or an expiring
      // record's: the repair window (repairWithinMs) counts on those landing within their
      // timeout of being sent.
      if (entries.every(waitable)) {
        opts.deadline = true;
        if (how.timeoutMs === undefined) opts.maxWaitMs = this.#applyWaitMs;
      }
    }
    // Kept as sent: refused past it, so not waited for behind other frames past it either.
    if (d !== undefined && opts.deadline !== true) opts.landBy = d;
    // The deadline first: the peer client rewrites it in place as the frame leaves.
    const body: { -readonly [K in keyof ApplyRequest]: ApplyRequest[K] } =
      d === undefined ? { e: entries } : { d, e: entries };
    if (how.rings !== undefined) body.p = how.rings;
    if (t !== null) opts.timeoutMs = t;
    if (how.bulk === true) opts.bulk = true;
    readApplyReply(await this.#call(name, METHODS.apply, body, opts));
  }

  /** The timeout and deadline window of an apply of `entries` (applyTimeoutMs). */
  #timeoutOf(entries: readonly WireEntry[]): number | null {
    const t = this.#applyTimeoutMs;
    if (typeof t !== 'function') return t;
    let bytes = 0;
    for (const [key, raw] of entries) bytes += key.length + raw.length;
    return t(bytes);
  }

  /**
   * Resolves once every record write `name` decided before the request came is on its disk:
   * what its earlier get replies said it holds then survives a power cut there (METHODS.synced).
   * Resolves with the id of the process that answered and the hints it holds (Synced; both
   * undefined for `self`, whose own writes it waits for).
   */
  async synced(name: string): Promise<Synced> {
    if (name === this.self) {
      await this.#storage.synced();
      return { process: undefined, hints: undefined };
    }
    return readSyncedReply(await this.#call(name, METHODS.synced, {}));
  }

  /**
   * Scans `name`'s local records (tombstones included). `terms` as for get: those of the rings
   * the scan was placed under, by default the rings now.
   */
  async scan(
    name: string,
    req: ScanRequest,
    terms: ExpectIncarnation = this.#terms(name),
  ): Promise<ScanReply> {
    if (name === this.self) return localScan(this.#storage, req, this.scanWork);
    const body: ScanRequest = { ...req, ...terms };
    const reply = readScanReply(await this.#call(name, METHODS.scan, body), req.l);
    this.#versions.checkAll(reply.records, 'reply', name);
    return { e: reply.e, more: reply.more, records: reply.records };
  }
}
