// Tracks who the members are (from a source) and whether each answers (probes): up, down, left.

import { EventEmitter } from 'node:events';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/index.ts';
import type { HelloReply, NodeStatus } from '../replica/index.ts';
import { type MemberAddress, type PeerSource, peerAddressOf } from './sources.ts';

/** The #probing key of the probe of this node's own listed address (no member name has a NUL). */
const SELF_PROBE = '\0self';

/** up: answered the last probe; down: failed `probeFailures` in a row; unknown: not probed yet. */
export type PeerState = 'up' | 'down' | 'unknown';

export interface MemberView extends MemberAddress {
  readonly self: boolean;
  readonly state: PeerState;
  /** The member's last hello answer (null until one arrived). */
  readonly hello: HelloReply | null;
  /** When the member last answered a probe (ms since the epoch; now for this node), or null. */
  readonly lastContact: number | null;
}

export interface MembershipOptions {
  readonly self: MemberAddress;
  /** Where the member list comes from; null: this node alone. */
  readonly source: PeerSource | null;
  /** Asks a member who it is; rejects when it does not answer. */
  readonly probe: (m: MemberAddress) => Promise<HelloReply>;
  /** This node's own hello (it is never probed). */
  readonly selfHello: () => HelloReply;
  readonly resolveIntervalMs: number;
  readonly probeIntervalMs: number;
  readonly probeFailures: number;
  /**
   * How long a member the source stopped listing stays a member while it answers nowhere (see
   * Membership); 0: it leaves at once. Absent: 0.
   */
  readonly unlistedGraceMs?: number;
  /**
   * Whether this node's settled ring counts the member as holding data (a member of it, not
   * recorded lost or handed off, or one being refilled: holdsDataIn), given its last hello (null
   * before one); only such a member is kept while unlisted. Absent: every member counts.
   */
  readonly holdsData?: (name: string, last: HelloReply | null) => boolean;
  readonly logger: Logger;
  readonly registry: Registry;
}

interface Tracked {
  addr: MemberAddress;
  state: PeerState;
  failures: number;
  hello: HelloReply | null;
  lastContact: number | null;
  /** How far the member's clock was from this node's at its last answer, or null (see ClockOffset). */
  offset: ClockOffset | null;
  /**
   * When the source stopped listing it (see Membership), on this process's monotonic clock
   * (performance.now(): a stepped wall clock neither ends nor stretches the grace), or null while
   * listed.
   */
  unlistedAt: number | null;
  /**
   * While unlisted: the resolves started when a probe sent after the unlisting was answered (it
   * runs where it was), or null. A resolve started later that still does not list it, it leaves.
   */
  answeredAt: number | null;
  /** Probes of it sent so far, and the number of the latest whose outcome was taken. */
  probes: number;
  taken: number;
}

/** Another node answering under this node's name at the address listed for it. */
export interface Duplicate {
  /** `host:port` the source lists for this node's name. */
  readonly address: string;
  /** The data-directory incarnation that answered there. */
  readonly incarnation: string;
}

/**
 * A member's clock as the last probe measured it: its hello's `clock` minus this node's clock at
 * the middle of the round trip. The member's true offset lies within `offsetMs` +/- `errorMs`
 * (half the round trip).
 */
export interface ClockOffset {
  readonly member: string;
  readonly offsetMs: number;
  readonly errorMs: number;
  /** When the probe was sent, on this process's monotonic clock (performance.now()). */
  readonly sentMono: number;
  /**
   * The member said it refuses writes for a doubt about its own clock (its hello's
   * `clockSuspect`: stepped, not shown within the bound since its start, off from most of its
   * peers): its measurement is no witness against this node's clock (ClockCheck).
   */
  readonly suspect?: boolean;
}

/** Whether a hello reports its node on its way out (decommissioning or decommissioned). */
function leaving(hello: HelloReply | null): boolean {
  const s = hello?.status;
  return s === 'decommissioning' || s === 'decommissioned';
}

/** Why an unlisted member that reported itself leaving left at once (see Membership). */
const reportedLeaving = (hello: HelloReply | null) =>
  `not listed, and it reported itself ${hello?.status}`;

