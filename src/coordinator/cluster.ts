// Coordinates any command on any node: quorum writes and reads, read repair, hints, scans.

import { Counter, type Registry } from 'prom-client';
import type { Refusal } from '../admin/index.ts';
import { KvError, wireCode } from '../errors/index.ts';
import type { Placement, Topology } from '../membership/index.ts';
import { type CounterCell, HotCounter } from '../observability/index.ts';
import { type Command, orderingOf, type Reply } from '../protocol/index.ts';
import type { ApplyHow, Replicas, WireEntry } from '../replica/index.ts';
import {
  compareRecords,
  decodeRecord,
  type Entry,
  encodeRecord,
  headerBytes,
  isLive,
  liveValueStart,
  type Storage,
  type StoredRecord,
  sameWrite,
  type Version,
  validWall,
} from '../storage/index.ts';
import { DigestPlan, newestOf } from './digest.ts';
import { executeExpiry, type RecordAccess } from './expiry.ts';
import {
  estimateKeys,
  executeMulti,
  infoSections,
  type KeyspaceSource,
  type MultiReadBounds,
  multiReadBounds,
} from './multi.ts';
import {
  type OneMoreAsk,
  type OneMoreResult,
  oneMore,
  type QuorumGroup,
  quorum,
  settledVouches,
  type TargetedResult,
  targetedQuorum,
  unvouched,
  writeAcksNeeded,
  writeQuorum,
} from './quorum.ts';

/**
 * What a read got: the answers of its quorum, every request it made (for read repair), the
 * replicas it asked for headers only (DigestPlan), and when it began (Date.now(), before it
 * asked any replica: what it writes back must land within ClusterOptions.repairWithinMs of it).
 */
type Asked = TargetedResult<Buffer | null> & {
  readonly heads: ReadonlySet<string>;
  readonly start: number;
};

import { ReadPreference } from './read-preference.ts';
import { scatterScan } from './scatter.ts';

/**
 * Records up to this size that sizeHere read for a GET's reply budget are kept for the GET's own
 * read (ClusterCoordinator.#takeHere); larger ones are read again once the other owner answered.
 */
const KEEP_HERE_BYTES = 16 * 1024;

/** Bytes of a stored record past its header; -1 for none (sizeHere). */
const sizeAfterHeader = (raw: Buffer | undefined): number =>
  raw === undefined ? -1 : raw.length - headerBytes(raw);

/** Whether a replica's answer (a record, whole or its header, or null) is older than `newest`. */
function olderThan(theirs: Buffer | null, newest: StoredRecord): boolean {
  return theirs === null || compareRecords(decodeRecord(theirs), newest) < 0;
}

/** Turns commands into replies. A reply that needs other nodes or the disk comes as a promise. */
export interface Coordinator {
  execute(cmd: Command): Reply | Promise<Reply>;
  /**
   * GET answered at once when this node is the key's only replica: calls `use` with the stored
   * record and where its live value starts (`raw` is valid only during the call; `start` is -1
   * when the key holds no live value, and `raw` may then be undefined) and returns true. False
   * when the key needs other replicas: `execute` answers it then.
   */
  getNow(key: Buffer, use: ValueUse): boolean;
  /**
   * Bytes of this node's stored copy of `key` past its header (its value, when live), read
   * without copying them; 0 when it holds none and owns the key; -1 when it holds none and
   * other nodes own it. What a GET's reply will most likely hold (the owners agree), counted
   * before it runs (server/reply-bytes.ts).
   */
  sizeHere(key: Buffer): number;
  /**
   * Whether `execute` answers a GET of `key` without waiting (this node is its only replica): a
   * GET that runs at once then counts its reply when it is in, without sizeHere's lookup first.
   */
  answersNow(key: Buffer): boolean;
  /**
   * The error a client gets for a command that failed with `err`: KV_ERR_UNAVAILABLE with what
   * this node waits for appended while its ring is held (ClusterOptions.ringHold), else `err`.
   */
  explain?(err: KvError): KvError;
}

/** Gets GET's answer from getNow: the value is `raw` from `start` to its end; -1: none. */
export type ValueUse = (raw: Buffer | undefined, start: number) => void;

export interface ClusterOptions {
  readonly storage: Storage;
  readonly topology: Topology;
  readonly replicas: Replicas;
  /** Whether a member answers probes; scans skip members that are down. */
  readonly isUp: (name: string) => boolean;
  /** Keeps a write for a replica that did not take it. */
  readonly hint: (target: string, key: Buffer, raw: Buffer) => void;
  /** The CLUSTER command's answer. */
  readonly info: () => unknown;
  readonly readQuorum: number;
  readonly writeQuorum: number;
  /** Share (0..1) of reads that ask every replica rather than only a read quorum of them. */
  readonly readRepairChance: number;
  /** How long a read waits for its quorum before it asks the replicas it has not asked. */
  readonly readSpeculateMs: number;
  /**
   * How long after a read began a repair made of it may land (repairWithinMs: less than any
   * tombstone the read did not see could be collected in): each repair carries that deadline, is
   * not sent past it, and is hinted when it fails only before it. 0 or less: no read repair.
   * Absent: no bound.
   */
  readonly repairWithinMs?: number;
  readonly maxScanKeys: number;
  /** --max-value-bytes: how many keys an MGET or EXISTS reads at once (multiReadBounds). */
  readonly maxValueBytes?: number;
  /** --max-multi-read-bytes: the values one MGET or EXISTS may read (default MULTI_READ_BYTES). */
  readonly maxMultiReadBytes?: number;
  readonly registry: Registry;
  /**
   * Throws while this node must not make versions (ClockCheck: its clock is off from its
   * peers'); called before every command that writes. Absent: never refuses. May return the
   * reading of the clocks it checked (ClockCheck.check), which a version made right after is
   * then made from (HybridClock.nowAt) instead of reading the clocks again.
   */
  readonly checkClock?: () => number | undefined;
  /**
   * Throws while this node must not serve data (another process answers under its name at the
   * address listed for it); called before every command but PING, QUIT and CLUSTER.
   */
  readonly checkIdentity?: () => void;
  /** What the node refuses of its clients' commands now, and why (INFO's kvstore_refusing). */
  readonly refusing?: () => Refusal | null;
  /**
   * Whether this node may answer a read from its own copy alone (a read quorum of 1 that it
   * meets itself, or a key it is the only replica of), and what it waits for when not
   * (RingFencing.mayAnswerAlone, untilHeard: a member taken out of the ring must not answer
   * from its old copy while nothing of the read reaches the others). Absent: it always may.
   */
  readonly alone?: { readonly may: () => boolean; readonly until: () => Promise<void> };
  /**
   * While this node's target ring waits for settled holders that are no member here
   * (RingKeeper.holdNote): which, and why; null when it does not.
   */
  readonly ringHold?: () => string | null;
}

