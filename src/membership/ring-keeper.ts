// Keeps this node's rings up to date: one update at a time, the settled ring saved, cleanup after a settle.

import { FailureLog, type Logger } from '../observability/index.ts';
import type { SettledRing } from '../replica/index.ts';
import { inRing, type MemberView } from './manager.ts';
import type { RingMetrics } from './metrics.ts';
import { newestReported, settledRing } from './settled.ts';
import { type RingChanges, Topology } from './topology.ts';

/** How often a settled ring whose save failed is saved again (the store checks its space as often). */
const SAVE_RETRY_MS = 1000;

/** Probe rounds after which every member has probed this one (and seen its settled ring). */
const SPREAD_PROBE_ROUNDS = 5;

/**
 * How long after this node's rings settle every other member has settled too: they learn of it
 * by probing this node (every --probe-interval-ms), and a probe takes up to --peer-timeout-ms.
 */
export function settleSpreadMs(probeIntervalMs: number, peerTimeoutMs: number): number {
  return SPREAD_PROBE_ROUNDS * probeIntervalMs + peerTimeoutMs;
}

export interface RingKeeperOptions {
  readonly topology: Topology;
  /** Every member as this node sees it now, this node included (Membership.members). */
  readonly members: () => readonly MemberView[];
  /**
   * Saves the settled ring durably. A rejection (a full disk) is logged once and the save tried
   * again every SAVE_RETRY_MS until one works: a restart meanwhile would start from the ring
   * saved before.
   */
  readonly save: (ring: SettledRing) => Promise<void>;
  readonly metrics: RingMetrics;
  readonly logger: Logger;
  /**
   * Data must move: the transfer (Topology.transferId) changed. Called synchronously from
   * update(); an update() it calls in turn runs once this one is done.
   */
  readonly onTransfer: () => void;
  /**
   * Drops local copies of keys this node no longer owns. Runs when the rings settle (or a
   * settled ring is adopted) with no data moving, and again `cleanupDelayMs` later.
   */
  readonly cleanup: () => Promise<unknown>;
  /** Delay of the second cleanup pass: settleSpreadMs(), when every coordinator has settled. */
  readonly cleanupDelayMs: number;
  /** Whether this node stores any record (see Topology.markHolding); absent: never asked. */
  readonly holdsData?: () => boolean;
  /**
   * Whether the member source has listed a member since the start (Membership.sourceListed):
   * until it has, the member list is this node alone and sets no target (Topology.update).
   * Absent: always.
   */
  readonly listed?: () => boolean;
  /**
   * How many addresses the member source lists that no member is known at yet
   * (Membership.unnamed): while a settled holder is missing from the member list, the target
   * does not settle (Topology.update). Absent: none.
   */
  readonly unnamed?: () => number;
  /**
   * --unlisted-grace-ms: how long a holder of the settled ring that is no member here at all
   * (listed nowhere: a pod made again, which a node that knew it keeps a member for as long)
   * holds the target from settling. Absent: 0.
   */
  readonly unlistedGraceMs?: number;
  /**
   * This node's name, and what drops its records once the cluster settled a ring without it
   * while it was away (see RingKeeper.update); absent: never dropped.
   */
  readonly removed?: {
    readonly self: string;
    /** Whether it is active: a decommissioning or decommissioned node's records are its hand-off's. */
    readonly active: () => boolean;
    /** Drops every record of its store; resolves with how many. */
    readonly drop: () => Promise<number>;
  };
}

/**
 * Runs Topology.update() whenever something changed (a member, a hello, the rebalancer's state)
 * and acts on what it reports: logs and counts settled-ring changes, saves the settled ring in
 * order (the last write holds the current ring), starts data movement when the transfer
 * changes, and cleans up after a settle. Updates never overlap: one asked for during another
 * (the rebalancer reports synchronously from onTransfer) runs right after it.
 */
export class RingKeeper {
  readonly #o: RingKeeperOptions;
  #saving: Promise<void> = Promise.resolve();
  #transfer: string;
  #updating = false;
  #pending = false;
  #timers = new Set<NodeJS.Timeout>();
  #stopped = false;
  #retry: NodeJS.Timeout | null = null;
  /**
   * Saves and cleanups the store refuses (a full disk): said once until one works. #saves.failing:
   * the last save failed, and a retry is due.
   */
  readonly #saves: FailureLog;
  readonly #cleanups: FailureLog;
  #dropping = false;
  /** Every name that has been a member in this process. */
  readonly #members = new Set<string>();
  /** Since when (performance.now()) each settled holder has been no member here. */
  readonly #unheardSince = new Map<string, number>();
  /** The update() due when the unlisted grace of such a holder ends. */
  #unheardCheck: NodeJS.Timeout | null = null;
  /** What was last said about the holders the target waits for ('' when none). */
  #unheardSaid = '';
  /** Since when (performance.now()) the target has waited for such holders; null when not. */
  #heldSince: number | null = null;
  /** The holders it waits for, and whether for an unnamed address (else the unlisted grace). */
  #heldFor: { holders: readonly string[]; unnamed: boolean } | null = null;