/** Why an unlisted member the settled ring counts no data on left at once (see Membership). */
const NO_DATA = 'not listed, and the settled ring counts no data on it';

/**
 * Whether a member belongs in the target ring: every member not leaving, that is, not reporting
 * itself decommissioning or decommissioned. A member handing its data off is out of the target
 * at once, so writes reach a quorum of the ring without it from then on (it stays a settled
 * holder until its hand-off is done; see Topology).
 */
export function inRing(m: MemberView): boolean {
  return !leaving(m.hello);
}

/**
 * The member list and each member's health. A listed member that stops answering is *down*: it
 * stays a member (and in the ring). The identity of a member is its name (its hello's), never its
 * address: a member listed at a new address is the same member, moved (its address is updated).
 * A member the source stops listing has *left*, and is forgotten, once one of these holds:
 * - it reported itself decommissioning or decommissioned (it was on its way out, out of the target
 *   ring already): at once, or, unlisted first, at the probe answer that reports it. The operator
 *   removes a pod once it reports decommissioned, which a node whose probe was out may not have
 *   heard yet: kept, it would be a member down for the grace, and a cluster with a member down is
 *   no healthy one to its operator. So a member that finished its decommission tells every other
 *   member before it stops (METHODS.decommissioned), and each probes it at once (probeMember);
 * - this node's settled ring does not count it as holding data (`holdsData`): its hand-off or
 *   loss is recorded (a decommission whose last status this node missed: the others' record is
 *   adopted with their ring), or it never settled into the ring (a join that never finished, a
 *   name that never answered anyone): at once, or at the first probe round after that is so. The
 *   ring without it lacks nothing, and keeping it would hold a rebalance open for the grace. A
 *   member that never answered this node but that the settled ring counts (this node restarted
 *   while it was down) is kept like any, and so is one recorded lost whose last hello said it
 *   was active and lost in its own ring (holdsDataIn): back empty after a lost volume and being
 *   refilled, it is a member, and taken out it would throw its refill away, and with others
 *   moved at once shrink the ring below the replication factor (chaos seed 31004: to one). Nor
 *   does one leave while the source lists an address this node could not name yet (unnamed()):
 *   it may be that member's new one, which a node that adopted another's record of its loss
 *   has not heard from yet (chaos seed 32001); it leaves once every address is named;
 * - it answers a probe at its last address (it runs, and the source says it is no member any
 *   more: removed by hand, or a test), and a resolve started after that answer still does not
 *   list it: at that resolve (started at the answer). The source's last answer may be older than
 *   the member's new records: an SRV member is dialled by its target name, which answers from
 *   the new pod as soon as its records are back, which this node's next resolve (every
 *   --resolve-interval-ms) would only then see;
 * - another member is listed at its address (an address given out again; A records): at once,
 *   since requests to it would reach that member;
 * - it has answered none for `unlistedGraceMs` since it was unlisted: at the next probe round.
 * Until then it stays a member (down once its probes fail), and listed again under its name, at
 * any address, it is listed as before: a restart on a new address (a Kubernetes pod deleted and
 * made again, a compose container recreated) unlists the old address before the new one answers
 * who it is (A records with no PTR name), or lists no record of the name while no pod has an
 * address (SRV), and must not move its data away and back.
 *
 * Emits `change` whenever the list, a state, or a member's hello changes, and `gone` (before
 * that `change`) with each peer address no member has any more: a member's that left, or a
 * member's old address when it moved.
 */
