// What one peer's refused handshakes log: the first of an episode, then a line a minute with the count, and its end.

import type { Logger } from '../observability/index.ts';
import type { PeerLane } from './metrics.ts';

/** While handshakes to a peer keep failing, a warning line at most this often. */
export const REFUSED_LOG_EVERY_MS = 60_000;

/**
 * The handshake refusals of one peer address, shared by its clients of every lane (PeerPool),
 * so that an episode logs once per peer, not once per lane and attempt. A member stopped
 * (SIGSTOP) or too loaded to answer accepts connections in its kernel and answers no challenge:
 * each lane's handshake times out, again at every reconnect, and each was a warning line (9 to 13
 * per node while chaos seed 28006 paused members). Logged: the first refusal of an episode
 * (`peer handshake refused`), then at most one line per REFUSED_LOG_EVERY_MS with the count so far
 * (`peer handshake still refused`), and a handshake accepted after refusals (`peer handshake
 * accepted again`, with the count and how long it lasted); every other refusal at debug.
 */
export class PeerRefusals {
  readonly #logger: Logger;
  #count = 0;
  #since = 0;
  #logged = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Refusals in the current episode (0: the last handshake was accepted, or none failed). */
  get count(): number {
    return this.#count;
  }

  /** A handshake of `lane`'s connection to `peer` failed with `err`. */
  refused(peer: string, lane: PeerLane, err: unknown): void {
    const now = Date.now();
    if (this.#count++ === 0) {
      this.#since = now;
      this.#logged = now;
      this.#logger.warn({ peer, lane, err }, 'peer handshake refused');
      return;
    }
    const fields = { peer, lane, err, refused: this.#count, forMs: now - this.#since };
    if (now - this.#logged < REFUSED_LOG_EVERY_MS) {
      this.#logger.debug(fields, 'peer handshake refused');
      return;
    }
    this.#logged = now;
    this.#logger.warn(fields, 'peer handshake still refused');
  }

  /** A handshake to `peer` succeeded: ends the episode, if one was running. */
  accepted(peer: string): void {
    if (this.#count === 0) return;
    const fields = { peer, refused: this.#count, forMs: Date.now() - this.#since };
    this.#count = 0;
    this.#logger.info(fields, 'peer handshake accepted again');
  }
}
