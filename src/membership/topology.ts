// The rings this node routes by: the settled ring and the target ring while data moves.

import { Ring } from '../ring/index.ts';
import type { MemberView } from './manager.ts';

/** The replicas of one key, and how many of each ring's replicas must answer. */
export interface Placement {
  /** Owners under the settled ring (they hold the data). */
  readonly settled: readonly string[];
  /** Owners under the target ring (equal to settled when nothing moves). */
  readonly target: readonly string[];
  /** Both lists merged, each name once: where requests go. */
  readonly all: readonly string[];
}

/**
 * Two rings: `settled`, whose owners are known to hold the data, and `target`, built from the
 * current member list. While they differ, data is moving: writes must reach a quorum in both,
 * reads ask both (old owners answer until new owners hold the data). The target becomes settled
 * once every target member reports it routes by the target and finished sending its data.
 */
export class Topology {
  readonly replicationFactor: number;
  #settled: Ring;
  #target: Ring;

  constructor(
    initial: readonly string[],
    settled: readonly string[] | null,
    replicationFactor: number,
  ) {
    this.replicationFactor = replicationFactor;
    this.#target = new Ring(initial);
    this.#settled = settled && settled.length > 0 ? new Ring(settled) : this.#target;
  }

  get settled(): Ring {
    return this.#settled;
  }

  get target(): Ring {
    return this.#target;
  }

  /** True while data moves between the settled and the target ring. */
  get moving(): boolean {
    return this.#settled.id !== this.#target.id;
  }

  /** Replicas per key in `ring`: the configured factor clamped to its member count. */
  rf(ring: Ring): number {
    return Math.min(this.replicationFactor, ring.members.length);
  }

  /** Sets the target ring from the member names; true when it changed. */
  setMembers(names: readonly string[]): boolean {
    const next = new Ring(names);
    if (next.id === this.#target.id) return false;
    this.#target = next;
    return true;
  }

  /**
   * Settles the target when every target member (this node included, through `members`) is up
   * and reports the target ring as both routed and rebalanced. True when it settled now.
   */
  trySettle(members: readonly MemberView[]): boolean {
    if (!this.moving) return false;
    const byName = new Map(members.map((m) => [m.name, m]));
    const id = this.#target.id;
    for (const name of this.#target.members) {
      const m = byName.get(name);
      if (!m || m.state === 'down' || m.hello?.ringId !== id || m.hello.rebalanced !== id) {
        return false;
      }
    }
    this.#settled = this.#target;
    return true;
  }

  /** Where a key lives. */
  place(key: Buffer): Placement {
    const target = this.#target.owners(key, this.rf(this.#target));
    if (!this.moving) return { settled: target, target, all: target };
    const settled = this.#settled.owners(key, this.rf(this.#settled));
    const all = [...settled];
    for (const n of target) if (!all.includes(n)) all.push(n);
    return { settled, target, all };
  }

  /** Every member of either ring. */
  allMembers(): string[] {
    const set = new Set([...this.#settled.members, ...this.#target.members]);
    return [...set].sort();
  }
}
