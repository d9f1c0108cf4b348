// The peer methods nodes call on each other, with their request and reply shapes.

import type { TransferView } from '../admin/index.ts';
import { PEER_AUTH_METHODS } from '../auth/index.ts';
import type { StoredRecord } from '../storage/index.ts';

/** A key and its record in encodeRecord format, as sent between nodes. */
export type WireEntry = [key: Buffer, raw: Buffer];

/** Lifecycle of a node as it reports itself. */
export type NodeStatus = 'active' | 'decommissioning' | 'decommissioned';

/**
 * A settled ring as nodes save and exchange it: the members known to hold the data. Every change
 * makes a higher epoch; a node adopts a newer one a peer reports and never goes back (see
 * membership/settled.ts for the order).
 */
export interface SettledRing {
  /** 0 for the ring a cluster started with; higher for every later change. */
  readonly epoch: number;
  /** Member names, sorted. */
  readonly members: readonly string[];
  /**
   * Incarnation of each member's data directory when it became a holder of this ring's data.
   * A name without one was not known yet (a ring the cluster started with).
   */
  readonly incarnations: Readonly<Record<string, string>>;
  /**
   * Members whose data directory is not the one this ring's data was put in (back empty under
   * their name): they keep their place in the ring, so no key moves to a member that never held
   * it, but hold nothing until the ring with them settles again. Sorted; [] from older versions.
   */
  readonly lost: readonly string[];
  /**
   * Of `lost`, the members recorded lost for their hand-off (a holder of this ring that reported
   * itself decommissioned), each with the target ring it reported then: the ring its data was
   * handed off to. A node that did not see the hand-off itself (it started after the member's pod
   * went) counts it as handed off to that ring from this record (Topology.place). Absent when
   * none, and from versions before 2026-12-07.
   */
  readonly handedOff?: Readonly<Record<string, string>>;
  /**
   * Of `lost`, the members whose hand-off a member took back (they said they run again after it):
   * no record made from this one or merged with it keeps their hand-off (`handedOff` leaves them
   * out) until the ring settles. Sorted; absent when none, and from versions before 2026-12-07
   * (session 36).
   */
  readonly takenBack?: readonly string[];
}

/**
 * `hello`'s request: who asks, and whether it might take clients. Empty from older versions. A
 * node whose member source never answered knows no member, but the members that probe it say
 * whether one of them would serve its clients better (Callers, refusalOf).
 */
export interface HelloRequest {
  /** The asking node's name. */
  readonly name?: string;
  /**
   * True while the asker takes writes and its disk answers: no refusal for its clock, no stall,
   * no records being dropped, no start-up deciding whether they must be.
   */
  readonly serving?: boolean;
  /**
   * The epoch of the asker's settled ring, and how often it probes (--probe-interval-ms): a
   * member of this ring that keeps probing a node tells it that its ring is still the cluster's,
   * so that it may answer reads alone (RingFencing.mayAnswerAlone); a newer epoch makes it ask
   * the members for their rings at once.
   */
  readonly epoch?: number;
  readonly probeMs?: number;
}

