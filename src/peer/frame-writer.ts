// Batched frame output: every frame queued in one event-loop turn leaves in one socket write.

import type { Socket } from 'node:net';
import { atTurnEnd } from '../net/index.ts';

/**
 * Writes length-prefixed frames to a socket. The first frame of a turn corks the socket and the
 * end of the turn (atTurnEnd) uncorks it, so all frames queued before then reach the kernel in
 * one writev (no copy of the bodies). Frames for a destroyed or ended socket are dropped silently.
 */
export class FrameWriter {
  readonly #socket: Socket;
  readonly #onBytes: (bytes: number) => void;
  readonly #onFlushed: (() => void) | undefined;
  #corked = false;

  /**
   * `onBytes` is called with the size of every frame written (header included); `onFlushed`
   * after a turn's frames were handed to the socket (the kernel took what it could of them).
   */
  constructor(socket: Socket, onBytes: (bytes: number) => void, onFlushed?: () => void) {
    this.#socket = socket;
    this.#onBytes = onBytes;
    this.#onFlushed = onFlushed;
  }

  /** True while the socket's write buffer is over its high-water mark (wait for `drain`). */
  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /**
   * Queues one frame, its 4-byte header included (codec.ts makes them so: one buffer, one write
   * call per frame); returns false when the socket can no longer be written.
   */
  write(frame: Buffer): boolean {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return false;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      atTurnEnd(() => this.#uncork());
    }
    socket.write(frame);
    this.#onBytes(frame.length);
    return true;
  }

  #uncork(): void {
    this.#corked = false;
    // end() uncorks by itself; a destroyed socket has nothing to flush.
    if (!this.#socket.destroyed && this.#socket.writableCorked > 0) this.#socket.uncork();
    this.#onFlushed?.();
  }
}
