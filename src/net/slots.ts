// Connection slots of a listener: connections that proved themselves keep theirs when strangers crowd in.

/** What Slots.take did with a new connection. */
export type SlotOutcome<T> =
  /** Under the limit: it holds a slot. */
  | { readonly outcome: 'open' }
  /**
   * At the limit: `evicted`, the oldest connection not yet proven, lost its slot to the new one;
   * the caller closes it.
   */
  | { readonly outcome: 'evicted'; readonly evicted: T }
  /** At the limit with every open connection proven: the new one holds none; the caller closes it. */
  | { readonly outcome: 'limit' };

/**
 * At most `limit` connections at once. A connection starts unproven and is proven once it did
 * what only a real client of the port does (authenticated; with nothing to authenticate, sent a
 * first well-formed request). At the limit a new connection takes the slot of the oldest unproven
 * one; it is refused only when every open connection is proven. So connections that never prove
 * anything (idle strangers, a handshake never finished, slowloris) cannot keep real clients out
 * however many there are or however often they are renewed: a real client proves itself within
 * its first round trips, and loses its slot before that only if as many new connections as there
 * are unproven slots arrive meanwhile.
 */
export class Slots<T> {
  readonly limit: number;
  /** Every connection holding a slot. */
  readonly #holding = new Set<T>();
  /** Those not proven yet, oldest first (a Set keeps insertion order). */
  readonly #unproven = new Set<T>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Connections holding a slot now. */
  get held(): number {
    return this.#holding.size;
  }

  /** Of them, those not proven yet. */
  get unproven(): number {
    return this.#unproven.size;
  }

  /** True when a new connection would get no slot (take: `limit`): every slot held, all proven. */
  get full(): boolean {
    return this.#holding.size >= this.limit && this.#unproven.size === 0;
  }

  /**
   * A new connection: gives it a slot unless every slot is held by a proven one. At the limit the
   * oldest unproven one loses its slot at once (not when it closes later) and is returned.
   */
  take(conn: T): SlotOutcome<T> {
    let evicted: T | undefined;
    if (this.#holding.size >= this.limit) {
      const oldest = this.#unproven.values().next();
      if (oldest.done) return { outcome: 'limit' };
      evicted = oldest.value;
      this.free(evicted);
    }
    this.#holding.add(conn);
    this.#unproven.add(conn);
    return evicted === undefined ? { outcome: 'open' } : { outcome: 'evicted', evicted };
  }

  /** `conn` proved itself: it is never evicted for another. */
  prove(conn: T): void {
    this.#unproven.delete(conn);
  }

  /** `conn` closed (or was evicted): its slot is free. Safe to call again. */
  free(conn: T): void {
    this.#holding.delete(conn);
    this.#unproven.delete(conn);
  }
}
