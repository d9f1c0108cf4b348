// How the reads of one event-loop turn ask other members: the same one first, and all or none.

import { atTurnEnd } from '../net/index.ts';

/**
 * The order a coordinator's reads prefer the other members in. Every read of one event-loop turn
 * prefers the same member: among a key's owners, the first at or after the turn's start in the
 * other members' sorted order, taken cyclically. The asks a turn makes to other members (one
 * `getMany` per member, Replicas.get) then go to as few members as the keys' owners allow: with
 * as many replicas as members (RF=3 on 3), one request per turn instead of one to each. The
 * start moves on by one member after every turn that read, so each member is preferred in turn:
 * the reads' load spreads evenly over the members whatever the keys and whichever node the
 * clients use. Each key's owners were asked in their ring order before (a random other owner
 * per key), which split a turn's asks over every other owner.
 *
 * The reads that ask every owner (read repair's chance, `--read-repair-chance`) are chosen by
 * turn for the same reason: the same share of reads, but all of one turn or none, so that the
 * turns without them make no request to the members they would add. Chosen read by read, one
 * of five reads at a chance of 0.1 asked every owner in about 40% of the turns.
 */
export class ReadPreference {
  readonly #self: string;
  /** The member list `#rank` was made from (Ring.members: sorted, the same array until it changes). */
  #members: readonly string[] | null = null;
  /** Position of each other member in the sorted list without this node. */
  readonly #rank = new Map<string, number>();
  #turn = 0;
  #bumping = false;
  /** Whether this turn's reads ask every owner; undefined until its first read asks. */
  #all: boolean | undefined = undefined;
  readonly #bump = () => {
    this.#turn++;
    this.#all = undefined;
    this.#bumping = false;
  };

  constructor(self: string) {
    this.#self = self;
  }

  /**
   * Sorts `others` (members other than this node, owners of one key) in place: the turn's
   * preferred member first, then the next ones cyclically; a name not in `members` (a settled
   * owner no longer in the target ring) after all of them, in the order given. `members`: the
   * target ring's sorted members.
   */
  order(others: string[], members: readonly string[]): void {
    if (others.length < 2) return;
    const rank = this.#rankOf(members);
    const count = rank.size;
    if (count === 0) return;
    this.#enter();
    const start = this.#turn % count;
    const key = (name: string) => {
      const r = rank.get(name);
      return r === undefined ? count : (r - start + count) % count;
    };
    if (others.length === 2) {
      if (key(others[1]!) < key(others[0]!)) others.reverse();
      return;
    }
    const keys = new Map(others.map((n) => [n, key(n)]));
    others.sort((a, b) => keys.get(a)! - keys.get(b)!);
  }

  /**
   * Whether the reads of this turn ask every owner: true with probability `chance` (0..1), drawn
   * by the turn's first read and the same for every other read of the turn.
   */
  askAll(chance: number): boolean {
    if (chance <= 0) return false;
    if (chance >= 1) return true;
    this.#enter();
    this.#all ??= Math.random() < chance;
    return this.#all;
  }

  /** A read of this turn: the turn's choices are made again after it. */
  #enter(): void {
    if (this.#bumping) return;
    this.#bumping = true;
    atTurnEnd(this.#bump);
  }

  #rankOf(members: readonly string[]): Map<string, number> {
    if (members !== this.#members) {
      this.#members = members;
      this.#rank.clear();
      for (const name of members) if (name !== this.#self) this.#rank.set(name, this.#rank.size);
    }
    return this.#rank;
  }
}