/** `hello`: who a node is and how far its view of the ring has come. */
export interface HelloReply {
  readonly name: string;
  /**
   * Random id of this node's data directory, made when the directory was created: a node back
   * under the same name with a new (empty) directory has a new one.
   */
  readonly incarnation: string;
  readonly status: NodeStatus;
  /** Id of the ring this node routes to (its target ring). */
  readonly ringId: string;
  /**
   * The transfer whose outbound stream this node finished (`<settled id>:<target id>`, see
   * Topology.transferId), or null.
   */
  readonly rebalanced: string | null;
  /** The ring this node knows holds the data (a new node adopts it, others a newer one). */
  readonly settled: SettledRing;
  /**
   * Hints this node holds (writes not delivered yet): while any member holds one, no tombstone
   * is collected (Topology.atRest). 0 from older versions.
   */
  readonly hints: number;
  /** What the node holds and moves, for status views (absent from older versions). */
  readonly load?: MemberLoad;
  /**
   * The node's wall clock (ms since the epoch) when it answered: the asker measures how far
   * apart their clocks are (Membership, ClockCheck). Absent from older versions.
   */
  readonly clock?: number;
  /**
   * The node's --replication-factor, --write-quorum and --read-quorum as configured (before
   * clamping), so members can see that they agree (ReplicationCheck). Absent from older versions.
   */
  readonly replication?: ReplicationSettings;
  /**
   * The names this node's member list holds (its `--peers` or DNS answer, itself included),
   * sorted: what its target ring is made of, less members leaving, and the members it keeps while
   * its source no longer lists them (--unlisted-grace-ms), as older versions list them too (they
   * compare it with their own as it is). Absent until its source first answered, and from older
   * versions. Members compare it with their own (MembershipCheck), less the `kept` names.
   */
  readonly listed?: readonly string[];
  /**
   * The names of `listed` this node keeps while its source no longer lists them, sorted, when
   * some: passing, they say nothing of its configuration (MembershipCheck leaves them out of the
   * comparison). Absent when none, and from older versions.
   */
  readonly kept?: readonly string[];
  /**
   * How many addresses its source's last answer listed that it could not name yet (A records
   * with no PTR name that have not said who they are: Membership.unnamed), when some: `listed`
   * may lack that many members. Absent when none, and from older versions.
   */
  readonly unnamed?: number;
  /**
   * Present (true) while this node's disk is stalled (Storage.stalled): members treat it as down
   * for data (no reads, writes or hint deliveries; hints kept for it) while it stays a member,
   * in the ring. Absent while its disk answers, and from older versions.
   */
  readonly storageStalled?: true;
  /**
   * Present (true) while this node refuses writes for its clock (ClockCheck.refusal: off from its
   * peers', stepped, ahead of its versions, or not compared since it started). A member that
   * refuses writes for its own clock stays ready (/readyz 200 `degraded`) unless another member
   * it knows might take its clients instead: one not down, its disk answering, and not refusing
   * writes for its clock too (refusalOf), so that a cluster whose every clock is off from every
   * other's keeps serving reads. Absent while it takes writes, and from older versions.
   */
  readonly clockRefusing?: true;
  /**
   * Present (true) while it refuses writes for a doubt about its own clock (ClockCheck.ownDoubt:
   * stepped, not shown within the bound since its start, versions ahead, or off from two or more
   * members), not on the word of its only witness: a peer then takes its clock's measurement for
   * no witness. Absent otherwise, and from older versions (whose measurements count as before).
   */
  readonly clockSuspect?: true;
  /**
   * Present (true) while this node's storage refuses writes (Storage.writeFailure: a full disk,
   * LMDB or the log failing): it stores no replica of a write, while it serves reads and stays a
   * member. For status views (CLUSTER, the console, the operator). Absent while it takes writes,
   * and from older versions.
   */
  readonly storageNotWritable?: true;
  /**
   * When this node's process started (ms since the epoch). A member that answers with another
   * value than before was restarted in between, perhaps faster than probes call a member down,
   * and may have missed writes meanwhile (Membership.interruptions). Absent from older versions.
   */
  readonly started?: number;
}

/**
 * `f`, the ring fence every data request carries (every method but `hello` and the handshake),
 * from senders that have it: `[epoch, sender, addressee]`. `epoch`: the sender's settled ring's;
 * `sender`: its name when that ring lists it (a holder of data), else ''; `addressee`: 1 when
 * that ring lists the member the request goes to, else 0. A receiver refuses the request with
 * KV_ERR_STALE_RING when the two rings say one of them was taken out of the ring while the
 * other settled without it (membership/ring-fence.ts): its records may hold values deleted
 * since. Receivers before it ignore the field; requests without it are not fenced.
 */
export type RingFence = readonly [epoch: number, sender: string, addressee: 0 | 1];