const OK: Reply = { type: 'ok' };
const PONG: Reply = { type: 'pong' };
const NOT_FOUND: Reply = { type: 'not_found' };
const answerOk = (): Reply => OK;
const EMPTY = Buffer.alloc(0);
/** EXISTS's answer for a key that holds a value (which it does not read). */
const FOUND: Reply = { type: 'value', value: Buffer.alloc(0) };

/** Where a read's record goes (#readThen): it, or `Fail` what went wrong; neither may throw. */
type ReadDone = (rec: StoredRecord | null) => void;
type Fail = (err: unknown) => void;

/**
 * Replicated execution. A write goes to every owner of the key (both rings while data moves) and
 * answers OK once `writeQuorum` owners in each ring made it durable; owners that are down or fail
 * get a hint. A read asks `readQuorum` owners (this node first when it is one, then owners the
 * failure detector has up), one more for each that fails, and all the others when the quorum is
 * `readSpeculateMs` late; it answers with the newest version and repairs the owners it asked
 * that returned an older one. `readRepairChance` of the reads, and every read while data moves,
 * ask every owner instead, so stale replicas are also repaired by reads that did not need them.
 * A read moves the value once: one owner is read whole and the others send digests, their record
 * headers (DigestPlan); a digest newer than the whole record costs one more request, for the
 * newest record whole (#fetch). Too few answers is `ERR UNAVAILABLE`, never a guess.
 */
export class ClusterCoordinator implements Coordinator {
  readonly #o: ClusterOptions;
  readonly #repairs: Counter;
  readonly #repairsDropped: Counter;
  readonly #speculations: Counter;
  readonly #fetches: Counter;
  readonly #rerouted: Counter;
  /** Per-read counts of kvstore_quorum_reads_total (array-backed: one per GET). */
  readonly #quorumReads: CounterCell;
  readonly #allReads: CounterCell;
  readonly #readsHere: CounterCell;
  readonly #readsThere: CounterCell;
  readonly #multiReads: MultiReadBounds;
  readonly #preference: ReadPreference;

