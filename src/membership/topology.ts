// The rings this node routes by: the settled ring (epoch, owner incarnations) and the target ring while data moves.

import type { ExpectIncarnation, NodeStatus, SettledRing } from '../replica/index.ts';
import { Ring, xxh64 } from '../ring/index.ts';
import { inRing, type MemberView } from './manager.ts';
import {
  lostAt,
  newerSettled,
  newestReported,
  own,
  runsAgainAfterLoss,
  sameHandOffs,
  sameNames,
  sameRecord,
  settledRing,
  withHandOffs,
} from './settled.ts';

/** The replicas of one key, and how many of each ring's replicas must answer. */
export interface Placement {
  /**
   * Owners under the settled ring that hold the data: its owners there, less lost ones (a
   * member back empty under its name keeps its place, but holds nothing yet).
   */
  readonly settled: readonly string[];
  /**
   * How many of the key's owners in the settled ring are recorded lost (left out of `settled`)
   * and not known to have handed their data off to this node's target ring: a lost volume, a
   * name back empty, or a hand-off to another target ring than this node's, or one it did not
   * see. The coordinator refuses reads and writes of the key when the holders left cannot vouch
   * for every acknowledged write (settledVouches). 0 when nothing moves.
   */
  readonly lostOwners: number;
  /**
   * Of lostOwners, those that may still answer a read with the data they held: all but owners
   * whose last hello, while they answer, said their own settled ring records them lost without
   * exempting them (lostAt: back on a new data directory and being refilled, also while they
   * decommission or once decommissioned from it), which refuse every read expecting the
   * directory the ring recorded (KV_ERR_WRONG_INCARNATION): another directory's by its
   * incarnation, and the recorded one itself, should the member be back on its old volume,
   * while its own ring records it lost and the reader's is no newer
   * (ReplicaHandlerOptions.lostAt). A decommissioned owner whose ring recorded it lost for that
   * very hand-off keeps its directory and answers reads from members that count it as a holder
   * and read the ring without it too. What a write is held to (settledVouches).
   */
  readonly lostMayAnswer: number;
  /**
   * Of the lostMayAnswer owners, those in the target ring: a write reaches them as target owners,
   * and their acknowledgements may make up for what settledVouches lacks (writeAcksNeeded).
   */
  readonly mayAnswerInTarget: readonly string[];
  /** Owners under the target ring (equal to settled when nothing moves). */
  readonly target: readonly string[];
  /** Both lists merged, each name once: where requests go. */
  readonly all: readonly string[];
  /**
   * The rings this placement was made under (Topology.placementId). A write carries it to its
   * replicas: one that routes by other rings passes the write on to the key's owners in its own
   * (see Replicas.apply).
   */
  readonly rings: string;
  /**
   * What reads placed here expect of each member (RingTerms of the rings this placement was made
   * under): a read's requests carry these, not the terms of the rings when they leave, which may
   * have changed meanwhile (a member recorded lost since would answer from its empty directory
   * and be counted as the holder this placement takes it for).
   */
  readonly terms: RingTerms;
}

/** No member (Placement.mayAnswerInTarget of a key with none). */
const NONE: readonly string[] = Object.freeze([]);

/**
 * How reads made under one version of the rings count each member (Topology.readTerms), fixed
 * for that version. `of` answers the same object for the same name.
 */
export class RingTerms {
  readonly #incarnations: Readonly<Record<string, string>>;
  readonly #target: readonly string[];
  /** The settled ring's epoch (ExpectIncarnation.ir). */
  readonly #epoch: number;
  readonly #memo = new Map<string, ExpectIncarnation>();

  constructor(
    incarnations: Readonly<Record<string, string>>,
    target: readonly string[],
    epoch: number,
  ) {
    this.#incarnations = incarnations;
    this.#target = target;
    this.#epoch = epoch;
  }

