// A node-wide bound on the bytes of replies in the making, shared by every client connection.

/**
 * What a woken connection may start in its turn, while others wait: commands until it counted
 * this many bytes (at least one command). Small, so a client that reads, behind 32 that do not,
 * waits for 32 of their GETs, not for all 16 MiB of each (measured: 10 s and more).
 */
export const TURN_BYTES = 1024 * 1024;

/** Room past the limit, as a share of it (an eighth), that only light connections take. */
export const LIGHT_ROOM_SHARE = 8;

/**
 * A connection holding at most this much of replies with its next command (a client reading
 * small values, pipelined or not) is light: it does not wait behind the megabytes others hold.
 */
export const LIGHT_BYTES = 64 * 1024;

/** A connection as the budget sees it: woken once it may go on. */
export interface ReplyWaiter {
  /** Called (in a later event-loop turn: #schedule) when the waiter may start commands again. */
  wake(): void;
  /**
   * Bytes of its replies the kernel has not taken: what it counts in the budget (its commands'
   * reservations and replies not written) and what waits in its socket.
   */
  replyBytes(): number;
  /**
   * Bytes the command it asks to start (exhausted) will count; asked only while the budget is
   * at its limit or others wait, and while it waits.
   */
  nextReplyBytes(): number;
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
 * then reading pauses: backpressure, as the per-connection bound) unless it is light (below); it
 * waits in line and is woken, in the order it began to wait, as commands finish and their
 * replies are written. While any connection waits, the others wait behind it: one busy
 * connection cannot take every byte that frees. A woken connection starts commands while the
 * count is under the limit, up to TURN_BYTES of them (round robin), and waits at the back of the
 * line again after.
 *
 * A connection is light while the replies it holds that the kernel has not taken (in the making,
 * made, and waiting in its socket), with what its next command will count (its reservation,
 * known before it starts: connection.ts nextReplyBytes), come to at most LIGHT_BYTES: a client
 * reading small values, pipelined or not, but not one whose socket is backed up. A GET of a
 * large value is never light, whoever asks: a client that stopped reading holds nothing here
 * once the kernel took its replies, and cannot be told from one that reads until its socket
 * backs up (with light large GETs, 40 such clients were closed more often by the output bound).
 * A light connection does not wait behind the megabytes others reserved: it starts commands
 * while the count is under the limit and an eighth (LIGHT_ROOM_SHARE; the `lightLimit`), and
 * when it must wait, it waits in a line of its own, woken before the other; a waiter of the
 * other line that became light (its replies written) moves to it. So that the others are not starved by light ones that keep the count over the
 * limit, light connections pass waiting ones by that room's size (lightLimit - limit) at most
 * between two turns of the first of them. Without the light line, a PING waited behind GETs
 * whose peers had not answered until they did (over 30 s: test/integration/reply-budget.test.ts),
 * and a client reading 100-byte values beside 40 clients keeping 1 MiB GETs in flight waited for
 * their turns (bench/reply-fairness.ts).
 *
 * Commands already running always finish (nothing they do waits on the budget), and one command
 * starts whenever the count is under its bound, so the count passes the limit and an eighth by
 * one command's bound at most, and a command whose bound alone is over the limit still runs. A
 * GET answered at once by this node (getNow, no reply held) and replies already in sockets do
 * not count here: the latter are --max-client-output-bytes's (client-output.ts), which closes
 * clients that do not read.
 */
export class ReplyBudget {
  readonly limit: number;
  /** The limit and the room only light connections take (LIGHT_ROOM_SHARE). */
  readonly lightLimit: number;
  #reserved = 0;
  /** Connections that are not light that wait, in the order they began to. */
  readonly #heavy = new Set<ReplyWaiter>();
  /** Light connections that wait, in order: woken before every heavy one. */
  readonly #light = new Set<ReplyWaiter>();
  /** The connection being woken: it may start commands though others still wait. */
  #turn: ReplyWaiter | null = null;
  /** Bytes the connection being woken counted in its turn. */
  #turnBytes = 0;
  /** The connection exhausted last let start as light past waiting heavy ones (its next move). */
  #passing: ReplyWaiter | null = null;
  /**
   * Bytes light connections started past waiting heavy ones since a heavy one last had its turn:
   * at lightLimit - limit they pass no more until one has (the heavy are never starved).
   */
  #passed = 0;
  #scheduled = false;
  /** Called each time a connection begins to wait (kvstore_client_reply_waits_total). */
  readonly #onWait: () => void;

