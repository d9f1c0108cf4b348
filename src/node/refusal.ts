// What a serving node refuses of its clients' commands, why, and whether it is ready all the same.

import type { Refusal } from '../admin/index.ts';
import type { ClockRefusal } from '../membership/index.ts';

/** Where each refusal comes from; each answers its reason, or null while it does not refuse. */
export interface RefusalSources {
  /** The disk stalled (Storage.stalled): every command refused. */
  readonly stalled: () => string | null;
  /**
   * Records dropped before serving (a ring settled without this node while it was away), or its
   * start-up before its first ring update decides whether they must be: every command refused.
   */
  readonly dropping: () => string | null;
  /** Another process answers under this node's name at the address listed for it. */
  readonly duplicate: () => string | null;
  /** ClockCheck.refusal: writes refused. */
  readonly clock: () => ClockRefusal | null;
  /**
   * How many other members might take this node's clients: not down by its failure detector
   * (up, or not yet probed often enough to say), their disks not stalled, and not refusing writes
   * for their own clocks as their last hellos said (othersServing).
   */
  readonly others: () => number;
}

/**
 * RefusalSources.others from what the node knows: the members its source lists that might serve
 * (Membership.mightServe); while its source has never answered (`names()` null: its DNS failing
 * since it started), the members that probe it saying they serve (Callers.serving). Such a node
 * knows no member to compare clocks with or to route to, and refuses writes until it does; when
 * the others serve, its clients belong with them; when nobody probes it (the whole cluster's DNS
 * failing as its members restart), it stays ready, as every other member does.
 */
export function othersServing(
  members: { names(): readonly string[] | null; mightServe(name: string): boolean },
  callers: { serving(): number },
): number {
  const names = members.names();
  if (names === null) return callers.serving();
  return names.filter((n) => members.mightServe(n)).length;
}

/**
 * What the node refuses now, the first that applies, or null: a stalled disk, records being
 * dropped (or a start-up deciding whether they must be) and a duplicate name refuse every
 * command and make the node not ready; the clock refuses writes, and makes it not ready only
 * while another member might take its clients instead: one not down, its disk answering, and
 * not refusing writes for its clock too (RefusalSources.others); or, without that, while the
 * refusal is one its only witness shares (ClockRefusal.mutual: that member refuses as well,
 * which its next hello says). (A disk that refuses writes is not here: the node still
 * coordinates writes, which the other replicas store, and stays ready, `degraded`:
 * docs/storage.md.)
 *
 * Readiness routes clients (a Service's endpoints, a load balancer) and paces rollouts: a node
 * that refuses writes for a reason of its own while another takes them belongs out of rotation.
 * One whose every peer is down (or that has none), or refuses writes for its clock as well,
 * stays in it: no other node would serve its clients better, it still answers reads and says
 * why it refuses writes. So clock refusals never take every member out: when every clock is off
 * from every other's (each refuses, every hello says so), every member stays ready, `degraded`,
 * and reads are served; before, each was not ready for a member that refused as well, and a
 * Service had no endpoint left. A node that waited for a peer to be ready before it is would
 * deadlock with whatever starts that peer only once this one is ready (a StatefulSet with
 * OrderedReady pods, a rollout). Peers never wait for each other's readiness here: a peer port
 * answers from before the node is ready, and the headless Service publishes addresses that are
 * not ready.
 */
export function refusalOf(s: RefusalSources): Refusal | null {
  const stalled = s.stalled();
  if (stalled !== null) return { commands: 'all', reason: stalled, ready: false };
  const dropping = s.dropping();
  if (dropping !== null) return { commands: 'all', reason: dropping, ready: false };
  const duplicate = s.duplicate();
  if (duplicate !== null) return { commands: 'all', reason: duplicate, ready: false };
  const clock = s.clock();
  if (clock !== null) {
    const ready = clock.mutual || s.others() === 0;
    return { commands: 'writes', reason: clock.reason, ready };
  }
  return null;
}