  /**
   * The incarnation the settled ring recorded for `name` (`i`, with that ring's epoch `ir`), and
   * whether it is out of the target ring (`o`: then the read asks a quorum of the target as
   * well, and a member that handed its data off may answer it).
   */
  of(name: string): ExpectIncarnation {
    let t = this.#memo.get(name);
    if (t === undefined) {
      const i = own(this.#incarnations, name);
      const o = this.#target.includes(name) ? undefined : 1;
      const ir = this.#epoch;
      t = Object.freeze(
        o === undefined
          ? i === undefined
            ? {}
            : { i, ir }
          : i === undefined
            ? { o }
            : { i, ir, o },
      );
      this.#memo.set(name, t);
    }
    return t;
  }
}

/** What one Topology.update() changed, for logs, metrics and the rebalancer. */
export interface RingChanges {
  /** A newer settled ring a peer reported, now this node's settled ring. */
  readonly adopted: { readonly from: string; readonly ring: SettledRing } | null;
  /**
   * Lost members whose hand-off the settled record no longer keeps: they said they run again
   * after their loss (back on a new directory, or recommissioned).
   */
  readonly takenBack: readonly string[];
  /**
   * Settled owners now recorded as lost: they answer with an incarnation other than the one the
   * ring recorded (a new data directory under an old name), so they do not hold its data.
   */
  readonly replaced: readonly { name: string; recorded: string; incarnation: string }[];
  /** Members whose incarnation the settled ring did not know and now records. */
  readonly recorded: readonly string[];
  /**
   * Settled owners now recorded as lost because they report themselves decommissioned: their
   * hand-off finished, so the ring without them holds everything they held.
   */
  readonly handedOff: readonly string[];
  /** The target ring changed (member list). */
  readonly targetChanged: boolean;
  /** The target became the settled ring. */
  readonly settled: boolean;
  /** The settled ring record changed in any way (it must be saved). */
  readonly settledChanged: boolean;
}

/**
 * Two rings: `settled`, whose owners are known to hold the data, and `target`, built from the
 * current member list. While they differ, data is moving: writes must reach a quorum in both,
 * reads ask both (old owners answer until new owners hold the data).
 *
 * The settled ring is a record (SettledRing): an epoch and the incarnation of each owner's data
 * directory. It only ever moves forward: update() adopts a newer record a peer reports (higher
 * epoch, see newerSettled) and every local change (the target settling, an owner replaced) gets
 * an epoch above every epoch seen. An owner answering with an incarnation other than the
 * recorded one is recorded as lost: it keeps its place in the settled ring (so none of its keys
 * moves to a member that never held them), but is no holder of them (Placement.settled leaves it
 * out) and data moves to it until the target settles, as to a new member. Reads that count an
 * owner as a holder carry the recorded incarnation (readTerms), which a replaced directory
 * refuses: a node that has not seen the new incarnation yet does not count its answers either.
 *
 * A member leaving (decommissioning) is out of the target at once, but stays a holder in the
 * settled ring while it hands its data off, and the target does not settle before it finishes.
 * Once it reports `decommissioned`, it is recorded as lost too: the ring without it holds all it
 * held (its hand-off, and every write since it left the target reached a quorum there), so reads
 * and writes no longer wait for it, and its pod may go before the ring settles.
 */
export class Topology {
  readonly replicationFactor: number;
  #settled: Ring;
  #record: SettledRing;
  #target: Ring;
  /** The placement of every key while the target ring has one member (see place). */
  #sole: Placement | null = null;
  /** Highest settled epoch any member reported. */
  #seenEpoch = 0;
  /** transferId, made again whenever the rings or the lost members change. */
  #transferId = '';
  /**
   * transferId without the directories being refilled: what nodes of versions before 2026-12-07
   * report, taken as done by #trySettle (a ring they settle comes from a node of this version).
   */
  #transferRings = '';
  /** placementId: a digest of #transferId, made with it. */
  #placementId = '';
  /**
   * Members whose hello reported them decommissioned (their hand-off finished), and the target
   * ring they reported then: the ring their data was handed off to. Forgotten when the name
   * reports another status (back, empty, under the same name).
   */
  readonly #handedOff = new Map<string, string>();
  /**
   * Members whose last hello said they run again, not decommissioned, under their name after
   * their loss or hand-off (their own settled ring does not count them as holders: a new data
   * directory, or recommissioned): the settled record's hand-off of such a name (its handedOff)
   * is not taken, as a hello of theirs takes back one this node saw itself.
   */
  readonly #backAfterLoss = new Set<string>();
  /**
   * Members not down whose last hello said their own settled ring records them lost and does not
   * exempt them (lostAt in settled.ts, the rule their reads are refused by): back on a new data
   * directory under their name, being refilled, or handing that directory off (decommissioning,
   * or decommissioned while lost before it: chaos seed 34105, 389 write refusals while such a
   * member decommissioned). A member lost for its own hand-off is exempt, so never among them
   * while it answers (see Placement.lostMayAnswer). Made again at every update() from the members
   * given: one down, or no longer listed (forgotten), counts as one that may answer, as one never
   * heard does: away, it may come back on another data directory, one it handed off with its
   * ring keeping that hand-off (test/unit/settled-vouch.test.ts; before session 36 a member
   * forgotten kept counting as its last hello said).
   */
  readonly #refusingAsLost = new Set<string>();
  /**
   * The data directory (incarnation) each member the settled ring records lost last reported:
   * what the transfer to it refills (transferId names it). A member back on a new directory that
   * loses that one too before the ring settles gets a new transfer: the streams that had filled
   * the directory lost since start again from the first key.
   */
  readonly #lostIncarnations = new Map<string, string>();
  /** The read terms of the rings as they are now; null until asked after a change. */
  #terms: RingTerms | null = null;
  /** This node's name, once update() has been given its own view. */
  #self: string | null = null;