  constructor(o: RingKeeperOptions) {
    this.#o = o;
    this.#transfer = o.topology.transferId;
    this.#saves = new FailureLog({
      logger: o.logger,
      failed: 'settled ring not saved',
      worked: 'settled ring saved',
    });
    this.#cleanups = new FailureLog({
      logger: o.logger,
      failed: 'cleanup failed',
      worked: 'cleanup works again',
    });
  }

  /** True from the moment this node found itself taken out of the ring until its records are dropped. */
  get dropping(): boolean {
    return this.#dropping;
  }

  /**
   * How long (ms) the target has been held from settling for settled holders that are no member
   * here (kvstore_ring_held_seconds), as of the last update(); 0 when it is not.
   */
  heldMs(): number {
    return this.#heldSince === null ? 0 : performance.now() - this.#heldSince;
  }

  /**
   * While the target is held for settled holders that are no member here (heldMs): a clause a
   * refused request's error ends with, naming them and why the ring waits; null when not held.
   */
  holdNote(): string | null {
    const h = this.#heldFor;
    if (h === null) return null;
    const s = Math.round(this.heldMs() / 1000);
    const who = h.holders.join(', ');
    return h.unnamed
      ? `this node's ring has not settled for ${s} s: it waits for ${who}, holding data of its settled ring, which is no member here while the member source lists an address that has not said who it is; requests that need ${who} are refused until that address answers or leaves the source`
      : `this node's ring has not settled for ${s} s: it waits --unlisted-grace-ms for ${who}, holding data of its settled ring, which the member source lists nowhere; requests that need ${who} are refused until it is listed again or the grace ends`;
  }

  /** The last save asked for: resolves once it is written (or its failure logged). */
  get saved(): Promise<void> {
    return this.#saving;
  }

  /** Brings the rings up to date with the members now; see the class comment. */
  update(): void {
    this.#pending = true;
    if (this.#updating) return;
    this.#updating = true;
    const topo = this.#o.topology;
    try {
      while (this.#pending) {
        this.#pending = false;
        // Before the peers' rings are compared: a ring that holds data must not lose a tie.
        if (this.#o.holdsData && topo.markHolding(this.#o.holdsData, this.#o.members())) {
          this.#o.logger.info({ epoch: topo.settledRing.epoch }, 'settled ring holds data');
          void this.save();
        }
        const before = topo.settledRing;
        const members = this.#o.members();
        const listed = this.#o.listed?.() ?? true;
        const unnamed = this.#o.unnamed?.() ?? 0;
        for (const m of members) this.#members.add(m.name);
        const hold = this.#holdUnheard(listed ? topo.unheardHolders(members) : [], unnamed);
        const c = topo.update(members, listed, unnamed, hold);
        // The hold was judged on the ring before the update: one adopted (or settled) in it may
        // wait for nobody, and no later update need come to say so (kvstore_ring_held_seconds).
        if (hold && (!topo.moving || topo.unheardHolders(members).length === 0)) {
          this.#heldSince = null;
        }
        this.#report(c);
        if (c.adopted) this.#dropIfRemoved(before, c.adopted.ring);
        if (c.settledChanged) void this.save();
        if ((c.settled || c.adopted) && !topo.moving) this.#cleanup();
        if (topo.transferId !== this.#transfer) {
          this.#transfer = topo.transferId;
          this.#o.onTransfer();
        }
      }
    } finally {
      this.#updating = false;
    }
  }

  /**
   * Saves the settled ring as it is when the write runs, after every save asked before. One that
   * fails is said once (FailureLog) and tried again every SAVE_RETRY_MS until one works (or stop()).
   */
  save(): Promise<void> {
    this.#saving = this.#saving
      .then(() => this.#o.save(this.#o.topology.settledRing))
      .then(
        () => {
          this.#saves.worked({ epoch: this.#o.topology.settledRing.epoch });
        },
        (err: unknown) => {
          this.#saves.failed(err, { retryMs: SAVE_RETRY_MS });
          this.#retryLater();
        },
      );
    return this.#saving;
  }

  /**
   * An active node that held data in its settled ring (`before`, past epoch 0) and adopts one
   * without it (`after`) was taken out of the ring without handing off (left the member source
   * while down or away). The others settled without it, so they hold what the cluster keeps, and
   * may since have collected tombstones of deletes it never saw: its old records would bring
   * those values back. It drops every record before the adopted ring is saved (the save waits),
   * so a crash meanwhile finds the old ring saved and drops again; a start waits for that save
   * before it serves. It then joins as a new member, filled by rebalancing.
   */
  #dropIfRemoved(before: SettledRing, after: SettledRing): void {
    const r = this.#o.removed;
    if (!r || before.epoch === 0 || !before.members.includes(r.self)) return;
    if (after.members.includes(r.self) || !r.active()) return;
    const log = this.#o.logger;
    const fields = { epoch: before.epoch, adopted: after.epoch, members: after.members };
    log.warn(
      fields,
      'this node was taken out of the ring while away, without handing off: dropping its records (they may hold values deleted since), then joining as a new member',
    );
    this.#dropping = true;
    // A drop that fails (a disk error) is tried again, and no save goes before it: the node
    // refuses data until it is done, and a restart meanwhile finds the old ring saved.
    const drop = async (): Promise<void> => {
      for (;;) {
        try {
          const dropped = await r.drop();
          this.#dropping = false;
          log.warn({ ...fields, dropped }, 'records of a ring left while away dropped');
          return;
        } catch (err) {
          log.error(
            { err, retryMs: SAVE_RETRY_MS },
            'records of a ring left while away not dropped; retrying',
          );
          if (this.#stopped) throw err;
          await new Promise((res) => setTimeout(res, SAVE_RETRY_MS));
        }
      }
    };
    this.#saving = this.#saving.then(drop);
  }

  #retryLater(): void {
    if (this.#retry !== null || this.#stopped) return;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (!this.#stopped && this.#saves.failing) void this.save();
    }, SAVE_RETRY_MS);
    this.#retry.unref();
  }

  /** Cancels the delayed cleanup passes and the retries of a failed save; update() and save() still work. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
    if (this.#unheardCheck !== null) clearTimeout(this.#unheardCheck);
    this.#unheardCheck = null;
  }

  /**
   * Whether the target waits for `unheard`, the settled holders that are no member here
   * (Topology.unheardHolders; none until the source listed members): while the source lists an
   * address not named yet (`unnamed`: one may be theirs), or, for one never a member in this
   * process, for the unlisted grace since it was first found so, as a node that knew such a
   * holder keeps it a member while the source lists it nowhere (Membership: one that was a
   * member here and left did so by its rules, the grace included). Before, a node back on an
   * empty directory settled a target without such a holder at once, and the holder, listed again
   * within the grace, adopted a ring without itself and dropped every record, the only copies of
   * some. Says once which holders it waits for and why; asks an update() for when the grace ends.
   */
  #holdUnheard(unheard: readonly string[], unnamed: number): boolean {
    const now = performance.now();
    for (const n of [...this.#unheardSince.keys()])
      if (!unheard.includes(n)) this.#unheardSince.delete(n);
    let waitMs = 0;
    for (const n of unheard) {
      if (this.#members.has(n)) continue;
      const since = this.#unheardSince.get(n) ?? now;
      this.#unheardSince.set(n, since);
      waitMs = Math.max(waitMs, since + (this.#o.unlistedGraceMs ?? 0) - now);
    }
    if (this.#unheardCheck !== null) clearTimeout(this.#unheardCheck);
    this.#unheardCheck = null;
    if (waitMs > 0 && !this.#stopped) {
      this.#unheardCheck = setTimeout(() => {
        this.#unheardCheck = null;
        this.update();
      }, waitMs);
      this.#unheardCheck.unref();
    }
    const hold = unheard.length > 0 && (unnamed > 0 || waitMs > 0);
    this.#heldSince = hold ? (this.#heldSince ?? now) : null;
    this.#heldFor = hold ? { holders: [...unheard], unnamed: unnamed > 0 } : null;
    const said = hold ? JSON.stringify([unheard, unnamed > 0]) : '';
    if (said === this.#unheardSaid) return hold;
    this.#unheardSaid = said;
    if (!hold) return hold;
    this.#o.logger.warn(
      { holders: unheard, unnamed, graceMs: this.#o.unlistedGraceMs ?? 0 },
      unnamed > 0
        ? 'ring not settled: holders of the settled ring are no member here while the member source lists addresses that have not said who they are (one may be theirs); it waits until each is named or unlisted'
        : 'ring not settled: holders of the settled ring are listed nowhere by the member source; it waits --unlisted-grace-ms for them to be listed again before it takes them to have left',
    );
    return hold;
  }

  #cleanup(): void {
    const run = () => {
      this.#o.cleanup().then(
        () => this.#cleanups.worked(),
        (err: unknown) => this.#cleanups.failed(err),
      );
    };
    run();
    if (this.#stopped) return;
    // Coordinators that settle a moment later may still send this node writes for keys it no
    // longer owns; a second pass once they have all settled removes those copies too.
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, this.#o.cleanupDelayMs);
    timer.unref();
    this.#timers.add(timer);
  }

  #report(c: RingChanges): void {
    const { logger: log, metrics, topology: topo } = this.#o;
    const ring = topo.settledRing;
    if (c.adopted) {
      const { from } = c.adopted;
      log.info({ from, epoch: ring.epoch, members: ring.members }, 'settled ring adopted');
      metrics.changed('adopted');
    }
    for (const r of c.replaced) {
      log.warn(
        { member: r.name, recorded: r.recorded, incarnation: r.incarnation, epoch: ring.epoch },
        'member has a new data directory: not a holder of data until rebalanced',
      );
      metrics.changed('replaced');
    }
    if (c.handedOff.length > 0) {
      log.info(
        { members: c.handedOff, epoch: ring.epoch },
        'decommissioned members handed their data off: no longer holders',
      );
      metrics.changed('handed_off');
    }
    if (c.takenBack.length > 0) {
      log.info(
        { members: c.takenBack, epoch: ring.epoch },
        'members run again after their hand-off: the settled ring no longer keeps it',
      );
    }
    if (c.recorded.length > 0) log.info({ members: c.recorded }, 'member incarnations recorded');
    if (c.targetChanged) {
      log.info({ ring: topo.target.id, members: topo.target.members }, 'ring changed');
    }
    if (c.settled) {
      log.info({ ring: topo.settled.id, epoch: ring.epoch }, 'ring settled');
      metrics.changed('settled');
    }
  }
}

export interface StartingRings {
  readonly self: string;
  /**
   * Whether the member source listed members at start (a list to trust over the saved ring): not
   * after a failure, nor after an answer with no member (NXDOMAIN, no records).
   */
  readonly resolved: boolean;
  /** The settled ring this node saved; null for a new node. */
  readonly saved: SettledRing | null;
  /** The members after the first resolve and probe (Membership.members). */
  readonly members: readonly MemberView[];
  readonly replicationFactor: number;
}

/**
 * The rings a node starts with. The target: the members the source listed (the saved ring's
 * members when the source did not answer), or this node alone. The settled ring: the saved one;
 * a node with none is new and starts from the newest settled ring its peers report (a joiner
 * routes to the old owners until the data moved). With no ring reported, it founds one (epoch
 * 0) of itself and the members that answered it, new as well (they report no ring yet), with
 * the incarnations they answered with (see Topology.markHolding). Never of
 * a listed member that did not answer: that one may hold data under a ring this node has not
 * heard of, and a founded ring with more members wins over that ring at the same epoch (see
 * newerSettled), which would make this node a holder of data it never received. The members
 * left out are in the target, so the data moves and the ring settles with them as it would for
 * any join. A node with a saved ring adopts a newer one its peers report in its first update,
 * before it serves anything.
 */
export function startingTopology(s: StartingRings): Topology {
  const listed = s.members.filter(inRing).map((m) => m.name);
  const initial = s.resolved || !s.saved ? listed : [...s.saved.members];
  const founders = s.members
    .filter((m) => inRing(m) && (m.self || (m.hello !== null && m.state !== 'down')))
    .map((m) => m.name);
  // A founded ring records its founders' incarnations: the directories that answered now.
  const incarnations: Record<string, string> = {};
  for (const m of s.members) {
    if (founders.includes(m.name) && m.hello?.incarnation)
      incarnations[m.name] = m.hello.incarnation;
  }
  const settled =
    s.saved ??
    newestReported(s.members)?.ring ??
    settledRing(0, founders.length > 0 ? founders : [s.self], incarnations);
  return new Topology(initial.length > 0 ? initial : [s.self], settled, s.replicationFactor);
}
