// A node-wide bound on the bytes of large replies made and written in one event-loop turn.

import { atNextTurn, turnPasses } from '../net/index.ts';

/** A reply of this many bytes or more is large: it counts in the TurnBudget and may wait for it. */
export const LARGE_REPLY_BYTES = 64 * 1024;

/**
 * Bytes of large replies the node makes (a value read for a GET, copied or encoded) and writes in
 * one event-loop turn, over every client connection. Three nodes (RF=3, R=2) beside 40 clients
 * that each kept 16 GETs of 1 MiB in flight: the coordinator started 128 GETs in one turn (the
 * reply budget's 128 MiB), the other replica's headers for all of them came back in one frame,
 * and the turn that completed them made and wrote 128 MiB (0.5-1.9 s at load 13): a 100-byte GET
 * answered in that batch waited for it, a new connection waited for that turn and the next (the
 * node accepts one connection per turn), and the starts and completions went on in lockstep.
 * Why 8 MiB (bench/results/2026-12-07-s30-turn-budget-ab.md): 4 MiB answered small GETs and new
 * connections a little sooner but cost about 15% more CPU per MiB of large replies on one node;
 * with 16 MiB, small GETs on three nodes waited nearly as long as without a bound.
 */
export const NODE_TURN_BYTES = 8 * 1024 * 1024;

/**
 * Counts the bytes of large replies made and written in the current event-loop turn (a turn is
 * the span between two end-of-turn passes, turnPasses). Once they reach the limit, what would
 * make or write another large reply waits (`exhausted`, then `wait`) and goes on in a later turn,
 * after that turn's poll: new connections are accepted and other sockets read in between.
 * Small replies never wait and count nothing: a client reading 100-byte values goes first.
 * Waiters go on in the order they began to wait, before anything of the turn that did not wait
 * (exhausted is true while any waits): a connection's large reply that waits is neither starved
 * nor passed. The first waiter of a turn always makes progress (the count starts again as they
 * are served), so the bound holds the node's turn to the limit and one large reply at most,
 * where before one turn wrote what every connection had (a connection also makes at most
 * TURN_REPLY_BYTES a turn, connection.ts: the bound per connection, this one over all of them).
 *
 * Memory: a reply that waits is held as it was made (its value), where written it would be held
 * by the socket or the kernel; it counts in the connection's reply bytes as before, so the reply
 * budget (reply-budget.ts) still bounds what the node holds.
 */
export class TurnBudget {
  readonly limit: number;
  /** The turn (turnPasses) #spent counts in. */
  #pass = -1;
  #spent = 0;
  /** Waiters, in the order they began to wait. */
  #line: (() => void)[] = [];
  #serving = false;
  #armed = false;
  /** Called each time something begins to wait (kvstore_client_turn_waits_total). */
  readonly #onWait: () => void;

  constructor(limit: number = NODE_TURN_BYTES, onWait: () => void = () => {}) {
    this.limit = limit;
    this.#onWait = onWait;
  }

  /** Counts `bytes` of a large reply made or written in this turn. */
  spend(bytes: number): void {
    this.#sync();
    this.#spent += bytes;
  }

  /**
   * True when no further large reply may be made or written in this turn: the turn's bytes are
   * spent, or others wait (while they are served in turn, only the bytes count).
   */
  exhausted(): boolean {
    this.#sync();
    return this.#spent >= this.limit || (!this.#serving && this.#line.length > 0);
  }

  /** Runs `go` in a later turn, in line: it goes on with what `exhausted` stopped. */
  wait(go: () => void): void {
    this.#line.push(go);
    this.#onWait();
    this.#arm();
  }

  /** Waiters now (tests). */
  get waiting(): number {
    return this.#line.length;
  }

  #sync(): void {
    const pass = turnPasses();
    if (pass === this.#pass) return;
    this.#pass = pass;
    this.#spent = 0;
  }

  #arm(): void {
    if (this.#armed || this.#serving) return;
    this.#armed = true;
    atNextTurn(this.#serve);
  }

  /**
   * In the next turn's end-of-turn pass (first in it: atNextTurn): waiters in order while the
   * turn's bytes last, the first whatever this turn made before (its count starts again here).
   * Those not served keep their place ahead of any that began to wait meanwhile (a waiter served
   * that had to stop waits again at the back).
   */
  readonly #serve = () => {
    this.#armed = false;
    this.#sync();
    this.#spent = 0;
    const line = this.#line;
    this.#line = [];
    this.#serving = true;
    let i = 0;
    try {
      while (i < line.length && this.#spent < this.limit) line[i++]!();
    } finally {
      this.#serving = false;
      if (i < line.length) this.#line = line.slice(i).concat(this.#line);
      if (this.#line.length > 0) this.#arm();
    }
  };
}