  /**
   * `initial`: the target members. `settled`: the saved (or adopted) record; null makes one of
   * the initial members at epoch 0 (a cluster's first ring), incarnations filled in by update().
   */
  constructor(initial: readonly string[], settled: SettledRing | null, replicationFactor: number) {
    this.replicationFactor = replicationFactor;
    this.#target = new Ring(initial);
    this.#record = settled ?? settledRing(0, this.#target.members, {});
    this.#settled = this.#ringOf(this.#record);
    this.#renameTransfer();
  }

  get settled(): Ring {
    return this.#settled;
  }

  get target(): Ring {
    return this.#target;
  }

  /** The settled ring as a record: what this node saves and reports in hello. */
  get settledRing(): SettledRing {
    return this.#record;
  }

  /** Settled owners that hold nothing (see the class comment); sorted. */
  get lost(): readonly string[] {
    return this.#record.lost;
  }

  /** True while data moves between the settled and the target ring, or to a lost member. */
  get moving(): boolean {
    return this.#settled.id !== this.#target.id || this.#record.lost.length > 0;
  }

  /**
   * Names the data movement from the settled to the target ring: `<settled id>:<target id>`.
   * A node reports the transfer it finished; the target settles only when every target member
   * finished this same one (an owner replaced in the settled ring makes it another transfer, and
   * so does another directory under a lost owner's name: `@` and the directories it reported).
   */
  get transferId(): string {
    return this.#transferId;
  }

  /**
   * The rings keys are placed under, as writes carry them (Placement.rings, ApplyRequest.p): a
   * digest of transferId (16 hex digits), whose lost names could make it kilobytes long.
   */
  get placementId(): string {
    return this.#placementId;
  }

  /**
   * Makes transferId and placementId again (the rings or the lost members changed). Only lost
   * members in the target name the transfer: data moves to them. One out of the target (it
   * handed its data off) changes no key's target owners, and recording it must not restart
   * every member's stream.
   */
  #renameTransfer(): void {
    // Every change of either ring (record or target) comes through here.
    this.#terms = null;
    const lost = this.#record.lost.filter((n) => this.#target.members.includes(n));
    const from = lost.length === 0 ? this.#settled.id : `${this.#settled.id}-${lost.join('+')}`;
    const rings = `${from}:${this.#target.id}`;
    // The directories being refilled name the transfer (a stream that filled one lost since
    // starts again), not the placement: a write's replicas route by the same rings either way.
    const dirs = lost.map((n) => this.#lostIncarnations.get(n)).filter((id) => id !== undefined);
    this.#transferRings = rings;
    this.#transferId = dirs.length === 0 ? rings : `${rings}@${dirs.join('+')}`;
    this.#placementId = xxh64(rings).toString(16).padStart(16, '0');
  }

