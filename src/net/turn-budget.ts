// A node-wide bound on one kind of work done in one event-loop turn, with a line for what waits.

import { atNextTurn, turnPasses } from './turn.ts';

/**
 * Counts the work of one kind (bytes of large replies: server/turn-budget.ts; records of scans:
 * replica/scan.ts) done in the current event-loop turn (a turn is the span between two
 * end-of-turn passes, turnPasses). Once it reaches the limit, what would do more waits
 * (`exhausted`, then `wait`) and goes on in a later turn, after that turn's poll: new connections
 * are accepted and other sockets read in between. Work that does not count (small replies, a
 * PING) never waits: a client reading 100-byte values goes first.
 * Waiters go on in the order they began to wait, before anything of the turn that did not wait
 * (exhausted is true while any waits): what waits is neither starved nor passed. The first
 * waiter of a turn always makes progress (the count starts again as they are served), so the
 * bound holds the node's turn to the limit and one unit of work (a large reply, a piece of a
 * scan) at most, where before one turn did what every connection had (a connection also makes at
 * most TURN_REPLY_BYTES a turn, server/connection.ts: the bound per connection, this one over all
 * of them).
 *
 * Memory: a reply that waits is held as it was made (its value), where written it would be held
 * by the socket or the kernel; it counts in the connection's reply bytes as before, so the reply
 * budget (server/reply-budget.ts) still bounds what the node holds. A scan that waits holds what
 * it read so far, which its command counts in that budget already (its LIMIT of keys).
 */
export class TurnBudget {
  readonly limit: number;
  /** The turn (turnPasses) #spent counts in. */
  #pass = -1;
  #spent = 0;
  /** Waiters, in the order they began to wait. */
  #line: (() => void)[] = [];
  #serving = false;
  /** While serving: waiters of the line being served after the one served now. */
  #ahead = 0;
  #armed = false;
  /** Called each time something begins to wait (kvstore_client_turn_waits_total). */
  readonly #onWait: () => void;

  constructor(limit: number, onWait: () => void = () => {}) {
    this.limit = limit;
    this.#onWait = onWait;
  }

  /** Counts `n` units of work done in this turn. */
  spend(n: number): void {
    this.#sync();
    this.#spent += n;
  }

  /**
   * True when no further work may be done in this turn: the turn's count is spent, or others
   * wait (while they are served in turn, only the count).
   */
  exhausted(): boolean {
    this.#sync();
    return this.#spent >= this.limit || (!this.#serving && this.#line.length > 0);
  }

  /**
   * True when what goes on now should let others go first (wait): exhausted, or, while the line
   * is served, others of it are still to come (inPieces: one piece each, round robin).
   */
  yields(): boolean {
    return this.exhausted() || (this.#serving && (this.#ahead > 0 || this.#line.length > 0));
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
   * turn's count lasts, the first whatever this turn did before (its count starts again here).
   * Those not served keep their place ahead of any that began to wait meanwhile (a waiter served
   * that had to stop waits again at the back). Waiters that wait again with the count not spent
   * (inPieces: they let the others go first) are served again in this pass, round robin, while
   * a round of them counts anything.
   */
  readonly #serve = () => {
    this.#armed = false;
    this.#sync();
    this.#spent = 0;
    let line = this.#line;
    this.#line = [];
    this.#serving = true;
    let i = 0;
    let roundFrom = 0;
    try {
      while (this.#spent < this.limit) {
        if (i === line.length) {
          // A round that counted nothing would go round for ever.
          if (this.#line.length === 0 || this.#spent === roundFrom) break;
          roundFrom = this.#spent;
          line = this.#line;
          this.#line = [];
          i = 0;
        }
        this.#ahead = line.length - i - 1;
        line[i++]!();
      }
    } finally {
      this.#serving = false;
      this.#ahead = 0;
      if (i < line.length) this.#line = line.slice(i).concat(this.#line);
      if (this.#line.length > 0) this.#arm();
    }
  };
}

/**
 * Does a whole in pieces over event-loop turns: calls `piece` (a bounded piece of the work, which
 * counts what it did with `budget.spend` and returns true once the whole is done) now while the
 * budget lasts, and in later turns, in the budget's line, one piece at a time while others wait
 * (round robin), more while none does. Resolves once `piece` returned true; rejects with what it
 * threw (then it is not called again).
 */
export function inPieces(budget: TurnBudget, piece: () => boolean): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const go = () => {
    try {
      do {
        if (piece()) {
          resolve();
          return;
        }
      } while (!budget.yields());
      budget.wait(go);
    } catch (err) {
      reject(err);
    }
  };
  if (budget.exhausted()) budget.wait(go);
  else go();
  return promise;
}
