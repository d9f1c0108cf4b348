// Whether the members list the same members: a lasting difference keeps the cluster from rest for good.

import { Gauge, type Registry } from 'prom-client';
import { flagGauge, type Logger } from '../observability/index.ts';
import type { MemberView } from './manager.ts';
import { settleSpreadMs } from './ring-keeper.ts';
import { sameNames } from './settled.ts';

/**
 * How long a member's list may differ from this node's before it is reported: twice the time a
 * change of the member source takes to reach every member. Each member reads its source again
 * every --resolve-interval-ms (a DNS scale-up or scale-down reaches every member's list within
 * one interval; a resolve that fails or times out is retried an interval later, which the
 * doubling covers), and the others see its new list at their next probe of it, which
 * settleSpreadMs bounds (5 probe rounds and a --peer-timeout-ms). A decommission changes no
 * list (the member stays listed until its pod or its --peers entry goes, which is again such a
 * change). Defaults: 2 x (5 s + 5 x 1 s + 2 s) = 24 s. With static --peers a join or a removal
 * is a rolling restart, paced by the operator: one slower than this is reported while it lasts,
 * and the log says so.
 */
export function membershipSpreadMs(
  resolveIntervalMs: number,
  probeIntervalMs: number,
  peerTimeoutMs: number,
): number {
  return 2 * (resolveIntervalMs + settleSpreadMs(probeIntervalMs, peerTimeoutMs));
}

export interface MembershipCheckOptions {
  /** Every member as this node sees it, this node included (Membership.members). */
  readonly members: () => readonly MemberView[];
  /** This node's member names (Membership.names); null until its source answered. */
  readonly names: () => readonly string[] | null;
  /** Members this node keeps while its source no longer lists them (Membership.unlisted). */
  readonly unlisted?: () => readonly string[];
  /** Addresses its source listed and could not name yet (Membership.unnamed). */
  readonly unnamed?: () => number;
  /**
   * How long (ms, in all) this process did not run (Membership.pausedMs): a pause does not count
   * toward the bound. None when absent.
   */
  readonly paused?: () => number;
  /** membershipSpreadMs(). */
  readonly boundMs: number;
  readonly logger: Logger;
  readonly registry: Registry;
}

/**
 * Every node makes its target ring of the members its own source lists (less members leaving),
 * and reports the ring's id in every hello (`ringId`). A node whose --peers names other members
 * than the others' (a copied command line, a rolling change of --peers never finished) routes
 * by another ring, for good: the others never settle a target it does not report (Topology
 * trySettle: every target member must report the target's id), and it never settles its own
 * (the others never report that one), so it shows `moving` forever; and the cluster is never at
 * rest (Topology.atRest: every member must report this node's target id and transfer), so no
 * tombstone is collected and no anti-entropy pass runs, on every member. Nothing said so.
 *
 * So every hello carries the names the node lists (`listed`), and after every round of probes
 * this compares them with this node's own (listsDiffer: passing states of either list, members
 * kept while unlisted and addresses not named yet, are not counted). A member that is up (its
 * last hello is current), not decommissioned (it is leaving every list) and lists other names
 * than this node for longer than `boundMs` (membershipSpreadMs: longer than a join or a leave
 * takes to reach every list) is reported. Only hellos received after a difference began show
 * it lasts: a member not heard since (its last hello is from before, however long this node
 * waits) is no evidence, nor is the time this process did not run (`paused`: stopped, or its
 * event loop blocked, when the member's hellos waited unread or its probes were not sent).
 * Before, a node stopped right after its own list changed, then cut off from a member that
 * dropped the name 1.4 s later, said that member had listed it "for over 8 s" (chaos 35104-d).
 * What is reported: an error log once per change naming each such member's list and this
 * node's, `kvstore_membership_mismatch` 1, and CLUSTER's `memberListsDiffer`. A decommissioned
 * node reports nothing (others stop listing it first).
 *
 * The lists may also agree and still keep a member that left: a member that reported itself
 * decommissioned (its data handed off) and is still listed by this node for longer than the
 * same bound is down or not active for good, so the cluster never comes to rest either. It is
 * reported the same way: a warning once per change, `kvstore_decommissioned_members_listed`,
 * CLUSTER's `decommissionedListed`.
 */