  /**
   * Notes the directory each lost member reports (its last hello's, kept while it is down) and
   * names the transfer again when one changed: before 2026-12-07 a member back on a new directory
   * whose volume was lost again before the ring settled was recorded as the holder of every key
   * it owned with none of them (the streams had filled the directory before).
   */
  #noteLostDirectories(members: readonly MemberView[]): void {
    const lost = this.#record.lost;
    let changed = false;
    for (const n of [...this.#lostIncarnations.keys()]) {
      if (lost.includes(n)) continue;
      this.#lostIncarnations.delete(n);
      changed = true;
    }
    for (const m of members) {
      const id = m.hello?.incarnation;
      if (!id || !lost.includes(m.name) || this.#lostIncarnations.get(m.name) === id) continue;
      this.#lostIncarnations.set(m.name, id);
      changed = true;
    }
    if (changed) this.#renameTransfer();
  }

  /** The incarnation the settled ring recorded for `name`; undefined when none or not an owner. */
  incarnationOf(name: string): string | undefined {
    return own(this.#record.incarnations, name);
  }

  /** How reads made now count `name` (RingTerms.of): a read placed earlier uses its own. */
  readTerms(name: string): ExpectIncarnation {
    return this.termsNow().of(name);
  }

  /** The read terms of the rings as they are now (the same object until they change). */
  termsNow(): RingTerms {
    this.#terms ??= new RingTerms(
      this.#record.incarnations,
      this.#target.members,
      this.#record.epoch,
    );
    return this.#terms;
  }

  /** Replicas per key in `ring`: the configured factor clamped to its member count. */
  rf(ring: Ring): number {
    return Math.min(this.replicationFactor, ring.members.length);
  }

  /** Sets the target ring from the member names; true when it changed. */
  #setMembers(names: readonly string[]): boolean {
    const next = new Ring(names);
    if (next.id === this.#target.id) return false;
    this.#target = next;
    this.#renameTransfer();
    return true;
  }

  /**
   * Brings the rings up to date with what the members (this node included, with its own hello)
   * report, in this order: adopt the newest settled ring a peer reports when it is newer than
   * this node's; check the settled owners' incarnations (record unknown ones, take replaced
   * owners out, and decommissioned ones); set the target from the members not leaving (inRing);
   * settle the target when every target member finished the transfer to it and no settled
   * holder is still handing its data off.
   *
   * `listed` false (the member source has listed nobody since the process started: its DNS
   * failing) keeps the target as it is: the member list then holds this node alone, which says
   * nothing of the others. Taken as the target, it made a node restarted on its data directory
   * while its DNS server failed move its data to a ring of itself alone and settle that ring at
   * an epoch above the cluster's, which every member then adopted (chaos seed 29004: reads
   * through it answered values overwritten while it was down).
   *
   * `unnamed`: addresses the source lists that have not said who they are yet (Membership.unnamed).
   * While there are any, a holder of the settled ring that is no member here at all may be at
   * one of them, and the target does not settle (#trySettle). `holdUnheard`: nor does it while
   * the caller says so (RingKeeper: such a holder listed nowhere for less than the unlisted grace).
   */
  update(
    members: readonly MemberView[],
    listed = true,
    unnamed = 0,
    holdUnheard = false,
  ): RingChanges {
    const before = this.#record;
    /** This node itself, when its hello says it runs again after its loss (#takeBackHandOffs). */
    let selfBack: string | null = null;
    this.#refusingAsLost.clear();
    for (const m of members) {
      if (m.self) this.#self = m.name;
      const h = m.hello;
      if (!h) continue;
      // Only while it answers: a hello from before a hand-off it made since must not count.
      const decommissioned = h.status === 'decommissioned';
      if (m.state !== 'down' && lostAt(h.settled, m.name, decommissioned) !== null) {
        this.#refusingAsLost.add(m.name);
      }
      if (m.self) {
        if (runsAgainAfterLoss(m.name, h)) selfBack = m.name;
        continue;
      }
      this.#seenEpoch = Math.max(this.#seenEpoch, h.settled.epoch);
      if (h.status === 'decommissioned') {
        this.#handedOff.set(m.name, h.ringId);
        this.#backAfterLoss.delete(m.name);
      }
      // A hello with no ring comes from a member still starting (before it routes it says
      // 'active' whatever it was): a decommissioned member started again must not lose its
      // hand-off, or it counts as a lost owner (chaos seed 33006: 23 s of refused keys).
      else if (h.ringId !== '') {
        this.#handedOff.delete(m.name);
        if (runsAgainAfterLoss(m.name, h)) this.#backAfterLoss.add(m.name);
        else this.#backAfterLoss.delete(m.name);
      }
    }
    const adopted = this.#adoptNewest(members);
    this.#mergeHandOffs(members);
    const takenBack = this.#takeBackHandOffs(members, selfBack);
    const { replaced, recorded } = this.#checkIncarnations(members);
    const handedOff = this.#checkHandOffs(members);
    this.#noteLostDirectories(members);
    const names = members.filter(inRing).map((m) => m.name);
    const targetChanged = listed && names.length > 0 && this.#setMembers(names);
    const settled = this.#trySettle(members, unnamed > 0 || holdUnheard);
    return {
      adopted,
      takenBack,
      replaced,
      recorded,
      handedOff,
      targetChanged,
      settled,
      settledChanged: this.#record !== before,
    };
  }

  /**
   * When this node holds data (`holdsData`, asked last: it may read the disk), a settled ring
   * still at epoch 0 (founded, never changed) that no data moves from (the data is held under
   * it) moves to the next epoch, so that it wins over any ring founded later. At epoch 0 rings
   * are ordered by their member lists, which know nothing of data: a newcomer that heard nobody
   * and founded a ring of itself would otherwise win against a one-member cluster with a smaller
   * name, which would then count the newcomer as the holder of its data. The newcomer, moving
   * data from the start (the old member is in its target), never claims with what that member
   * streamed to it. Members started together move to the same ring at epoch 1.
   *
   * The move waits until every owner's incarnation is known (recorded, or reported now by the
   * member itself in `members`, this node included) and records them all: a ring past epoch 0
   * that lacked one would take whatever directory first reports under that name (a volume
   * replaced since, empty) for the holder of its data. True when it moved (the ring must be
   * saved).
   */
  markHolding(holdsData: () => boolean, members: readonly MemberView[]): boolean {
    const r = this.#record;
    if (r.epoch !== 0 || this.moving) return false;
    const incarnations = { ...r.incarnations };
    for (const m of members) {
      const id = m.hello?.incarnation;
      if (id && m.state !== 'down' && own(incarnations, m.name) === undefined) {
        incarnations[m.name] = id;
      }
    }
    if (r.members.some((n) => !r.lost.includes(n) && own(incarnations, n) === undefined)) {
      return false;
    }
    if (!holdsData()) return false;
    this.#setRecord(settledRing(this.#nextEpoch(), r.members, incarnations, r.lost), this.#settled);
    return true;
  }

  /**
   * Drops from the settled record the hand-off (SettledRing.handedOff) of every name that said
   * since that it runs again after its loss (#backAfterLoss, or `self`, this node itself): as a
   * hello of theirs takes back a hand-off this node saw, for this node and, at a new epoch, for
   * every member that adopts the record, and for nodes started on it later (before 2026-12-07
   * the record kept it: once the name left again without a hand-off, its target was the ring of
   * the old one again, and a node that had not heard it back, or had restarted since, took that
   * hand-off for one of everything it held, while one that had heard it counted it lost).
   * Returns the names dropped.
   */
  #takeBackHandOffs(members: readonly MemberView[], self: string | null): string[] {
    const r = this.#record;
    const off = r.handedOff;
    if (off === undefined) return [];
    const back = Object.keys(off).filter((n) => n === self || this.#saidBack(members, n));
    if (back.length === 0) return [];
    // Recorded (takenBack): a record of this epoch or a newer one that kept the hand-off, made by
    // a member that had not heard of this, gives it back neither by a merge nor an adoption.
    const taken = [...(r.takenBack ?? []), ...back];
    this.#setRecord(withHandOffs(r, off, taken, this.#nextEpoch()), this.#settled);
    return back;
  }

  /**
   * Whether `name` said it runs again after its loss (#backAfterLoss) in a hello from a ring at
   * least as new as the record: one from an older ring may predate the hand-off (a member lost
   * once, refilled, then handed off, last heard before it was refilled), so it is no word that it
   * runs again after it. Its next hello, once it adopted this record, is.
   */
  #saidBack(members: readonly MemberView[], name: string): boolean {
    if (!this.#backAfterLoss.has(name)) return false;
    const h = members.find((m) => m.name === name)?.hello;
    return h !== undefined && h !== null && h.settled.epoch >= this.#record.epoch;
  }

  /**
   * Adopts `ring` when it is newer than the settled ring; true when it did. The hand-offs this
   * node's record took back stay taken back (SettledRing.takenBack) for the members `ring` still
   * records lost: the member that made `ring` may not have heard of them yet. (Should `ring` come
   * after a settle and a new hand-off of such a member that this node missed, that hand-off is
   * left out too: its owner then counts as lost, which refuses more, never less.)
   */
  adopt(ring: SettledRing): boolean {
    if (!newerSettled(ring, this.#record)) return false;
    this.#seenEpoch = Math.max(this.#seenEpoch, ring.epoch);
    const taken = [...(ring.takenBack ?? []), ...(this.#record.takenBack ?? [])];
    this.#setRecord(withHandOffs(ring, this.#keptFor(ring.handedOff), taken));
    return true;
  }

  /**
   * `off` without this node's own hand-off while this node's record counts it lost without one:
   * its own record never gains it then. Such a node refuses every read expecting its directory
   * (lostAt), and the members count it as refusing from its last hello (#refusingAsLost) until
   * its next one: gaining its hand-off (h9's merge, or a newer record made from one that kept
   * it), it would answer those reads at once, while a member that counts it refusing takes writes
   * that only the holders have (at W 3, R 1 a joining member's write, and a lagging member's read
   * answered by it alone: `v1` over an acknowledged `v2` before session 36,
   * test/unit/settled-vouch.test.ts). Left out, it counts as lost, and refuses, until the ring
   * settles: more writes taken, fewer lagging reads answered by it.
   */
  #keptFor(off: SettledRing['handedOff']): SettledRing['handedOff'] {
    const self = this.#self;
    const r = this.#record;
    if (off === undefined || self === null || own(off, self) === undefined) return off;
    if (!r.lost.includes(self) || own(r.handedOff ?? {}, self) !== undefined) return off;
    return Object.fromEntries(Object.entries(off).filter(([n]) => n !== self));
  }

  /**
   * Settles the target when every target member (this node included, through `members`) is up
   * and reports the target ring as routed and the transfer to it (transferId) as finished, and no
   * member that holds data in the settled ring is still handing it off (decommissioning: the
   * target may lack what it holds until it is done), nor, when `holdUnheard` (an address the
   * source lists without a name, or the caller's grace), any holder that is no member here
   * (unheardHolders). The new settled ring records each member's incarnation and an epoch above
   * every one seen. True when it settled now.
   */
  #trySettle(members: readonly MemberView[], holdUnheard: boolean): boolean {
    if (!this.moving) return false;
    if (holdUnheard && this.unheardHolders(members).length > 0) return false;
    if (members.some((m) => this.#holderReporting(m, 'decommissioning'))) return false;
    const byName = new Map(members.map((m) => [m.name, m]));
    const id = this.#target.id;
    const transfer = this.transferId;
    const done = (r: string | null) => r === transfer || r === this.#transferRings;
    const incarnations: Record<string, string> = {};
    for (const name of this.#target.members) {
      const m = byName.get(name);
      if (!m || m.state === 'down' || m.hello?.ringId !== id || !done(m.hello.rebalanced)) {
        return false;
      }
      if (m.hello.incarnation) incarnations[name] = m.hello.incarnation;
    }
    this.#setRecord(
      settledRing(this.#nextEpoch(), this.#target.members, incarnations),
      this.#target,
    );
    return true;
  }

  /**
   * The holders of the settled ring (members not recorded lost) that are no member in `members`
   * at all: a node started on a new data directory while such a holder did not answer (stopped,
   * cut off) cannot name its address (A records without PTR names), nor know it while the
   * source lists no address of it (a pod made again), so the holder is neither a member nor in
   * the target here. Settling that target counted every lost owner as refilled with what nobody
   * streamed (scale-down.test: a key written v1 read as missing through a node back empty, whose
   * target had left out the only member holding it).
   */
  unheardHolders(members: readonly MemberView[]): string[] {
    const r = this.#record;
    return r.members.filter((n) => !r.lost.includes(n) && !members.some((m) => m.name === n));
  }

  /**
   * Whether the whole cluster is at rest as `members` (this node included) show it: this node is
   * not moving data, and every member is up, active, routes by this node's target ring, holds
   * this node's settled ring (same epoch and members), reports the transfer to it finished and
   * holds no hints. A member decommissioning, a hand-off or stream anywhere, a ring change some
   * member has seen first, a write not delivered yet: not at rest.
   */
  atRest(members: readonly MemberView[]): boolean {
    if (this.moving) return false;
    const r = this.#record;
    return members.every((m) => {
      const h = m.hello;
      return (
        m.state === 'up' &&
        h !== null &&
        h.status === 'active' &&
        h.ringId === this.#target.id &&
        h.rebalanced === this.transferId &&
        h.hints === 0 &&
        h.settled.epoch === r.epoch &&
        sameNames(h.settled.members, r.members)
      );
    });
  }

  /** Where a key lives. */
  place(key: Buffer): Placement {
    const ring = this.#target;
    // One member owns every key: no hash, no walk (one placement per ring, never mutated).
    const terms = this.termsNow();
    if (ring.members.length === 1 && !this.moving) {
      // The terms are new after every change of the rings: the placement is made again.
      if (this.#sole?.terms !== terms) {
        const only = Object.freeze([ring.members[0]!]);
        const rings = this.#placementId;
        this.#sole = Object.freeze({
          settled: only,
          lostOwners: 0,
          lostMayAnswer: 0,
          mayAnswerInTarget: NONE,
          target: only,
          all: only,
          rings,
          terms,
        });
      }
      return this.#sole;
    }
    const target = ring.ownersShared(key, this.rf(ring));
    const rings = this.#placementId;
    if (!this.moving) {
      return {
        settled: target,
        lostOwners: 0,
        lostMayAnswer: 0,
        mayAnswerInTarget: NONE,
        target,
        all: target,
        rings,
        terms,
      };
    }
    const owners = this.#settled.owners(key, this.rf(this.#settled));
    const settled = this.#holdersOf(owners);
    const all = [...settled];
    for (const n of target) if (!all.includes(n)) all.push(n);
    let lostOwners = 0;
    let lostMayAnswer = 0;
    let mayAnswerInTarget: readonly string[] = NONE;
    if (settled.length < owners.length) {
      for (const n of owners) {
        if (settled.includes(n) || this.#handedOffTo(n) === ring.id) continue;
        lostOwners++;
        if (this.#refusingAsLost.has(n)) continue;
        lostMayAnswer++;
        if (target.includes(n)) mayAnswerInTarget = [...mayAnswerInTarget, n];
      }
    }
    return { settled, lostOwners, lostMayAnswer, mayAnswerInTarget, target, all, rings, terms };
  }

  /**
   * Whether a hello of `name` said `decommissioned` (its hand-off finished) and none since said
   * another status: kept after it left the member list, for what this process still hears of it
   * (RingFencing says a refused sender was decommissioned, not taken out of the ring).
   */
  sawDecommissioned(name: string): boolean {
    return this.#handedOff.has(name);
  }

  /**
   * The ring the lost owner `name` handed its data off to, as far as this node knows: the one
   * its own decommissioned hello reported, or without one, the one the settled record keeps
   * (SettledRing.handedOff: the member that recorded the loss saw that hello, and a member
   * recorded lost stays lost, and its hand-off true, until the ring settles), unless the name
   * said since that it runs again after its loss (#backAfterLoss). undefined when none.
   */
  #handedOffTo(name: string): string | undefined {
    const seen = this.#handedOff.get(name);
    if (seen !== undefined || this.#backAfterLoss.has(name)) return seen;
    const relayed = this.#record.handedOff;
    return relayed === undefined ? undefined : own(relayed, name);
  }

  /** The settled owners of `key` that hold it: its owners in the settled ring less lost ones. */
  holders(key: Buffer): string[] {
    return this.#holdersOf(this.#settled.owners(key, this.rf(this.#settled)));
  }

  #holdersOf(owners: string[]): string[] {
    const lost = this.#record.lost;
    return lost.length === 0 ? owners : owners.filter((n) => !lost.includes(n));
  }

  /** Every member of either ring. */
  allMembers(): string[] {
    const set = new Set([...this.#settled.members, ...this.#target.members]);
    return [...set].sort();
  }

  /**
   * Merges the hand-offs (SettledRing.handedOff) and take-backs (SettledRing.takenBack) other
   * members keep in a record that is this node's own but for them: the same epoch, members, lost
   * members and incarnations, which no adoption replaces (neither is newer). Such records come
   * from one history (two members that recorded the same hand-off at once, one without its ring:
   * a version before 2026-12-07, or a hello that named none; or members that each took back
   * hand-offs at the same epoch), so an entry is about the directory this record's ring recorded
   * as well. Take-backs are always taken (dropping a hand-off only counts its member lost), and
   * keep their names' hand-offs out for good: two members that took back different hand-offs, or
   * one some of the other's, end with neither (before, a third member merged a hand-off one of
   * them took back into the other's record). A peer's hand-off this record lacks, of a name that
   * said since that it runs again (#saidBack), is recorded as taken back, so that the peer, cut off
   * from the name, drops it too (before, it kept it until the ring settled: its record keeps one
   * this one lacks). A hand-off is taken only from a record that keeps
   * every hand-off this one does, once both lose the take-backs (a member of session 35, which
   * took hand-offs back without recording it, may have taken back what its record lacks), and
   * not for a name this node keeps another ring for, nor one that said it runs again after its
   * loss (#takeBackHandOffs), nor for this node itself while its record counts it lost without
   * one (#keptFor). The epoch stays.
   */
  #mergeHandOffs(members: readonly MemberView[]): void {
    const r = this.#record;
    const peers: SettledRing[] = [];
    for (const m of members) {
      const theirs = m.self ? undefined : m.hello?.settled;
      if (theirs !== undefined && sameRecord(theirs, r)) peers.push(theirs);
    }
    if (peers.length === 0) return;
    const taken = new Set(r.takenBack);
    for (const p of peers) for (const n of p.takenBack ?? []) taken.add(n);
    const left = (off: SettledRing['handedOff']) =>
      Object.entries(off ?? {}).filter(([n]) => !taken.has(n));
    // A peer's entry that this record lacks, of a name that said it runs again, is recorded as
    // taken back (this record was told no ring for it): the peer's node, not hearing the name,
    // would otherwise keep it for good (its record keeps an entry this one lacks, so it takes
    // nothing from this one). One this record keeps, #takeBackHandOffs takes back at a new epoch.
    for (const p of peers) {
      for (const [n] of left(p.handedOff)) {
        if (own(r.handedOff ?? {}, n) === undefined && this.#saidBack(members, n)) taken.add(n);
      }
    }
    const mine = left(r.handedOff);
    const kept: Record<string, string> = Object.fromEntries(mine);
    for (const p of peers) {
      const off = Object.fromEntries(left(p.handedOff));
      if (!mine.every(([name, ring]) => own(off, name) === ring)) continue;
      for (const [name, ring] of Object.entries(off)) {
        if (own(kept, name) === undefined && !this.#backAfterLoss.has(name)) kept[name] = ring;
      }
    }
    const next = withHandOffs(r, this.#keptFor(kept), [...taken]);
    if (!sameHandOffs(next, r)) this.#setRecord(next, this.#settled);
  }

  #adoptNewest(members: readonly MemberView[]): RingChanges['adopted'] {
    const best = newestReported(members, this.#record);
    if (best === null || !this.adopt(best.ring)) return null;
    return { from: best.from, ring: this.#record };
  }

  /**
   * Compares each settled owner's incarnation, as the member itself reports it, with the one the
   * ring recorded. A report counts only from a member not down whose hello is at least as new as
   * the ring (its settled epoch >= the ring's): an older hello may predate the directory the
   * ring recorded. A founded ring records its founders, a settle every target member and
   * markHolding every owner, so an owner is unknown only in a ring made by an older version (or
   * of members that report none): then the incarnation another member's ring of the same
   * members recorded for it is the one expected (recordedByPeers), and with none either, the
   * reported one is recorded. A differing one records the owner as lost (it keeps its place; see
   * the class comment). Members already lost are left as they are.
   */
  #checkIncarnations(members: readonly MemberView[]): Pick<RingChanges, 'replaced' | 'recorded'> {
    const r = this.#record;
    const replaced: { name: string; recorded: string; incarnation: string }[] = [];
    const recorded: string[] = [];
    const incarnations = { ...r.incarnations };
    for (const m of members) {
      const h = m.hello;
      if (!r.members.includes(m.name) || r.lost.includes(m.name)) continue;
      if (!h?.incarnation || m.state === 'down') continue;
      if (h.settled.epoch < r.epoch) continue;
      const mine = own(r.incarnations, m.name);
      const want = mine ?? recordedByPeers(members, r, m.name, h.incarnation);
      if (want !== undefined && want !== h.incarnation) {
        replaced.push({ name: m.name, recorded: want, incarnation: h.incarnation });
      } else if (mine === undefined) {
        incarnations[m.name] = h.incarnation;
        recorded.push(m.name);
      }
    }
    if (replaced.length > 0) {
      const lost = [...r.lost, ...replaced.map((x) => x.name)];
      const next = settledRing(this.#nextEpoch(), r.members, incarnations, lost);
      this.#setRecord(withHandOffs(next, r.handedOff, r.takenBack));
    } else if (recorded.length > 0) {
      const next = settledRing(r.epoch, r.members, incarnations, r.lost);
      this.#setRecord(withHandOffs(next, r.handedOff, r.takenBack), this.#settled);
    }
    return { replaced, recorded };
  }

  /**
   * Records as lost every settled owner that reports itself decommissioned (its last hello, also
   * when it is down now): its hand-off finished, so it holds nothing the ring without it lacks.
   * A new epoch, so that peers adopt the record, and nodes that start after its pod went learn
   * it from them, with the target ring it reported (SettledRing.handedOff): such a node counts
   * it as handed off to that ring as if it had seen the hello itself. Returns the names recorded
   * now.
   */
  #checkHandOffs(members: readonly MemberView[]): string[] {
    const r = this.#record;
    const done = members.filter((m) => this.#holderReporting(m, 'decommissioned'));
    if (done.length > 0) {
      const handedOff = { ...r.handedOff };
      for (const m of done) {
        // Only from the directory the ring recorded (the one whose data it handed off).
        const { ringId, incarnation } = m.hello!;
        const recorded = own(r.incarnations, m.name);
        if (ringId !== '' && (recorded === undefined || recorded === incarnation)) {
          handedOff[m.name] = ringId;
        }
      }
      const lost = [...r.lost, ...done.map((m) => m.name)];
      const next = settledRing(this.#nextEpoch(), r.members, r.incarnations, lost);
      this.#setRecord(withHandOffs(next, handedOff, r.takenBack));
    }
    return done.map((m) => m.name);
  }

  /** Whether `m` holds data in the settled ring (a member of it, not lost) and reports `status`. */
  #holderReporting(m: MemberView, status: NodeStatus): boolean {
    const r = this.#record;
    return m.hello?.status === status && r.members.includes(m.name) && !r.lost.includes(m.name);
  }

  #nextEpoch(): number {
    return Math.max(this.#record.epoch, this.#seenEpoch) + 1;
  }

  #setRecord(record: SettledRing, ring?: Ring): void {
    const same = sameNames(record.members, this.#record.members);
    this.#record = record;
    this.#settled = ring ?? (same ? this.#settled : this.#ringOf(record));
    this.#renameTransfer();
  }

  /** The ring of a record's members; the target ring itself when they are the same members. */
  #ringOf(record: SettledRing): Ring {
    if (sameNames(record.members, this.#target.members)) return this.#target;
    return new Ring(record.members);
  }
}

/**
 * The incarnation recorded for `name` in the rings other members (not `name` itself) report
 * that have the same members as `ring`, are no newer and do not count `name` lost: what they
 * know of the directory holding `name`'s data, where `ring` (no newer ring reported: update()
 * adopted it first) records none. A directory replaced since, then refilled, would have been
 * recorded by the settle that followed, in a ring newer than those. One that is not `reported`
 * when they differ (the owner is then taken for replaced); undefined when none records one.
 */
function recordedByPeers(
  members: readonly MemberView[],
  ring: SettledRing,
  name: string,
  reported: string,
): string | undefined {
  let found: string | undefined;
  for (const m of members) {
    const r = m.self || m.name === name ? undefined : m.hello?.settled;
    if (!r || r.epoch > ring.epoch || r.lost.includes(name)) continue;
    const id = own(r.incarnations, name);
    if (id === undefined || !sameNames(r.members, ring.members)) continue;
    if (id !== reported) return id;
    found = id;
  }
  return found;
}