export class Membership extends EventEmitter<{
  change: [];
  gone: [address: string];
  probed: [];
  duplicate: [found: Duplicate | null];
}> {
  readonly #opts: MembershipOptions;
  readonly #members = new Map<string, Tracked>();
  /** Where the source lists this node's name, when that is not the address it listens on. */
  #selfListed: MemberAddress | null = null;
  #duplicate: Duplicate | null = null;
  /** Probes of the listed address in a row that got no answer. */
  #selfFailures = 0;
  #timers: NodeJS.Timeout[] = [];
  /** Members (and SELF_PROBE) whose probe is out: each is probed again only once it answered. */
  readonly #probing = new Set<string>();
  /** The probeMember() calls out, by member: another call for one joins it. */
  readonly #asked = new Map<string, Promise<NodeStatus | null>>();
  #stopped = false;
  /** pausedMs(): the lateness of the probe ticks run so far. */
  #pausedMs = 0;
  /** When the last probe tick ran (performance.now()), from start(); null before. */
  #tick: number | null = null;
  /** The source has answered at least once. */
  #listed = false;
  /** The source's last answer listed no member (ignored while others are known). */
  #emptyAnswer = false;
  /** Some answer of the source listed a member (this node or another). */
  #listedAny = false;
  /** resolveNow() calls started so far, and the number of the latest whose answer was taken. */
  #resolvesStarted = 0;
  #resolveTaken = 0;
  /** Resolves still out: the interval starts no other while one is. */
  #resolving = 0;
  /** Members called down or found restarted so far (interruptions()). */
  #interruptions = 0;

  constructor(opts: MembershipOptions) {
    super();
    this.#opts = opts;
    this.#members.set(opts.self.name, {
      addr: opts.self,
      state: 'up',
      failures: 0,
      hello: null,
      lastContact: null,
      offset: null,
      unlistedAt: null,
      answeredAt: null,
      probes: 0,
      taken: 0,
    });
    const states = new Gauge({
      name: 'kvstore_members',
      help: 'Members this node knows, by state (up, down, unknown).',
      labelNames: ['state'] as const,
      registers: [opts.registry],
      collect: () => {
        for (const s of ['up', 'down', 'unknown'] as const) states.labels(s).set(0);
        for (const m of this.#members.values()) states.labels(m.state).inc();
      },
    });
    const unlisted = new Gauge({
      name: 'kvstore_members_unlisted',
      help: 'Members the source no longer lists, kept while they answer nowhere (--unlisted-grace-ms).',
      registers: [opts.registry],
      collect: () => {
        unlisted.set([...this.#members.values()].filter((m) => m.unlistedAt !== null).length);
      },
    });
  }

  /**
   * Resolves the source once (a failure is logged, not thrown: the node starts and serves what
   * it can), probes once, then keeps doing both on their intervals. Resolves with whether the
   * first resolution succeeded.
   */
  async start(): Promise<boolean> {
    const resolved = await this.resolveNow();
    await this.probeNow();
    if (this.#stopped) return resolved; // stopped while it started: no timers
    if (this.#opts.source) {
      this.#timers.push(
        setInterval(() => {
          if (this.#resolving === 0) void this.resolveNow();
        }, this.#opts.resolveIntervalMs),
      );
    }
    this.#tick = performance.now();
    this.#timers.push(
      setInterval(() => {
        // A tick later than its interval: this process did not run (stopped, or its event loop
        // blocked) for that long.
        const at = performance.now();
        this.#pausedMs += this.#late(at);
        this.#tick = at;
        void this.probeNow();
      }, this.#opts.probeIntervalMs),
    );
    for (const t of this.#timers) t.unref();
    return resolved;
  }

  /**
   * How long (ms, in all) this process did not run since start: the lateness of its probe ticks
   * (a SIGSTOP, or an event loop blocked), measured to within one --probe-interval-ms, the tick
   * due now included: what runs right after a pause (a probe answer read before the late tick)
   * counts it already. Before, a hello read then was taken as shown after the whole pause.
   */
  pausedMs(): number {
    return this.#pausedMs + this.#late(performance.now());
  }

  /** How much later than its interval after the last probe tick `at` is (0 before start()). */
  #late(at: number): number {
    return this.#tick === null ? 0 : Math.max(0, at - this.#tick - this.#opts.probeIntervalMs);
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /**
   * How many times since this node started a member was called down, or answered from a new
   * process (its hello's `started` changed: a restart faster than probes call a member down).
   * Either may have made it miss writes, so anti-entropy makes a pass due after each, even when
   * the cluster looked at rest every time it looked.
   */
  interruptions(): number {
    return this.#interruptions;
  }

  /** Every member, this node included, sorted by name. */
  members(): MemberView[] {
    const self = this.#opts.self.name;
    return [...this.#members.values()]
      .map((t) => ({
        ...t.addr,
        self: t.addr.name === self,
        state: t.state,
        hello: t.addr.name === self ? this.#opts.selfHello() : t.hello,
        lastContact: t.addr.name === self ? Date.now() : t.lastContact,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The names of every member, this node included, sorted; null until the source first answered
   * (this node alone when there is no source).
   */
  names(): string[] | null {
    if (this.#opts.source !== null && !this.#listed) return null;
    return [...this.#members.keys()].sort();
  }

  /** The members kept while the source no longer lists them (see the class comment), sorted. */
  unlisted(): string[] {
    const out = [...this.#members.values()].filter((t) => t.unlistedAt !== null);
    return out.map((t) => t.addr.name).sort();
  }

  /**
   * Whether the source has ever listed a member (this node or another): false while it has only
   * failed (DNS server unreachable, SERVFAIL, timeout) or answered with no member at all. Such a
   * node knows nothing of the cluster it is configured into. True without a source.
   */
  sourceListed(): boolean {
    return this.#opts.source === null || this.#listedAny;
  }

  /**
   * Addresses the source's last answer listed and could not name (PeerSource.unnamed): peers that
   * are no members here yet, and may hold data. 0 without a source.
   */
  unnamed(): number {
    return this.#opts.source?.unnamed?.() ?? 0;
  }

  /** True unless the member is down or unknown to this node. This node is always up. */
  isUp(name: string): boolean {
    const t = this.#members.get(name);
    return t !== undefined && t.state !== 'down';
  }

  /**
   * True when the member is up and its disk answers (its last hello did not say it stalled): the
   * members data requests go to. A stalled member stays a member, in the ring; it gets hints.
   * This node is always up; its own disk's stall is the coordinator's business.
   */
  isUpForData(name: string): boolean {
    if (name === this.#opts.self.name) return true;
    const t = this.#members.get(name);
    return t !== undefined && t.state !== 'down' && t.hello?.storageStalled !== true;
  }

  /** How many other members answered their last probe (up). */
  answering(): number {
    let n = 0;
    for (const t of this.#members.values()) {
      if (t.addr.name !== this.#opts.self.name && t.state === 'up') n++;
    }
    return n;
  }

  /**
   * True when the member might take this node's clients instead of it: up for data
   * (isUpForData), and its last hello did not say it refuses writes for its clock (clockRefusing;
   * a member not heard from yet might). False for this node.
   */
  mightServe(name: string): boolean {
    if (name === this.#opts.self.name || !this.isUpForData(name)) return false;
    return this.#members.get(name)?.hello?.clockRefusing !== true;
  }

  /** The clock offsets measured by the last probe of each member that is up and reported one. */
  clockOffsets(): ClockOffset[] {
    const out: ClockOffset[] = [];
    for (const t of this.#members.values()) {
      if (t.addr.name !== this.#opts.self.name && t.state === 'up' && t.offset) out.push(t.offset);
    }
    return out;
  }

  /** Address `host:port` of a member's peer port, or undefined for a non-member. */
  address(name: string): MemberAddress | undefined {
    return this.#members.get(name)?.addr;
  }

  /**
   * Re-reads the source now; true when it answered. An answer that comes back after the answer of
   * a resolve started later (a slow DNS server) is dropped: it would undo a newer list, bringing
   * back a member that had left, or the records after they went.
   */
  async resolveNow(): Promise<boolean> {
    const source = this.#opts.source;
    if (!source || this.#stopped) return source === null;
    const seq = ++this.#resolvesStarted;
    let listed: MemberAddress[];
    this.#resolving++;
    try {
      listed = await source.resolve();
    } catch (err) {
      this.#opts.logger.warn({ err, source: source.description }, 'member source failed');
      return false;
    } finally {
      this.#resolving--;
    }
    if (seq < this.#resolveTaken) return true;
    this.#resolveTaken = seq;
    if (listed.length === 0 && this.#members.size > 1) {
      // No member at all, not even this node: the name lost its records (a deleted headless
      // Service, a DNS zone emptied by mistake), not a cluster of one. Taken as it was, every
      // other member left at once: each node routed alone by a ring of itself, W and R clamped
      // to 1, acknowledging writes with one copy and answering NOT_FOUND for the keys it did
      // not hold, until the records came back.
      if (!this.#emptyAnswer) {
        this.#opts.logger.warn(
          { source: source.description, members: this.#members.size },
          'member source lists no members, not even this node: keeping the last list until it lists some',
        );
      }
      this.#emptyAnswer = true;
      return false;
    }
    if (this.#emptyAnswer) {
      this.#opts.logger.info({ source: source.description }, 'member source lists members again');
      this.#emptyAnswer = false;
    }
    this.#listed = true;
    if (listed.length > 0) this.#listedAny = true;
    this.#setListed(listed, seq);
    return true;
  }

  /** Takes the answer of the resolve `seq` (the resolveNow calls started until it). */
  #setListed(listed: MemberAddress[], seq: number): void {
    const self = this.#opts.self.name;
    const own = this.#opts.self;
    // Listed at this node's own listen address: only this process can answer there.
    this.#selfListed =
      listed.find((m) => m.name === self && (m.host !== own.host || m.peerPort !== own.peerPort)) ??
      null;
    const names = new Set(listed.map((m) => m.name));
    const before = new Set([...this.#members.values()].map((t) => peerAddressOf(t.addr)));
    let changed = false;
    for (const [name, t] of [...this.#members]) {
      if (name === self || names.has(name)) continue;
      if (t.unlistedAt !== null) {
        if (t.answeredAt !== null && seq > t.answeredAt) {
          this.#forget(t, 'not listed, and it answers where it was');
          changed = true;
        }
        continue;
      }
      const wasLeaving = leaving(t.hello);
      const holds = this.#holdsData(t);
      if (wasLeaving || this.#holdsNothing(t) || (this.#opts.unlistedGraceMs ?? 0) === 0) {
        this.#members.delete(name);
        const reason = wasLeaving ? reportedLeaving(t.hello) : holds ? 'not listed' : NO_DATA;
        this.#opts.logger.info({ member: name, reason }, 'member left');
        changed = true;
      } else {
        t.unlistedAt = performance.now();
        this.#opts.logger.info(
          { member: name, host: t.addr.host, graceMs: this.#opts.unlistedGraceMs },
          'member no longer listed: still a member until it answers where it was, or stays silent for the grace',
        );
      }
    }
    for (const addr of listed) {
      if (addr.name === self) continue;
      const t = this.#members.get(addr.name);
      if (t !== undefined && t.unlistedAt !== null) {
        t.unlistedAt = null;
        t.answeredAt = null;
        this.#opts.logger.info({ member: addr.name, host: addr.host }, 'member listed again');
      }
      if (!t) {
        this.#members.set(addr.name, {
          addr,
          state: 'unknown',
          failures: 0,
          hello: null,
          lastContact: null,
          offset: null,
          unlistedAt: null,
          answeredAt: null,
          probes: 0,
          taken: 0,
        });
        this.#opts.logger.info({ member: addr.name, host: addr.host }, 'member joined');
        changed = true;
      } else if (t.addr.host !== addr.host || t.addr.peerPort !== addr.peerPort) {
        this.#opts.logger.info(
          { member: addr.name, from: peerAddressOf(t.addr), to: peerAddressOf(addr) },
          'member moved',
        );
        t.addr = addr;
        changed = true;
      }
    }
    // An address another member is listed at (or this node listens on) is no longer an unlisted
    // member's: the peer connections are the address's, so its requests would reach that member,
    // which would store and acknowledge them in its stead. It leaves, as before the grace.
    const taken = new Set([own, ...listed].map(peerAddressOf));
    for (const t of [...this.#members.values()]) {
      if (t.unlistedAt !== null && taken.has(peerAddressOf(t.addr))) {
        this.#forget(t, 'not listed, and another member is listed at its address');
        changed = true;
      }
    }
    if (changed) this.#changed(before);
  }

  /** Emits `gone` for each address of `before` no member has any more, then `change`. */
  #changed(before: ReadonlySet<string>): void {
    const now = new Set([...this.#members.values()].map((t) => peerAddressOf(t.addr)));
    for (const address of before) if (!now.has(address)) this.emit('gone', address);
    this.emit('change');
  }

  /** Whether the settled ring counts `t` as holding data (see MembershipOptions.holdsData). */
  #holdsData(t: Tracked): boolean {
    return this.#opts.holdsData?.(t.addr.name, t.hello) ?? true;
  }

  /**
   * Whether unlisted `t` leaves at once for holding no data: the settled ring counts none on it,
   * and every address the source lists said who it is. An address not named yet may be its
   * (moved, maybe back empty after a lost volume, which is how the ring came to record it lost):
   * chaos seed 32001 took such a member out of a node's ring 0.2 s before its new address answered.
   */
  #holdsNothing(t: Tracked): boolean {
    return !this.#holdsData(t) && this.unnamed() === 0;
  }

  /** Forgets an unlisted member (see the class comment): it has left. */
  #leave(t: Tracked, reason: string): void {
    if (this.#stopped || this.#members.get(t.addr.name) !== t || t.unlistedAt === null) return;
    const before = new Set([...this.#members.values()].map((m) => peerAddressOf(m.addr)));
    this.#forget(t, reason);
    this.#changed(before);
  }

  /** Deletes an unlisted member and says why it left (the caller emits the change). */
  #forget(t: Tracked, reason: string): void {
    this.#members.delete(t.addr.name);
    const unlistedMs = t.unlistedAt === null ? 0 : Math.round(performance.now() - t.unlistedAt);
    this.#opts.logger.info({ member: t.addr.name, reason, unlistedMs }, 'member left');
  }

  /**
   * Probes every other member once, concurrently, except those whose last probe is still out,
   * and resolves (emitting `probed`) once these answered or failed. Each answer that changes
   * something emits `change` at once. One member slow to answer (paused, cut off: a probe out
   * for up to the peer timeout) holds back neither what the others reported nor their next
   * probes: before, every round waited for it, so the others were probed once per peer timeout
   * instead of once per interval, and a second failure took that much longer to be seen.
   */
  async probeNow(): Promise<void> {
    if (this.#stopped) return;
    const grace = this.#opts.unlistedGraceMs ?? 0;
    for (const t of [...this.#members.values()]) {
      if (t.unlistedAt === null) continue;
      // One that answered since it was unlisted waits for a resolve instead (answeredAt): while
      // the source fails, its last list stands, for this member as for every other.
      const silent = t.answeredAt === null;
      if (silent && performance.now() - t.unlistedAt >= grace) {
        this.#leave(t, 'not listed, and answered nowhere for the grace');
      } else if (this.#holdsNothing(t)) this.#leave(t, NO_DATA);
    }
    const others = [...this.#members.values()].filter((t) => t.addr.name !== this.#opts.self.name);
    await Promise.all([
      ...others.map((t) => this.#once(t.addr.name, () => this.#probeAndTake(t))),
      this.#once(SELF_PROBE, () => this.#probeSelf()),
    ]);
    if (!this.#stopped) this.emit('probed');
  }

  /**
   * Probes the member `name` now, outside the rounds, and takes its answer as any probe's: what a
   * member telling it finished its decommission (METHODS.decommissioned) gets. Only the member's
   * own answer at its address counts, so a message claiming that another member left changes
   * nothing but one probe of it. Concurrent calls for one member share one probe. Resolves with
   * the status its answer reported, or null when it is no member here or did not answer.
   */
  probeMember(name: string): Promise<NodeStatus | null> {
    const t = this.#members.get(name);
    if (t === undefined || name === this.#opts.self.name || this.#stopped) {
      return Promise.resolve(null);
    }
    let asked = this.#asked.get(name);
    if (asked === undefined) {
      asked = this.#probeAndTake(t)
        .then(() => (t.failures === 0 && t.hello !== null ? t.hello.status : null))
        .finally(() => this.#asked.delete(name));
      this.#asked.set(name, asked);
    }
    return asked;
  }

  /** Probes one member and takes what its answer (or its failure) changes. */
  async #probeAndTake(t: Tracked): Promise<void> {
    // Only a probe sent once it was unlisted tells it still runs where it was; it leaves if a
    // resolve started from now on still does not list it (see the class comment), or at once
    // when it reports itself leaving.
    const unlisted = t.unlistedAt;
    const changed = await this.#probeOne(t);
    if (this.#stopped) return;
    // The rings hear its answer first (a decommissioned member's hand-off is recorded).
    if (changed) this.emit('change');
    if (unlisted === null || t.unlistedAt !== unlisted || t.failures !== 0) return;
    if (leaving(t.hello)) {
      this.#leave(t, reportedLeaving(t.hello));
      return;
    }
    t.answeredAt ??= this.#resolvesStarted;
    if (this.#resolving === 0) void this.resolveNow();
  }

  /** Runs `probe` unless the one of `key` is still out. */
  async #once(key: string, probe: () => Promise<void>): Promise<void> {
    if (this.#probing.has(key)) return;
    this.#probing.add(key);
    try {
      await probe();
    } finally {
      this.#probing.delete(key);
    }
  }

  /**
   * Another process answering under this node's name, found by probing the address the source
   * lists for this node's name, or null. Only this node's own answer (its incarnation) is
   * expected there.
   */
  duplicate(): Duplicate | null {
    return this.#duplicate;
  }

  async #probeSelf(): Promise<void> {
    const listed = this.#selfListed;
    let found: Duplicate | null = null;
    if (listed !== null) {
      try {
        const hello = await this.#opts.probe(listed);
        this.#selfFailures = 0;
        // This node's own hello (its incarnation) is made only when the name is its own.
        if (
          hello.name === this.#opts.self.name &&
          hello.incarnation !== '' &&
          hello.incarnation !== this.#opts.selfHello().incarnation
        ) {
          found = { address: peerAddressOf(listed), incarnation: hello.incarnation };
        }
      } catch {
        // Nothing answers there (not up yet, gone, or not reachable from here): a duplicate
        // found before counts as gone after as many failed probes as make a member down.
        if (++this.#selfFailures < this.#opts.probeFailures) found = this.#duplicate;
      }
    }
    if (JSON.stringify(found) === JSON.stringify(this.#duplicate)) return;
    this.#duplicate = found;
    if (!this.#stopped) this.emit('duplicate', found);
  }

  /**
   * Sends one probe and takes its outcome, unless the outcome of a probe sent after it was taken
   * already (probeMember's probe runs beside a round's: an older answer must not undo a newer).
   * True when what the member routes by changed (routingView).
   */
  async #probeOne(t: Tracked): Promise<boolean> {
    const before = routingView(t);
    const seq = ++t.probes;
    try {
      const sentMono = performance.now();
      const sent = Date.now();
      const hello = await this.#opts.probe(t.addr);
      if (seq < t.taken) return false;
      t.taken = seq;
      if (hello.name !== t.addr.name) {
        throw new Error(`membership: ${t.addr.host} says it is '${hello.name}'`);
      }
      const received = Date.now();
      const was = t.hello?.started;
      if (was !== undefined && hello.started !== undefined && hello.started !== was) {
        this.#opts.logger.info({ member: t.addr.name }, 'member restarted');
        this.#interruptions++;
      }
      t.hello = hello;
      t.lastContact = received;
      t.offset =
        hello.clock === undefined
          ? null
          : {
              member: t.addr.name,
              offsetMs: hello.clock - (sent + received) / 2,
              errorMs: (received - sent) / 2,
              sentMono,
              ...(hello.clockSuspect === true ? { suspect: true } : {}),
            };
      t.failures = 0;
      if (t.state !== 'up') this.#opts.logger.info({ member: t.addr.name }, 'member up');
      t.state = 'up';
    } catch (err) {
      if (seq < t.taken) return false;
      t.taken = seq;
      t.failures++;
      if (t.failures >= this.#opts.probeFailures && t.state !== 'down') {
        this.#opts.logger.warn({ member: t.addr.name, err }, 'member down');
        t.state = 'down';
        this.#interruptions++;
      }
    }
    return routingView(t) !== before;
  }
}

/**
 * What a change event is about: state and hello, not the load figures (status views only) nor
 * the clock (ClockCheck reads it after every round of probes).
 */
function routingView(t: Tracked): string {
  return JSON.stringify([t.state, t.hello ? { ...t.hello, load: null, clock: null } : null]);
}