/** A node's replication flags. */
export interface ReplicationSettings {
  readonly rf: number;
  readonly w: number;
  readonly r: number;
}

/**
 * A node's figures as it reports them in hello: for `kvctl status` and the console only (never
 * for routing; a change of them alone is not a membership change).
 */
export interface MemberLoad {
  /** Live keys stored. */
  readonly keys: number;
  readonly tombstones: number;
  /** Size of the LMDB data file. */
  readonly bytes: number;
  /** Hints this node holds, by the member they are for. */
  readonly hintsFor: Readonly<Record<string, number>>;
  /** The node's running or last stream (rebalance's StreamProgress), or null. */
  readonly transfer: TransferView | null;
}

/**
 * How the asker counts the replica it reads from. `i`: it asks as a holder of the settled ring,
 * with the incarnation that ring recorded for it; a replica with another incarnation refuses
 * (KV_ERR_WRONG_INCARNATION) rather than answer from a directory that does not hold that data.
 * `o` (1): the replica is not in the asker's target ring, so the asker reads a quorum of that
 * ring as well. A replica whose decommission hand-off finished answers only such reads
 * (otherwise KV_ERR_HANDED_OFF): an asker without `o` has not learned that it left, and would
 * count its copies, which the writes of members that know no longer reach, alone.
 */
export interface ExpectIncarnation {
  readonly i?: string;
  /**
   * With `i`: the epoch of the settled ring that recorded it, the ring the read was placed under
   * (its request may leave later, under a newer ring fence). A replica whose own ring records its
   * directory lost answers `i` only from a ring newer than its own (ReplicaHandlerOptions.lostAt).
   * Absent (members before 2026-12-07): the request's ring fence stands for it.
   */
  readonly ir?: number;
  readonly o?: 1;
}

/**
 * A quorum read's digest: `h` asks for each record without its value (withoutValue), for a
 * replica whose record the coordinator only compares with the one it reads whole from another
 * replica. Members before it ignore it and send records whole. Absent: records whole.
 */
export interface HeadersOnly {
  readonly h?: boolean;
}

/** `get`: the record stored at a key (tombstones included). */
export interface GetRequest extends ExpectIncarnation, HeadersOnly {
  readonly k: Buffer;
}
export interface GetReply {
  readonly r: Buffer | null;
}

/**
 * `getMany`: the records stored at several keys (tombstones included), in the order asked. A
 * replica answers a prefix: every key up to the one whose record takes the reply past
 * GET_MANY_REPLY_BYTES (always at least one key); the caller asks again for the rest. Members
 * before this method answer KV_ERR_UNKNOWN_COMMAND, and the caller falls back to `get`.
 */
export interface GetManyRequest extends ExpectIncarnation, HeadersOnly {
  readonly ks: Buffer[];
}
export interface GetManyReply {
  readonly rs: (Buffer | null)[];
}
/** The most keys one `getMany` may ask for. */
export const GET_MANY_MAX_KEYS = 256;
/** Record bytes after which a replica stops adding to a `getMany` reply. */
export const GET_MANY_REPLY_BYTES = 4 * 1024 * 1024;

/** `apply`: last-write-wins writes, durable before the reply. */
export interface ApplyRequest {
  readonly e: WireEntry[];
  /**
   * Deadline (ms since the epoch, sender's clock): when the sender stops waiting for the reply.
   * A replica that reads the request later than that (plus --max-clock-offset-ms) refuses it
   * (KV_ERR_EXPIRED): a write nobody waits for could land after a delete of its key was
   * collected. Absent: no deadline (older senders).
   */
  readonly d?: number;
  /**
   * The rings the coordinator placed these writes under (Topology.placementId). A replica that
   * routes by other rings does not just store them: it writes each to the key's owners in its
   * own rings, a write quorum in each, before it answers (a coordinator that has not learned of
   * a join yet would otherwise leave the new owners without a write they never stream again).
   * Absent: a write addressed to this replica alone (hint, read repair, rebalance stream; older
   * senders), stored as it is.
   */
  readonly p?: string;
}
/** The longest `p` a replica reads (a placementId is 16 characters; room for other forms). */
export const MAX_PLACEMENT_CHARS = 4096;
export interface ApplyReply {
  /**
   * Entries that were newer than what the replica had; for writes it passed on (see `p`), how
   * many it passed on.
   */
  readonly n: number;
}

