// A plain TCP socket's input without the Readable stream's work per read: libuv reads into one
// buffer the process shares, and each read is copied out to a small Buffer.

import type { Socket } from 'node:net';

/** What libuv reads into (the size Node's own reads ask for). */
const READ_BYTES = 64 * 1024;

/** The Socket's own slots for Node's `onread` option (lib/net.js), found by their descriptions. */
interface ReadSlots {
  readonly buffer: symbol;
  readonly callback: symbol;
}

let shared: Buffer | null = null;
/** undefined: not looked for yet; null: this Node has no such slots (the stream is used). */
let slots: ReadSlots | null | undefined;

/** The handle method used (TCPWrap's; not part of Node's public API). */
interface UserBufferHandle {
  useUserBuffer?: (buf: Uint8Array) => void;
}

/** Stops and restarts a socket's reads as Readable's pause() and resume() do. */
export interface Reads {
  pause(): void;
  resume(): void;
}

function findSlots(socket: Socket): ReadSlots | null {
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer') buffer = s;
    else if (s.description === 'kBufferCb') callback = s;
  }
  return buffer !== undefined && callback !== undefined ? { buffer, callback } : null;
}

/**
 * Calls `onChunk` with each read of `socket`'s input, a Buffer of its own that the callee may
 * keep (as a 'data' chunk), then `onEnd` once the client ended its side (as 'end': after every
 * chunk). Pause and resume through the Reads returned, not the socket.
 *
 * For a plain TCP socket (not TLS) on a Node that has them, this uses the slots of net.Socket's
 * `onread` option, which a server's accepted sockets cannot be given otherwise: libuv reads into
 * one 64 KiB buffer for every socket of the process (reads run one at a time on the main thread,
 * and each is copied out in its callback before the next), and a read under 4 KiB is copied into
 * Node's Buffer pool. The stream's 'data' path instead allocates 64 KiB per read, shrinks it,
 * wraps it in an ArrayBuffer and a Buffer, and goes through the Readable's push, emit and a
 * nextTick per read: in a bare Node server answering GET at pipeline 1 it cost 1.25x the CPU
 * per GET (docs/performance-work.md, GET P1's slow requests). A Buffer kept by the callee (a
 * pipelined request's arguments) keeps its 8 KiB pool slab, which other reads share.
 *
 * Paused, the socket goes on reading into a queue until it holds the socket's
 * readableHighWaterMark, as the stream does: a reset or an end of input is still seen (and the
 * socket closed) while the node waits, e.g. with requests parked. resume() delivers the queue
 * in a later tick, as the stream does, never from inside the call. Otherwise (TLS, a Node
 * without the slots) the stream's 'data', 'end', pause() and resume().
 */
export function onReads(
  socket: Socket,
  onChunk: (chunk: Buffer) => void,
  onEnd: () => void,
): Reads {
  const handle = (socket as unknown as { _handle?: UserBufferHandle })._handle;
  if (slots === undefined) slots = findSlots(socket);
  if (
    slots === null ||
    (socket as { encrypted?: boolean }).encrypted === true ||
    typeof handle?.useUserBuffer !== 'function'
  ) {
    socket.on('data', onChunk);
    socket.on('end', onEnd);
    return { pause: () => socket.pause(), resume: () => socket.resume() };
  }
  shared ??= Buffer.allocUnsafeSlow(READ_BYTES);
  const reads = new QueuedReads(socket, onChunk, onEnd);
  const s = socket as unknown as Record<symbol, unknown>;
  s[slots.buffer] = shared;
  // Returns nothing: net.Socket stops reading only when the callback returns false.
  s[slots.callback] = (n: number, buf: Buffer) => {
    const chunk = Buffer.allocUnsafe(n);
    buf.copy(chunk, 0, 0, n);
    reads.read(chunk);
  };
  handle.useUserBuffer(shared);
  // A flowing stream, as with a 'data' listener, so that the end of the input emits 'end'; no
  // data comes this way.
  socket.on('data', () => {});
  socket.on('end', () => reads.end());
  return reads;
}

/** The reads of a socket in the shared buffer's mode: delivered, or queued while paused. */
class QueuedReads implements Reads {
  readonly #socket: Socket;
  readonly #onChunk: (chunk: Buffer) => void;
  readonly #onEnd: () => void;
  #paused = false;
  #queue: Buffer[] = [];
  #queued = 0;
  /** The input ended: onEnd is due once the queue is delivered (#endSent: it was called). */
  #ended = false;
  #endSent = false;
  #drainScheduled = false;

  constructor(socket: Socket, onChunk: (chunk: Buffer) => void, onEnd: () => void) {
    this.#socket = socket;
    this.#onChunk = onChunk;
    this.#onEnd = onEnd;
  }

  read(chunk: Buffer): void {
    if (!this.#paused && this.#queue.length === 0) {
      this.#onChunk(chunk);
      return;
    }
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    // Full: the socket stops reading (its reads restart on resume, once the queue is out).
    if (this.#queued >= this.#socket.readableHighWaterMark) this.#socket.pause();
  }

  end(): void {
    this.#ended = true;
    if (!this.#paused && this.#queue.length === 0) this.#sendEnd();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    if (this.#queue.length === 0) {
      this.#socket.resume();
      if (this.#ended) this.#sendEnd();
    } else if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      process.nextTick(this.#drain);
    }
  }

  readonly #drain = () => {
    this.#drainScheduled = false;
    // A closed socket's input is dropped, as the stream's is.
    if (this.#socket.destroyed) {
      this.#queue = [];
      this.#queued = 0;
      return;
    }
    while (!this.#paused && this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      this.#queued -= chunk.length;
      this.#onChunk(chunk);
    }
    if (this.#paused || this.#queue.length > 0) return;
    this.#socket.resume();
    if (this.#ended) this.#sendEnd();
  };

  #sendEnd(): void {
    if (this.#endSent) return;
    this.#endSent = true;
    this.#onEnd();
  }
}