export class MembershipCheck {
  readonly #o: MembershipCheckOptions;
  /** Each member whose list differs from this node's, without a break (Difference). */
  readonly #since = new Map<string, Difference>();
  /** Since when (ms) each member this node lists has reported itself decommissioned. */
  readonly #decommissionedSince = new Map<string, number>();
  /** Decommissioned members this node has listed for longer than the bound. */
  #decommissioned: readonly string[] = [];
  /** The members reported, with their lists. */
  #reported: Record<string, readonly string[]> = {};
  /** What was last logged (own list and the reported lists); '' while none is reported. */
  #seen = '';

  constructor(o: MembershipCheckOptions) {
    this.#o = o;
    flagGauge(
      o.registry,
      'kvstore_membership_mismatch',
      "1 while a member (up, its last hello) has listed other members than this node's --peers or DNS answer for longer than a join takes to reach every member, else 0.",
      () => this.#seen !== '',
    );
    const listed = () => this.#decommissioned.length;
    new Gauge({
      name: 'kvstore_decommissioned_members_listed',
      help: "Members that reported themselves decommissioned (their data handed off) and that this node's --peers or DNS answer has still listed for longer than a leave takes to reach every member: until they are taken out the cluster is never at rest.",
      registers: [o.registry],
      collect() {
        this.set(listed());
      },
    });
  }

  /**
   * Members this node lists that reported themselves decommissioned, for longer than the bound
   * (up or down since: the last hello counts). A node started after such a member stopped never
   * heard it, and reports nothing: the others that did, do.
   */
  decommissionedListed(): readonly string[] {
    return this.#decommissioned;
  }

  /** The members whose list differs from this node's for longer than the bound, with their lists. */
  differing(): Record<string, readonly string[]> {
    return this.#reported;
  }