/** `scan`: records in key order within bounds, tombstones included. */
export interface ScanRequest extends ExpectIncarnation {
  readonly s: Buffer;
  /** End bound, or null for the end of the keyspace. */
  readonly e: Buffer | null;
  /** End inclusive. */
  readonly ie: boolean;
  /** Start exclusive. */
  readonly xs: boolean;
  /** Most entries to return. */
  readonly l: number;
  /**
   * Headers only: each record without its value (withoutValue), for a RANGE or PREFIX, which
   * merges versions and never reads values. Absent (older coordinators, and any other use):
   * records whole. Either way a reply stops at SCAN_REPLY_BYTES.
   */
  readonly h?: boolean;
}

/**
 * Bytes of records after which a member ends its scan reply (with `more`), at least one entry:
 * records whole of large values would otherwise pass the peer frame limit (80 of 1 MiB did).
 */
export const SCAN_REPLY_BYTES = 4 * 1024 * 1024;
/**
 * Entries a coordinator's scan round asks of each member beyond what it still needs: room for
 * tombstones, which the merge drops.
 */
export const SCAN_SLACK = 32;

/** The most entries one scan round asks a member for, with --max-scan-keys `maxScanKeys`. */
export function scanRoundLimit(maxScanKeys: number): number {
  return maxScanKeys + SCAN_SLACK;
}

/**
 * The largest `l` a member serves (larger asks are refused): what its own coordinator may ask
 * (scanRoundLimit) and SCAN_SLACK more, for a coordinator whose --max-scan-keys is that much
 * larger while a configuration change rolls through the cluster.
 */
export function scanServeLimit(maxScanKeys: number): number {
  return scanRoundLimit(maxScanKeys) + SCAN_SLACK;
}

export interface ScanReply {
  readonly e: WireEntry[];
  /** True when entries remain after the last one returned. */
  readonly more: boolean;
  /**
   * The records of `e`, decoded, when the receiver already decoded them (to check a peer's
   * reply): the coordinator's merge uses them instead of decoding again. Never sent.
   */
  readonly records?: readonly StoredRecord[];
}

export const METHODS = {
  hello: 'hello',
  get: 'get',
  getMany: 'getMany',
  apply: 'apply',
  scan: 'scan',
  /**
   * `synced` (`{}` -> `{b, h}`): answers once every record write the member decided before it came
   * is on its disk, so that what its earlier replies said it holds survives a power cut there.
   * `b`: the id of the answering process (random, made when it started): two answers with the
   * same `b` came from one process, and so did every answer it gave between them (a restart in
   * between would have lost what was not synced). Tombstone collection asks it before and after
   * its questions. `h`: the hints the member holds as it answers (queued ones included), which
   * its hellos say only a probe later: collection goes on only when none holds any (absent from
   * older versions). Members before it answer KV_ERR_UNKNOWN_COMMAND; the first ones with it
   * answer `{}`.
   */
  synced: 'synced',
  /**
   * `decommissioned` (`{n: name}` -> `{s: status | null}`): the member `n` says it finished its
   * decommission (on its way to stop). The node probes `n` at once and takes the answer as any
   * probe's (Membership.probeMember), so only `n`'s own hello at its address counts: a notice
   * naming another member changes nothing. `s`: the status that answer reported, null when `n`
   * is no member here or did not answer. Members before it answer KV_ERR_UNKNOWN_COMMAND.
   */
  decommissioned: 'decommissioned',
  /**
   * The handshake of every connection when a cluster secret is set: `challenge`, then `auth`
   * (auth/peer.ts).
   */
  ...PEER_AUTH_METHODS,
} as const;