  constructor(limit: number, onWait: () => void = () => {}) {
    this.limit = limit;
    this.lightLimit = limit + Math.floor(limit / LIGHT_ROOM_SHARE);
    this.#onWait = onWait;
  }

  /** Bytes reserved now (kvstore_client_reply_reserved_bytes). */
  get reserved(): number {
    return this.#reserved;
  }

  /** Connections waiting now (kvstore_client_reply_waiting_connections). */
  get waiting(): number {
    return this.#heavy.size + this.#light.size;
  }

  /**
   * True when `who` may not start a command now: the count is at its bound (the limit; for a
   * light one the lightLimit, or the limit once light ones passed the waiting by the room), or
   * others wait ahead of it in its line (a light one: only the light). Then `who` waits in line
   * (once) and is woken when its turn comes.
   */
  exhausted(who: ReplyWaiter): boolean {
    this.#passing = null;
    if (this.#reserved < this.limit && this.waiting === 0) return false;
    const light = this.#isLight(who);
    const myTurn = this.#turn === who && this.#turnBytes < TURN_BYTES;
    if (light) {
      // One that waits with the heavy and became light with no count moved (its socket drained:
      // move() did not see it) is light now: it goes on as one, or waits in their line.
      const wasHeavy = this.#heavy.delete(who);
      if (this.#lightMay() && (this.#light.size === 0 || myTurn)) {
        if (this.#heavy.size > 0) this.#passing = who;
        return false;
      }
      if (wasHeavy) {
        this.#light.add(who);
        if (this.#room()) this.#schedule();
        return true;
      }
    } else if (this.#reserved < this.limit && (this.waiting === 0 || myTurn)) return false;
    if (!this.#light.has(who) && !this.#heavy.has(who)) {
      (light ? this.#light : this.#heavy).add(who);
      this.#onWait();
      // Waiting only behind others, with room: their turn comes in the next event-loop turn.
      if (this.#room()) this.#schedule();
    }
    return true;
  }

  /** `who`'s count changes by `bytes` (negative: gives them back). */
  move(who: ReplyWaiter, bytes: number): void {
    this.#reserved += bytes;
    if (bytes > 0) {
      if (this.#turn !== null) this.#turnBytes += bytes;
      if (this.#passing === who) this.#passed += bytes;
      return;
    }
    // Its replies written while it waits with the heavy, it may be light now: it moves.
    if (this.#heavy.has(who) && this.#isLight(who)) {
      this.#heavy.delete(who);
      this.#light.add(who);
    }
    if (this.#room()) this.#schedule();
  }

  /** `who` closed: it waits no more. */
  leave(who: ReplyWaiter): void {
    this.#heavy.delete(who);
    this.#light.delete(who);
  }

  /** True when `who` holds at most LIGHT_BYTES with its next command. */
  #isLight(who: ReplyWaiter): boolean {
    const held = who.replyBytes();
    return held <= LIGHT_BYTES && held + who.nextReplyBytes() <= LIGHT_BYTES;
  }

  /**
   * True when a light connection may start a command, as far as the count goes: under the
   * lightLimit, and past the heavy that wait only until it passed them by the room's size.
   */
  #lightMay(): boolean {
    return (
      this.#reserved < this.lightLimit &&
      (this.#heavy.size === 0 || this.#passed < this.lightLimit - this.limit)
    );
  }

  /** True when the first waiter of a line may start a command now. */
  #room(): boolean {
    return (
      (this.#light.size > 0 && this.#lightMay()) ||
      (this.#heavy.size > 0 && this.#reserved < this.limit)
    );
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

  /** Light waiters first (#lightMay), then heavy ones (under the limit). */
  readonly #wakeInOrder = () => {
    this.#scheduled = false;
    while (this.#room()) {
      const line = this.#light.size > 0 && this.#lightMay() ? this.#light : this.#heavy;
      const next: ReplyWaiter = line.values().next().value!;
      line.delete(next);
      if (line === this.#heavy) this.#passed = 0;
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
