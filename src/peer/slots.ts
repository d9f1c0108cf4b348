// The peer port's connection slots: members that proved themselves keep theirs when strangers crowd in.

import type { Socket } from 'node:net';

/** What PeerSlots.open did with a new connection. */
export type SlotOutcome =
  /** Under the limit: it holds a slot. */
  | 'open'
  /** At the limit: the oldest connection not yet proven was closed, and the new one took its slot. */
  | 'evicted'
  /** At the limit with every open connection proven: the new one was closed. */
  | 'limit';

/**
 * At most `limit` connections open at once (TLS handshakes included). A connection starts
 * unproven and is proven once it authenticated (with a cluster secret), or sent its first
 * well-formed request (without one). At the limit a new connection takes the slot of the oldest
 * unproven one, which is closed; it is refused only when every open connection is proven. So
 * connections that never prove anything (idle strangers, a handshake never finished, slowloris)
 * cannot keep members out however many there are or however often they are renewed: a member's
 * connection proves itself within its first round trips, and is closed before that only if as many
 * new connections as there are unproven slots arrived meanwhile. Before, the port refused every
 * new connection once full, and idle strangers held the slots for good without a secret (for the
 * handshake time, 5 s, and again as they reconnected, with one).
 */
export class PeerSlots {
  readonly limit: number;
  /** Every connection holding a slot. */
  readonly #holding = new Set<Socket>();
  /** Those not proven yet, oldest first (a Set keeps insertion order). */
  readonly #unproven = new Set<Socket>();

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

  /**
   * A new connection (its raw TCP socket, before any TLS): gives it a slot, closing the oldest
   * unproven connection at the limit, or closes it. Its slot is freed when the socket closes.
   */
  open(socket: Socket): SlotOutcome {
    let outcome: SlotOutcome = 'open';
    if (this.#holding.size >= this.limit) {
      const oldest = this.#unproven.values().next();
      if (oldest.done) {
        socket.destroy();
        return 'limit';
      }
      // Freed now: its 'close' comes a tick later, after the new one took the slot.
      this.#free(oldest.value);
      oldest.value.destroy();
      outcome = 'evicted';
    }
    this.#holding.add(socket);
    this.#unproven.add(socket);
    socket.once('close', () => this.#free(socket));
    return outcome;
  }

  /** `socket`'s connection proved itself: it is never closed for another. */
  prove(socket: Socket): void {
    this.#unproven.delete(socket);
  }

  #free(socket: Socket): void {
    this.#holding.delete(socket);
    this.#unproven.delete(socket);
  }
}