  /** `now`: ms on a monotonic clock (performance.now()), which the tests fake. */
  update(now: number = performance.now()): void {
    // Time this process ran: a pause of it counts toward no bound.
    const running = now - (this.#o.paused?.() ?? 0);
    const own = this.#o.names();
    const members = this.#o.members();
    // A decommissioned node reports nothing (the others stop listing it first).
    const mine = members.find((m) => m.self)?.hello?.status === 'decommissioned' ? null : own;
    const differ = new Map<string, MemberView>();
    if (mine !== null) {
      const ours: OwnList = {
        names: mine,
        unlisted: this.#o.unlisted?.() ?? [],
        unnamed: this.#o.unnamed?.() ?? 0,
      };
      for (const m of members) {
        const h = m.hello;
        if (m.self || m.state !== 'up' || h?.listed === undefined) continue;
        if (h.status === 'decommissioned' || !listsDiffer(ours, h.listed, h.unnamed ?? 0, h.kept))
          continue;
        differ.set(m.name, m);
      }
    }
    this.#updateDecommissioned(mine, members, running);
    const reported = lastingDifferences(this.#since, differ, running, this.#o.boundMs);
    // fromEntries: a member named `__proto__` stays an own property.
    this.#reported = Object.fromEntries(reported);
    const seen = reported.length === 0 ? '' : JSON.stringify([own, reported]);
    if (seen === this.#seen) return;
    this.#seen = seen;
    if (seen === '') {
      this.#o.logger.info({ listed: own }, 'member lists agree again');
      return;
    }
    const ownList = (own ?? []).join(',');
    const lists = reported.map(([n, l]) => `${n} lists ${l.join(',')}`).join('; ');
    this.#o.logger.error(
      { listed: own, members: this.#reported, forMs: this.#o.boundMs },
      `member lists differ: ${lists}; this node lists ${ownList} (for over ${Math.round(this.#o.boundMs / 1000)} s): give every member the same --peers (or --discovery name) and restart the odd ones. Until then they route by other rings and the cluster is never at rest: no tombstone collection, no anti-entropy (a rolling change of --peers shows this until it is done)`,
    );
  }

  /** `own`: this node's list, null when it reports nothing (no list yet, or decommissioned). */
  #updateDecommissioned(
    own: readonly string[] | null,
    members: readonly MemberView[],
    now: number,
  ): void {
    const listed =
      own === null
        ? []
        : members
            .filter((m) => !m.self && m.hello?.status === 'decommissioned' && own.includes(m.name))
            .map((m) => m.name);
    const reported = pastBound(this.#decommissionedSince, listed, now, this.#o.boundMs).sort();
    if (reported.join(',') === this.#decommissioned.join(',')) return;
    const gone = this.#decommissioned.filter((n) => !reported.includes(n));
    this.#decommissioned = reported;
    if (gone.length > 0) {
      this.#o.logger.info(
        { members: gone },
        'decommissioned members no longer listed (or active again)',
      );
    }
    if (reported.length === 0) return;
    this.#o.logger.warn(
      { members: reported, forMs: this.#o.boundMs },
      `decommissioned members still listed: ${reported.join(', ')} handed their data off, and this node still lists them (for over ${Math.round(this.#o.boundMs / 1000)} s): take them out of every member's --peers (a rolling restart), or out of DNS (their pods deleted). Until then the cluster is never at rest: no tombstone collection, no anti-entropy`,
    );
  }
}

/** This node's side of a comparison of member lists (listsDiffer). */
export interface OwnList {
  /** Every member name this node has (Membership.names), this node included. */
  readonly names: readonly string[];
  /** Those it keeps while its source no longer lists them (Membership.unlisted). */
  readonly unlisted: readonly string[];
  /** Addresses its source listed and could not name yet (Membership.unnamed). */
  readonly unnamed: number;
}

/**
 * Whether a member's list (`theirs`, HelloReply.listed, with its `unnamed` count) differs from
 * this node's in a way that is no passing state of either: a configuration that differs. Not
 * counted:
 * - members either keeps while its source no longer lists them (--unlisted-grace-ms: a restart
 *   on a new address, or one that leaves once it answers or the grace ends; `theirKept`,
 *   HelloReply.kept, absent from older versions), whether the other lists them or not (each
 *   lists what it keeps, as older versions do, and names it in `kept`);
 * - names the other lists that this node has not, up to the number of addresses this node's
 *   source lists and could not name yet (one of them may be that member);
 * - names this node has that the other lacks, up to the number of addresses the other could not
 *   name yet.
 * Anything beyond (a name only one of them lists while every address is named) differs.
 */
export function listsDiffer(
  ours: OwnList,
  theirs: readonly string[],
  theirUnnamed: number,
  theirKept: readonly string[] = [],
): boolean {
  if (sameNames(theirs, ours.names)) return false;
  const kept = new Set([...ours.unlisted, ...theirKept]);
  const mine = new Set(ours.names);
  const other = new Set(theirs);
  const extra = theirs.filter((n) => !mine.has(n) && !kept.has(n)).length;
  const missing = ours.names.filter((n) => !other.has(n) && !kept.has(n)).length;
  return extra > ours.unnamed || missing > theirUnnamed;
}

/** A member's list that differs from this node's (MembershipCheck.update). */
interface Difference {
  /** When this node first saw it (ms of this process's running time, pauses left out). */
  readonly began: number;
  /** When a hello received since `began` last showed it (the check after it arrived). */
  shown: number;
  /** The member's lastContact at `shown`: a new one is a hello received since. */
  contact: number | null;
}

/**
 * The members in `differ` whose difference has lasted at least `boundMs` of `running` time, as
 * hellos received since it began show it, with their lists; `since` keeps each difference, and
 * forgets the members that no longer differ.
 */
function lastingDifferences(
  since: Map<string, Difference>,
  differ: ReadonlyMap<string, MemberView>,
  running: number,
  boundMs: number,
): [string, readonly string[]][] {
  for (const name of [...since.keys()]) if (!differ.has(name)) since.delete(name);
  const out: [string, readonly string[]][] = [];
  for (const [name, m] of differ) {
    const d = since.get(name);
    if (d === undefined) {
      since.set(name, { began: running, shown: running, contact: m.lastContact });
      continue;
    }
    if (m.lastContact !== d.contact) {
      d.shown = running;
      d.contact = m.lastContact;
    }
    if (d.shown - d.began >= boundMs) out.push([name, m.hello?.listed ?? []]);
  }
  return out;
}

/**
 * The names among `names` seen without a break for at least `boundMs`: `since` keeps when each
 * was first seen, and forgets the names not seen now.
 */
function pastBound(
  since: Map<string, number>,
  names: Iterable<string>,
  now: number,
  boundMs: number,
): string[] {
  const seen = new Set(names);
  for (const name of [...since.keys()]) if (!seen.has(name)) since.delete(name);
  const out: string[] = [];
  for (const name of seen) {
    const first = since.get(name) ?? now;
    since.set(name, first);
    if (now - first >= boundMs) out.push(name);
  }
  return out;
}