  constructor(opts: ClusterOptions) {
    this.#o = opts;
    this.#preference = new ReadPreference(opts.replicas.self);
    this.#multiReads = multiReadBounds(opts.maxValueBytes ?? 1024 * 1024, opts.maxMultiReadBytes);
    this.#io = {
      clock: opts.storage.clock,
      version: () => this.#version(),
      read: async (key) => {
        const p = this.#shared(key);
        return p === null ? this.#readHere(key) : this.#read(key, p);
      },
      write: async (key, record, readAt) => {
        const p = this.#shared(key);
        if (p === null) await opts.storage.apply(key, record);
        else if (readAt === undefined) await this.#write(key, record, p);
        else await this.#writeBack(key, record, p, readAt);
      },
      deleteAbsent: async (key, version) => {
        const p = this.#shared(key);
        if (p !== null) await this.#write(key, { version, tombstone: true, value: EMPTY }, p);
      },
    };
    this.#repairs = new Counter({
      name: 'kvstore_read_repairs_total',
      help: 'Replicas sent a newer version because a read found them stale.',
      registers: [opts.registry],
    });
    this.#repairsDropped = new Counter({
      name: 'kvstore_read_repairs_dropped_total',
      help: "Read repairs not sent, or failed and not hinted, because they could have landed after a tombstone over the value they carry was collected: past the read's start plus the repair window (--tombstone-grace-ms less clock offsets and a tombstone's copy time).",
      registers: [opts.registry],
    });
    this.#speculations = new Counter({
      name: 'kvstore_read_speculations_total',
      help: 'Reads whose quorum was late, so they asked the replicas they had not asked yet.',
      registers: [opts.registry],
    });
    this.#fetches = new Counter({
      name: 'kvstore_read_fetches_total',
      help: 'Quorum reads whose newest version came only in a digest (a header without the value), so they read its record whole from a replica that returned it: one more round trip.',
      registers: [opts.registry],
    });
    this.#rerouted = new Counter({
      name: 'kvstore_writes_rerouted_total',
      help: 'Writes a coordinator placed under other rings than this node routes by (it had not learned of a ring change yet, or this node had not), which this node wrote to the owners under its own rings.',
      registers: [opts.registry],
    });
    const reads = new HotCounter({
      name: 'kvstore_quorum_reads_total',
      help: 'Quorum reads, by the replicas first asked: quorum (a read quorum) or all.',
      labelName: 'replicas',
      labelValues: ['quorum', 'all'],
      registers: [opts.registry],
    });
    this.#quorumReads = reads.labels('quorum');
    this.#allReads = reads.labels('all');
    const asked = new HotCounter({
      name: 'kvstore_replica_reads_total',
      help: 'Records quorum reads asked for, by where: this node (self) or another member (other; the asks of one turn to a member share one getMany request).',
      labelName: 'replica',
      labelValues: ['self', 'other'],
      registers: [opts.registry],
    });
    this.#readsHere = asked.labels('self');
    this.#readsThere = asked.labels('other');
  }

  explain(err: KvError): KvError {
    const note = err.code === 'KV_ERR_UNAVAILABLE' ? (this.#o.ringHold?.() ?? null) : null;
    return note === null ? err : new KvError(err.code, `${err.message}; ${note}`, { cause: err });
  }

  execute(cmd: Command): Reply | Promise<Reply> {
    if (cmd.type !== 'ping' && cmd.type !== 'quit' && cmd.type !== 'cluster') {
      this.#o.checkIdentity?.();
    }
    // A plain SET is checked once, as its version is made (#version), a few lines below.
    const plainPut = cmd.type === 'put' && !cmd.expiry && !cmd.keepTtl;
    if (this.#o.checkClock !== undefined && !plainPut && orderingOf(cmd) !== 'read') {
      this.#o.checkClock();
    }
    switch (cmd.type) {
      case 'put': {
        if (!plainPut) return executeExpiry(cmd, this.#io);
        const record = { version: this.#version(), tombstone: false, value: cmd.value };
        const p = this.#shared(cmd.key);
        if (p === null) return this.#okOnceApplied(this.#o.storage.apply(cmd.key, record));
        return this.#write(cmd.key, record, p);
      }
      case 'get': {
        const p = this.#shared(cmd.key);
        if (p !== null) return this.#get(cmd.key, p);
        if (!this.#mayAnswerAlone()) return this.#onceHeard(() => this.execute(cmd));
        return this.#valueOf(this.#o.storage.get(cmd.key) ?? null);
      }
      case 'expire':
      case 'persist':
      case 'ttl':
      case 'getex':
        return executeExpiry(cmd, this.#io);
      case 'remove': {
        const p = this.#shared(cmd.key);
        if (p !== null) return this.#remove(cmd.key, p);
        const gone = this.#o.storage.removeIfLive(cmd.key, this.#version());
        return gone.then((removed) => (removed ? OK : NOT_FOUND));
      }
      case 'range':
      case 'prefix':
        // Read quorum 1: the members' parts may be this node's own alone.
        if (this.#o.readQuorum === 1 && !this.#mayAnswerAlone())
          return this.#onceHeard(() => this.execute(cmd));
        return scatterScan(cmd, {
          topology: this.#o.topology,
          replicas: this.#o.replicas,
          isUp: this.#o.isUp,
          readQuorum: this.#o.readQuorum,
          maxScanKeys: this.#o.maxScanKeys,
          now: () => this.#o.storage.clock.wallNow(),
        });
      case 'ping':
        return cmd.message === undefined ? PONG : { type: 'value', value: cmd.message };
      case 'quit':
        return OK;
      case 'cluster':
        return { type: 'info', text: JSON.stringify(this.#o.info()) };
      case 'del':
      case 'exists':
      case 'mget':
      case 'mset':
        return executeMulti(cmd, (one) => this.execute(one), this.#multiReads, this.#exists);
      case 'dbsize':
        return { type: 'integer', value: estimateKeys(this.#keyspace()) };
      case 'info':
        return infoSections(this.#keyspace(), cmd.sections);
      case 'auth':
        throw new Error('coordinator: AUTH is answered by the server');
      default: {
        const never: never = cmd;
        throw new Error(`coordinator: unhandled command ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Writes that a coordinator placed under other rings than this node's (ApplyRequest.p): each
   * goes to its key's owners under this node's rings, as this node would write it itself, and
   * resolves once every one of them reached a write quorum in each ring. This node stores one
   * only if it is an owner here. Owners that do not take it get a hint. The copies go without
   * rings of their own, so a member routing by yet other rings stores them as they are, and with
   * the request's `deadline` (ApplyRequest.d): a copy lands no later than the write could have,
   * and one that fails is hinted only before it, as its coordinator would (a read repair's or an
   * expiry change's copy carries the value its read found, and its hint made later would land
   * whenever, perhaps after a delete made since was collected).
   */
  async reroute(entries: readonly Entry[], deadline: number | undefined): Promise<void> {
    this.#rerouted.inc(entries.length);
    const how: ApplyHow = { deadline };
    await Promise.all(
      entries.map((e) =>
        this.#write(e.key, e.record, this.#o.topology.place(e.key), e.raw, how, deadline),
      ),
    );
  }

  getNow(key: Buffer, use: ValueUse): boolean {
    if (!this.#alone(key) || !this.#mayAnswerAlone()) return false;
    this.#use = use;
    this.#o.storage.withRaw(key, this.#answer);
    return true;
  }

  answersNow(key: Buffer): boolean {
    // Two or more owners per key in the target ring: never alone, and no key placed to see it
    // (every GET of a replicated cluster takes the general path that asks this).
    // Nor while this node may not answer alone (the ring fence): its GET then waits for the
    // members and reads a copy after, which the reply budget must count (sizeHere).
    const topology = this.#o.topology;
    return topology.rf(topology.target) === 1 && this.#alone(key) && this.#mayAnswerAlone();
  }

  sizeHere(key: Buffer): number {
    this.#hereKey = key;
    const n = this.#o.storage.withRaw(key, this.#sizeAndKeep);
    if (n >= 0) return n;
    // None here: 0 when this node owns the key (the others most likely hold none either).
    return this.#o.topology.place(key).all.includes(this.#o.replicas.self) ? 0 : -1;
  }

  /**
   * What sizeHere read last, for the read of the same GET that runs next (#takeHere): the key
   * (the command's own Buffer), a copy of its record (null: none here) when at most
   * KEEP_HERE_BYTES, and Storage.changes then. A replicated GET looked its key up twice on its
   * coordinator (the reply budget's count, then the read), a third of a 3-node GET's lookups.
   */
  #hereKey: Buffer | null = null;
  #hereRaw: Buffer | null = null;
  #hereChanges = -1;
  readonly #sizeAndKeep = (raw: Buffer | undefined): number => {
    if (raw !== undefined && raw.length > KEEP_HERE_BYTES) {
      this.#hereKey = null;
    } else {
      // LMDB's bytes are lent (valid until the next read, `length` alone the record's).
      let copy: Buffer | null = null;
      if (raw !== undefined) {
        copy = Buffer.allocUnsafe(raw.length);
        raw.copy(copy, 0, 0, raw.length);
      }
      this.#hereRaw = copy;
      this.#hereChanges = this.#o.storage.changes;
    }
    return sizeAfterHeader(raw);
  };

  /**
   * This node's record of `key` as sizeHere kept it for this GET, when the store has not changed
   * since (so it is what a lookup now would return; null: none, or out of range as getHere
   * reads it); undefined when nothing was kept for it. Forgets what was kept either way.
   */
  #takeHere(key: Buffer): Buffer | null | undefined {
    const kept = this.#hereKey === key && this.#hereChanges === this.#o.storage.changes;
    const raw = this.#hereRaw;
    this.#hereKey = null;
    this.#hereRaw = null;
    if (!kept) return undefined;
    return raw !== null && validWall(raw) ? raw : null;
  }

  // getNow's call, kept in fields so that no closure is made per GET (it is synchronous).
  #use: ValueUse = () => {};
  /** The clock, read only for a record that expires. */
  readonly #wallNow = () => this.#o.storage.clock.wallNow();

  /** The last promise of a local write and its OK: see #okOnceApplied. */
  #applied: Promise<boolean> | null = null;
  #appliedOk: Promise<Reply> = Promise.resolve(OK);

  /**
   * OK once `applied` (a local write's Storage.apply) resolves. The writes of one log group get
   * the same promise from apply (SharedSync), so they share one OK promise and one reaction to
   * it instead of one each (a promise and a reaction per SET).
   */
  #okOnceApplied(applied: Promise<boolean>): Promise<Reply> {
    if (applied !== this.#applied) {
      this.#applied = applied;
      this.#appliedOk = applied.then(answerOk);
    }
    return this.#appliedOk;
  }
  readonly #answer = (raw: Buffer | undefined) =>
    this.#use(raw, raw === undefined ? -1 : liveValueStart(raw, this.#wallNow));

  /** Reads and writes for the expiry commands: local when this node is the key's only replica. */
  readonly #io: RecordAccess;

  /** A record as GET answers it: its value when live (not a tombstone, not expired). */
  #valueOf(rec: StoredRecord | null): Reply {
    return rec && isLive(rec, this.#o.storage.clock.wallNow())
      ? { type: 'value', value: rec.value }
      : NOT_FOUND;
  }

  #keyspace(): KeyspaceSource {
    const o = this.#o;
    return {
      self: o.replicas.self,
      topology: o.topology,
      isUp: o.isUp,
      // Expired records not turned into tombstones yet do not count.
      liveKeys: () => o.storage.stats().liveKeys - o.storage.dueCount(o.storage.clock.wallNow()),
      expiringKeys: () =>
        o.storage.stats().expiring - o.storage.dueCount(o.storage.clock.wallNow()),
      readQuorum: o.readQuorum,
      writeQuorum: o.writeQuorum,
      ...(o.refusing ? { refusing: o.refusing } : {}),
    };
  }

  /** Whether this node may answer a read from its own copy alone now (ClusterOptions.alone). */
  #mayAnswerAlone(): boolean {
    return this.#o.alone === undefined || this.#o.alone.may();
  }

  /**
   * `read` once a member told this node its ring (ClusterOptions.alone's until; rejected when
   * none did), unless the node then drops the records of a ring it was taken out of (refused, as
   * every command is meanwhile). `read` places the key again: the rings may have changed.
   */
  #onceHeard<T>(read: () => T | Promise<T>): Promise<T> {
    return this.#o.alone!.until().then(() => {
      this.#o.checkIdentity?.();
      return read();
    });
  }

  /**
   * #onceHeard(read) when a read placed at `p` has its read quorum met by this node alone and it
   * may not answer alone now (ClusterOptions.alone); null to read as placed.
   */
  #unheard<T>(p: Placement, read: () => T | Promise<T>): Promise<T> | null {
    if (this.#o.alone === undefined || Math.min(this.#o.readQuorum, p.target.length) !== 1)
      return null;
    if (!p.all.includes(this.#o.replicas.self) || this.#o.alone.may()) return null;
    return this.#onceHeard(read);
  }

  /** True when this node is the key's only replica (one member, or RF 1 owned here). */
  #alone(key: Buffer): boolean {
    return this.#shared(key) === null;
  }

  /**
   * The key's placement, or null when this node is its only replica. Placed once per request
   * and handed on (hashing the key and walking the ring was 4% of a 3-node GET, placed three
   * times); placed again after an await, when the rings may have changed. A key some of whose
   * settled owners are recorded lost is never this node's alone, even when it is the only one
   * left to ask (RF 1, or a target ring of this node alone): its reads and writes are held to
   * the bound of #vouched, which the paths for a key of this node alone do not check (they
   * answered an RF-1 GET from this node's copy while the key's settled owner had handed its
   * newest write off to another ring).
   */
  #shared(key: Buffer): Placement | null {
    const p = this.#o.topology.place(key);
    return p.all.length === 1 && p.all[0] === this.#o.replicas.self && p.lostOwners === 0
      ? null
      : p;
  }

  /**
   * Throws KV_ERR_UNAVAILABLE when so many of the key's settled owners are recorded lost (not
   * handed off to this node's target ring) that the holders left do not vouch for every
   * acknowledged write (settledVouches): a read would then answer from a quorum of the target
   * ring alone, which may miss the newest write, made under another member's target ring; a
   * write would reach too few holders for a member that has not recorded the losses yet. A write
   * that the acknowledgements of lost owners in this node's target ring would make vouched
   * (writeAcksNeeded) is not refused: the group of those owners it needs is returned, for the
   * write to wait for as for its other groups (null: nothing more).
   */
  #vouched(p: Placement, what: 'read' | 'write'): QuorumGroup | null {
    const lost = p.lostOwners;
    if (lost === 0) return null;
    const o = this.#o;
    const c = {
      holders: p.settled.length,
      lost,
      mayAnswer: p.lostMayAnswer,
      owners: o.topology.rf(o.topology.settled),
    };
    if (settledVouches(what, c, o.readQuorum, o.writeQuorum)) return null;
    if (what === 'write') {
      const members = p.mayAnswerInTarget;
      const need = writeAcksNeeded(c, members.length, o.readQuorum, o.writeQuorum);
      if (need !== null) return { members, need };
    }
    throw unvouched(what, c);
  }

  #groups(p: Placement, need: number): QuorumGroup[] {
    const groups = [{ members: p.target, need: Math.min(need, p.target.length) }];
    if (p.settled !== p.target)
      groups.push({ members: p.settled, need: Math.min(need, p.settled.length) });
    return groups;
  }

  /**
   * Writes `record` to every owner in `p` (see the class comment). The placement's rings go with
   * it to the other owners (ApplyRequest.p): one that routes by other rings passes it on. A write
   * passed on here (reroute) goes without rings, so it is never passed on twice, and with its
   * coordinator's deadline.
   */
  #write(
    key: Buffer,
    record: StoredRecord,
    p: Placement,
    encoded?: Buffer,
    placedHow?: ApplyHow,
    hintBefore?: number,
  ): Promise<Reply> {
    // Not an async function (one per client write; its frame was the largest allocation of a
    // write's path, bench/write-path.ts): what throws rejects all the same.
    try {
      const lostAcks = this.#vouched(p, 'write');
      const groups = this.#groups(p, this.#o.writeQuorum);
      if (lostAcks !== null) groups.push(lostAcks);
      const raw = encoded ?? encodeRecord(record);
      const how = placedHow ?? { rings: p.rings };
      const entry: WireEntry[] = [[key, raw]];
      const records = [record];
      // Every owner is tried, even one the failure detector calls down: a dead peer fails fast
      // (refused, or in reconnect backoff) and gets a hint; a slow one is not waited for.
      // Encoded once: this node stores and every peer receives the same bytes.
      return writeQuorum(
        p.all,
        groups,
        'write quorum',
        (name) => this.#o.replicas.apply(name, entry, records, how),
        (name) => {
          if (hintBefore === undefined || Date.now() < hintBefore) this.#o.hint(name, key, raw);
        },
      ).then(answerOk);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * #write of a record that carries a value read earlier, by a read begun at `readAt` (an expiry
   * change): as a read repair (#repairOne), its copies land by `readAt` plus the repair window,
   * or not at all, and one that fails is hinted only before then; past it the write fails before
   * anything is sent. Its version is newer than the value's, but a delete made while the read
   * waited wins over it (its `base`) only while that delete's tombstone is there.
   */
  #writeBack(key: Buffer, record: StoredRecord, p: Placement, readAt: number): Promise<Reply> {
    const deadline = this.#repairDeadline(readAt);
    if (deadline === undefined) return this.#write(key, record, p);
    if (Date.now() >= deadline) {
      return Promise.reject(
        new KvError(
          'KV_ERR_UNAVAILABLE',
          `replication: the expiry change's read took longer than the repair window (${this.#o.repairWithinMs} ms: --tombstone-grace-ms less clock offsets and a tombstone copy timeout); the key was not written; retry`,
        ),
      );
    }
    return this.#write(key, record, p, undefined, { rings: p.rings, deadline }, deadline);
  }

  /**
   * Reads the newest record among a read quorum; repairs stale replicas in the background. One
   * replica is read whole and the others for their headers (DigestPlan); a newer header than
   * the whole record costs one more request, for that record whole. `value` false: the caller
   * uses the record's versions, flags and expiry, never its value (EXISTS, REMOVE), so every
   * other replica is asked for its header and the record may come back without its value.
   */
  #read(key: Buffer, p: Placement, value = true): Promise<StoredRecord | null> {
    const { promise, resolve, reject } = Promise.withResolvers<StoredRecord | null>();
    this.#readThen(key, p, value, resolve, reject);
    return promise;
  }

  /**
   * #read answered through callbacks: exactly one of `done` and `fail` is called, once, now or
   * later (the common read calls it in the callback of the other owner's answer, with no promise
   * between: GET). They must not throw.
   */
  #readThen(key: Buffer, p: Placement, value: boolean, done: ReadDone, fail: Fail): void {
    const waited = this.#unheard(p, () => this.#readAgain(key, value));
    if (waited !== null) {
      waited.then(done, fail);
      return;
    }
    // Before any replica is asked: what the read finds is as of then or later (Asked.start).
    const start = Date.now();
    if (p.settled !== p.target || this.#preference.askAll(this.#o.readRepairChance)) {
      try {
        this.#vouched(p, 'read');
      } catch (err) {
        fail(err);
        return;
      }
      this.#askAll(key, p, value, start)
        .then((asked) => this.#newest(key, p, asked, value))
        .then(done, fail);
      return;
    }
    if (
      Math.min(this.#o.readQuorum, p.target.length) === 2 &&
      p.target.includes(this.#o.replicas.self)
    ) {
      this.#readHereAndOne(key, p, value, start, done, fail);
      return;
    }
    this.#askQuorum(key, p, value, start)
      .then((asked) => this.#newest(key, p, asked, value))
      .then(done, fail);
  }

  /** #read of `key` placed again (the rings may have changed while it waited). */
  #readAgain(key: Buffer, value: boolean): StoredRecord | null | Promise<StoredRecord | null> {
    const p = this.#shared(key);
    return p === null ? this.#readHere(key) : this.#read(key, p, value);
  }

  /** This node's record of `key`, of which it is the only replica (once it may answer alone). */
  #readHere(key: Buffer): StoredRecord | null | Promise<StoredRecord | null> {
    if (this.#mayAnswerAlone()) return this.#o.storage.get(key) ?? null;
    return this.#onceHeard(() => this.#readAgain(key, true));
  }

  /**
   * The common quorum read (a read quorum of two, this node an owner): this node's record, read
   * once the other owner answered, and that owner's header (oneMore: the same owners asked, in the same order and
   * on the same failures and delays, as #askQuorum's, each for its header: this node's record is
   * the whole one). When the header is this node's record's, as replicas in step return, nothing
   * else is made: no answer maps, no repair.
   */
  #readHereAndOne(
    key: Buffer,
    p: Placement,
    value: boolean,
    start: number,
    done: ReadDone,
    fail: Fail,
  ): void {
    this.#quorumReads.inc();
    this.#readsHere.inc();
    const early = this.#takeHere(key);
    const ask: OneMoreAsk<Buffer | null>['call'] = (name, _speculative, ok, failed) => {
      this.#readsThere.inc();
      this.#o.replicas.getThen(name, key, p.terms.of(name), true, ok, failed);
    };
    const answered = ({ name, value: theirs, calls }: OneMoreResult<Buffer | null>) => {
      let newest: StoredRecord | null | Promise<StoredRecord | null>;
      try {
        // This node's record is read once the other owner's header is in, not before: a read
        // waiting for it holds no copy of the value (40 clients' 1 MiB GETs arriving together
        // held 624 copies at once). Read later, it is at least as new: still within the read.
        // A small one the reply budget's count read as the GET started (#takeHere) is used as
        // it is: read within the read too, and no second lookup.
        const mine = early !== undefined ? early : this.#o.replicas.getHere(key);
        if (
          calls.length === 1 &&
          (theirs === mine || (theirs !== null && mine !== null && sameWrite(theirs, mine)))
        ) {
          newest = mine === null ? null : decodeRecord(mine);
        } else {
          const answers = new Map<string, Buffer | null>([
            [this.#o.replicas.self, mine],
            [name, theirs],
          ]);
          const all = new Map<string, Promise<Buffer | null>>([
            [this.#o.replicas.self, Promise.resolve(mine)],
            ...calls.map((c) => [c.name, c.promise] as const),
          ]);
          const heads = new Set(calls.map((c) => c.name));
          newest = this.#newest(key, p, { ok: answers, calls: all, heads, start }, value);
        }
      } catch (err) {
        fail(err);
        return;
      }
      if (newest instanceof Promise) newest.then(done, fail);
      else done(newest);
    };
    oneMore(
      {
        order: this.#askOrder(p.target, false),
        call: ask,
        speculateMs: this.#o.readSpeculateMs,
        onSpeculate: this.#onSpeculate,
        what: 'read quorum',
      },
      answered,
      fail,
    );
  }

  readonly #onSpeculate = () => this.#speculations.inc();

  /**
   * The newest record among a quorum's answers; repairs the owners asked that hold older ones.
   * When only headers held it, it is read whole from one of the owners that returned it (one
   * more round trip, kvstore_read_fetches_total) before the read answers, or, for a read that
   * needs no value, while it answers with the header.
   */
  #newest(
    key: Buffer,
    p: Placement,
    asked: Asked,
    value: boolean,
  ): StoredRecord | null | Promise<StoredRecord | null> {
    const newest = newestOf(asked.ok, asked.heads);
    if (newest.record === null) return null;
    if (newest.whole !== null) {
      this.#repair(key, newest.record, newest.whole, asked, p.target);
      return newest.record;
    }
    const header = newest.record;
    if (!value) {
      this.#repairLater(key, p, header, newest.holders, asked);
      return header;
    }
    return this.#fetch(key, p, newest.holders, header).then((got) => {
      this.#repair(key, got.record, got.raw, asked, p.target);
      return got.record;
    });
  }

  /**
   * #repair for a read that answered from `header`, the newest record, held whole by none of the
   * replicas it asked: once a target owner turns out older, reads the record whole from one of
   * `holders` and repairs (anti-entropy repairs them when that fails). Nothing is read when none
   * is older.
   */
  #repairLater(
    key: Buffer,
    p: Placement,
    header: StoredRecord,
    holders: readonly string[],
    asked: Asked,
  ): void {
    let fetched = false;
    const repair = () => {
      if (fetched) return;
      fetched = true;
      this.#fetch(key, p, holders, header).then(
        (got) => this.#repair(key, got.record, got.raw, asked, p.target),
        () => {},
      );
    };
    for (const [name, call] of asked.calls) {
      if (!p.target.includes(name)) continue;
      const theirs = asked.ok.get(name);
      if (theirs !== undefined) {
        if (olderThan(theirs, header)) repair();
      } else
        call.then(
          (t) => {
            if (olderThan(t, header)) repair();
          },
          () => {},
        );
    }
  }

  /**
   * The record of `key` whole from one of `holders` (the owners whose header was the newest a
   * read found, tried in turn): at least as new as `header`. KV_ERR_UNAVAILABLE when none of
   * them returns it (failed, or returned an older record: it lost it meanwhile).
   */
  async #fetch(
    key: Buffer,
    p: Placement,
    holders: readonly string[],
    header: StoredRecord,
  ): Promise<{ record: StoredRecord; raw: Buffer }> {
    this.#fetches.inc();
    const failed: string[] = [];
    for (const name of holders) {
      try {
        const raw = await this.#ask(name, key, p, false);
        if (raw !== null) {
          const record = decodeRecord(raw);
          if (compareRecords(record, header) >= 0) return { record, raw };
        }
        failed.push(`${name}: older`);
      } catch (err) {
        failed.push(
          `${name}: ${err instanceof KvError ? wireCode(err.code).toLowerCase() : 'error'}`,
        );
      }
    }
    throw new KvError(
      'KV_ERR_UNAVAILABLE',
      `replication: read quorum: the newest version could not be read whole (${failed.join(', ')})`,
    );
  }

  /**
   * One replica's record of `key` for a quorum read, counted by where it is read; `headers`: for
   * another member, its header alone (Replicas.get). The request carries the terms of the rings
   * the read was placed under (`p`), also when it leaves later (the end of the turn, a failure,
   * speculation) and the rings changed meanwhile.
   */
  #ask(name: string, key: Buffer, p: Placement, headers: boolean): Promise<Buffer | null> {
    (name === this.#o.replicas.self ? this.#readsHere : this.#readsThere).inc();
    return this.#o.replicas.get(name, key, p.terms.of(name), headers);
  }

  /** Asks a read quorum of the target owners first (see the class comment). */
  #askQuorum(key: Buffer, p: Placement, value: boolean, start: number): Promise<Asked> {
    this.#quorumReads.inc();
    const owners = p.target;
    const plan = new DigestPlan(this.#o.replicas.self, value);
    return targetedQuorum({
      order: this.#askOrder(owners, true),
      need: Math.min(this.#o.readQuorum, owners.length),
      call: (name, speculative) =>
        plan.ask(name, speculative, (headers) => this.#ask(name, key, p, headers)),
      speculateMs: this.#o.readSpeculateMs,
      onSpeculate: this.#onSpeculate,
      what: 'read quorum',
    }).then(({ ok, calls }) => ({ ok, calls, heads: plan.heads, start }));
  }

  /**
   * The order a quorum read asks `owners` in: this node first (when it is one of them and
   * `withSelf`), then the others the failure detector has up, then those it has down; the others
   * in each part in the turn's order (ReadPreference).
   */
  #askOrder(owners: readonly string[], withSelf: boolean): string[] {
    const self = this.#o.replicas.self;
    const up: string[] = [];
    const down: string[] = [];
    let here = false;
    for (const n of owners) {
      if (n === self) here = withSelf;
      else (this.#o.isUp(n) ? up : down).push(n);
    }
    const members = this.#o.topology.target.members;
    this.#preference.order(up, members);
    if (down.length > 0) {
      this.#preference.order(down, members);
      up.push(...down);
    }
    if (here) up.unshift(self);
    return up;
  }

  /**
   * Asks every owner in both rings, in #askOrder's order (the first whole, DigestPlan); a read
   * quorum in each must answer.
   */
  async #askAll(key: Buffer, p: Placement, value: boolean, start: number): Promise<Asked> {
    this.#allReads.inc();
    const plan = new DigestPlan(this.#o.replicas.self, value);
    const calls = new Map<string, Promise<Buffer | null>>();
    for (const name of this.#askOrder(p.all, true)) {
      calls.set(
        name,
        plan.ask(name, false, (headers) => this.#ask(name, key, p, headers)),
      );
    }
    const ok = await quorum(calls, this.#groups(p, this.#o.readQuorum), 'read quorum');
    return { ok, calls, heads: plan.heads, start };
  }

  /**
   * Sends the newest record to the target owners that returned an older one (or none): those in
   * the read's answers at once, the others as they answer. An answer may be a header
   * (DigestPlan): it orders as its record does.
   */
  #repair(
    key: Buffer,
    newest: StoredRecord,
    raw: Buffer,
    asked: Asked,
    owners: readonly string[],
  ): void {
    const deadline = this.#repairDeadline(asked.start);
    for (const [name, call] of asked.calls) {
      // Only owners in the target ring are repaired: a settled-ring owner that is losing the key
      // may already have dropped it, and must not be handed a copy it no longer owns.
      if (!owners.includes(name)) continue;
      const theirs = asked.ok.get(name);
      if (theirs !== undefined) this.#repairOne(name, key, newest, raw, theirs, deadline);
      else
        call.then(
          (t) => this.#repairOne(name, key, newest, raw, t, deadline),
          () => {},
        );
    }
  }

  /**
   * The time (Date.now()) by which a repair of a read begun at `start` must land
   * (ClusterOptions.repairWithinMs); undefined: no bound.
   */
  #repairDeadline(start: number): number | undefined {
    const within = this.#o.repairWithinMs;
    return within === undefined ? undefined : start + within;
  }

  /**
   * Repairs `name` when `theirs` (its answer, whole or a header) is older than `newest` (`raw`),
   * by `deadline` (#repairDeadline): past it the repair is dropped, not sent, and one that fails
   * is hinted only while before it. A repair writes back what the read found when it began, and
   * a delete made since may have been collected past it: sent later, or hinted and delivered
   * later, it would bring the deleted value back.
   */
  #repairOne(
    name: string,
    key: Buffer,
    newest: StoredRecord,
    raw: Buffer,
    theirs: Buffer | null,
    deadline: number | undefined,
  ): void {
    if (theirs !== null && (sameWrite(theirs, raw) || !olderThan(theirs, newest))) return;
    // Nothing there, and the newest holds no value and took effect longer ago than a copy of
    // it lands (StorageOptions.lateLandingMs): there is nothing to delete there. A member that
    // collected it before the others did would take it again on every read of the key (the
    // store keeps it as it was where it holds nothing, so it goes in that member's next pass).
    if (theirs === null && this.#o.storage.landsLate(newest)) return;
    if (deadline !== undefined && Date.now() >= deadline) {
      this.#repairsDropped.inc();
      return;
    }
    this.#repairs.inc();
    this.#o.replicas.apply(name, [[key, raw]], undefined, { deadline }).catch(() => {
      if (deadline === undefined || Date.now() < deadline) this.#o.hint(name, key, raw);
      else this.#repairsDropped.inc();
    });
  }

  #get(key: Buffer, p: Placement): Promise<Reply> {
    const { promise, resolve, reject } = Promise.withResolvers<Reply>();
    const done = (rec: StoredRecord | null) => {
      let reply: Reply;
      try {
        reply = this.#valueOf(rec);
      } catch (err) {
        reject(err);
        return;
      }
      resolve(reply);
    };
    this.#readThen(key, p, true, done, reject);
    return promise;
  }

  /**
   * EXISTS's read of one key: whether it holds a live value, answered as an empty value (so
   * EXISTS reads no values, and none count towards --max-multi-read-bytes). This node's record is
   * read in place, every other replica's header alone.
   */
  readonly #exists = (key: Buffer): Reply | Promise<Reply> => {
    const p = this.#shared(key);
    if (p !== null) return this.#read(key, p, false).then(this.#foundOf);
    if (!this.#mayAnswerAlone()) return Promise.resolve(this.#readHere(key)).then(this.#foundOf);
    return this.#o.storage.withRaw(key, this.#liveHere) ? FOUND : NOT_FOUND;
  };

  readonly #liveHere = (raw: Buffer | undefined): boolean =>
    raw !== undefined && liveValueStart(raw, this.#wallNow) >= 0;

  readonly #foundOf = (rec: StoredRecord | null): Reply =>
    rec && isLive(rec, this.#o.storage.clock.wallNow()) ? FOUND : NOT_FOUND;

  /**
   * A new version for a write, checked in the same turn that this node may make versions
   * (checkClock): a check when the command arrived does not cover a version made after a read.
   */
  #version(): Version {
    const at = this.#o.checkClock?.();
    const clock = this.#o.storage.clock;
    return typeof at === 'number' ? clock.nowAt(at) : clock.now();
  }

  async #remove(key: Buffer, p: Placement): Promise<Reply> {
    const clock = this.#o.storage.clock;
    // The tombstone's version when the read finds nothing live: made as the REMOVE arrives.
    const arrived = this.#version();
    // Its versions decide (never its value): every other replica sends a header alone.
    const rec = await this.#read(key, p, false);
    if (rec) clock.observe(rec.version);
    const found = rec !== null && isLive(rec, clock.wallNow());
    // A tombstone also when the read found nothing live: a write that failed may have reached a
    // replica the read did not ask (or be newer than the tombstone it read), and would come back
    // once the replicas compare, after this REMOVE was answered. The reply is still the read's.
    // Found: above the value found, so that OK means it is gone. Not found: the version made on
    // arrival, above every write made before it (a failed PUT answered before this REMOVE was
    // sent), below a write made after it arrived that its read missed (copies still in flight):
    // a REMOVE answering NOT_FOUND does not delete a PUT made after it began.
    // Checked again: the clock may have been stepped while the read waited. Before, a REMOVE whose
    // read was out when the clock was stepped 5 s ahead made its tombstone's version under the
    // stepped clock (peers refused it, this node kept it), and the clock, which never goes back,
    // stayed 5 s ahead once the wall clock was back in step: the next writes through this node,
    // refused too and kept here, won over writes acknowledged after them (chaos seed 28004).
    const version = found ? this.#version() : arrived;
    // Placed again: the rings may have changed while the read waited.
    const now = this.#o.topology.place(key);
    await this.#write(key, { version, tombstone: true, value: EMPTY }, now);
    return found ? OK : NOT_FOUND;
  }
}
