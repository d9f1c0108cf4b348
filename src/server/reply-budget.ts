// A node-wide bound on the bytes of replies in the making, shared by every client connection.

/**
 * What a woken connection may start in its turn, while others wait: commands until it counted
 * this many bytes (at least one command). Small, so a client that reads, behind 32 that do not,
 * waits for 32 of their GETs, not for all 16 MiB of each (measured: 10 s and more).
 */
export const TURN_BYTES = 1024 * 1024;

/** A connection as the budget sees it: woken once it may go on. */
export interface ReplyWaiter {
  /** Called (in a later event-loop turn: #schedule) when the waiter may start commands again. */
  wake(): void;
}

/**
 * Counts the bytes of replies every connection has in the making: what each command running
 * may still make (a GET the size of this node's copy, Coordinator.sizeHere, or --max-value-bytes
 * when only other nodes own the key; other commands their replyBound, until answered) and the
 * replies made and not yet handed to the socket (reply-bytes.ts; the connection's #replyBytes,
 * summed). The per-connection bound (REPLY_HIGH_WATER, 16 MiB) lets each connection start GETs
 * whose replies may hold that much; 40 clients that never read, whose pipelines of 1 MiB GETs
 * arrived together, so started 624 of them at once and the coordinator grew by +544 to +924 MiB
 * for a moment (before any reply reached a socket, where --max-client-output-bytes sees it).
 *
 * While the count is at the limit, no connection starts a command (connection.ts: #mustWait,
 * then reading pauses: backpressure, as the per-connection bound); the connection waits in line
 * and is woken, in the order it began to wait, as commands finish and their replies are written.
 * While any connection waits, the others wait behind it: one busy connection cannot take every
 * byte that frees. A woken connection starts commands while the count is under the limit, up to
 * TURN_BYTES of them (round robin), and waits at the back of the line again after. Commands
 * already running always finish (nothing they do waits on the budget), and one command starts
 * whenever the count is under the limit, so the count passes the limit by one command's bound at
 * most, and a command whose bound alone is over the limit still runs. A GET answered at once by this node (getNow, no
 * reply held) and replies already in sockets do not count here: the latter are
 * --max-client-output-bytes's (client-output.ts), which closes clients that do not read.
 */
export class ReplyBudget {
  readonly limit: number;
  #reserved = 0;
  /** Connections waiting, in the order they began to (a Set keeps insertion order). */
  readonly #waiters = new Set<ReplyWaiter>();
  /** The connection being woken: it may start commands though others still wait. */
  #turn: ReplyWaiter | null = null;
  /** Bytes the connection being woken counted in its turn. */
  #turnBytes = 0;
  #scheduled = false;
  /** Called each time a connection begins to wait (kvstore_client_reply_waits_total). */
  readonly #onWait: () => void;

  constructor(limit: number, onWait: () => void = () => {}) {
    this.limit = limit;
    this.#onWait = onWait;
  }

  /** Bytes reserved now (kvstore_client_reply_reserved_bytes). */
  get reserved(): number {
    return this.#reserved;
  }

  /** Connections waiting now (kvstore_client_reply_waiting_connections). */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * True when `who` may not start a command now: the count is at the limit, or others wait
   * ahead of it. Then `who` waits in line (once) and is woken when its turn comes.
   */
  exhausted(who: ReplyWaiter): boolean {
    if (
      this.#reserved < this.limit &&
      (this.#waiters.size === 0 || (this.#turn === who && this.#turnBytes < TURN_BYTES))
    ) {
      return false;
    }
    if (!this.#waiters.has(who)) {
      this.#waiters.add(who);
      this.#onWait();
      // Waiting only behind others, with room: their turn comes in the next event-loop turn.
      if (this.#reserved < this.limit) this.#schedule();
    }
    return true;
  }

  /** Adds `bytes` (negative: gives them back). */
  move(bytes: number): void {
    this.#reserved += bytes;
    if (this.#turn !== null && bytes > 0) this.#turnBytes += bytes;
    if (bytes < 0 && this.#waiters.size > 0 && this.#reserved < this.limit) this.#schedule();
  }

  /** `who` closed: it waits no more. */
  leave(who: ReplyWaiter): void {
    this.#waiters.delete(who);
  }

  /**
   * Wakes waiters in the next event-loop turn (setImmediate, not atTurnEnd: never inside a
   * connection's flush or the end-of-turn flushes, which give bytes back while they write), in
   * order, while the count is under the limit.
   */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#wakeInOrder);
  }

  readonly #wakeInOrder = () => {
    this.#scheduled = false;
    while (this.#waiters.size > 0 && this.#reserved < this.limit) {
      const next: ReplyWaiter = this.#waiters.values().next().value!;
      this.#waiters.delete(next);
      this.#turn = next;
      this.#turnBytes = 0;
      try {
        next.wake();
      } finally {
        this.#turn = null;
      }
    }
  };
}
