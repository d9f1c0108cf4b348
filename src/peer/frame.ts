// Length-prefixed framing of the peer stream: a pure, incremental decoder and the frame header.

import { KvError } from '../errors/index.ts';

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_HEADER_BYTES = 4;

/** Default largest frame body accepted or sent: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** The 4-byte header for a body of `bodyBytes` bytes: unsigned 32-bit big-endian length. */
export function frameHeader(bodyBytes: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(bodyBytes, 0);
  return header;
}

/**
 * Splits a byte stream into frame bodies. A frame is a u32 big-endian body length followed by
 * that many body bytes; a length of 0 is a valid (empty) frame at this layer.
 *
 * Pure: no I/O, no timers. The caller `push`es chunks split anywhere and pulls bodies with
 * `next()`, so it decides how many frames to take (the server stops pulling while its in-flight
 * limit is reached). The result is the same whatever the split.
 *
 * A header announcing more than `maxFrameBytes` makes `next()` throw KvError KV_ERR_PEER_PROTOCOL
 * as soon as the header has arrived (the body is never buffered); the decoder then stays failed
 * and every later `next()` throws the same error: the caller must close the connection. The
 * limit may be changed between frames (`maxFrameBytes`): the peer server starts a connection
 * with a small one and raises it once the connection has authenticated.
 */
export class FrameDecoder {
  /** Largest frame body accepted; applies to every header read after it is set. */
  maxFrameBytes: number;
  #parts: Buffer[] = [];
  /** Bytes of `#parts[0]` already consumed. */
  #offset = 0;
  /** Unconsumed bytes across `#parts`. */
  #bytes = 0;
  #failure: KvError | null = null;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes pushed but not yet returned by `next()` (headers included). */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** Appends a chunk of the stream. Keeps a reference to it (no copy) until consumed. */
  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.#failure !== null) return;
    this.#parts.push(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * The next complete frame body, or null until more bytes arrive. The body is a view into a
   * pushed chunk when the frame lies within one chunk, else a fresh copy. Throws KvError
   * KV_ERR_PEER_PROTOCOL for an oversize frame (see the class comment).
   */
  next(): Buffer | null {
    if (this.#failure !== null) throw this.#failure;
    if (this.#bytes < FRAME_HEADER_BYTES) return null;
    const length = this.#peekLength();
    if (length > this.maxFrameBytes) {
      const msg = `peer: frame of ${length} bytes is over the limit of ${this.maxFrameBytes}`;
      this.#failure = new KvError('KV_ERR_PEER_PROTOCOL', msg);
      this.#parts = [];
      this.#offset = 0;
      this.#bytes = 0;
      throw this.#failure;
    }
    if (this.#bytes < FRAME_HEADER_BYTES + length) return null;
    return this.#take(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES);
  }

  /** Drops everything buffered and clears a failure (a new connection starts). */
  reset(): void {
    this.#parts = [];
    this.#offset = 0;
    this.#bytes = 0;
    this.#failure = null;
  }

  #peekLength(): number {
    const first = this.#parts[0]!;
    if (first.length - this.#offset >= FRAME_HEADER_BYTES) return first.readUInt32BE(this.#offset);
    return this.#copy(FRAME_HEADER_BYTES, false).readUInt32BE(0);
  }

  /** Consumes `n` bytes (n <= #bytes): a view when they lie in the first part, else a copy. */
  #take(n: number): Buffer {
    const first = this.#parts[0]!;
    if (first.length - this.#offset >= n) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      this.#bytes -= n;
      if (this.#offset === first.length) {
        this.#parts.shift();
        this.#offset = 0;
      }
      return out;
    }
    return this.#copy(n, true);
  }

  /** Copies the first `n` buffered bytes into a new buffer, consuming them when `consume`. */
  #copy(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let index = 0;
    let offset = this.#offset;
    while (written < n) {
      const part = this.#parts[index]!;
      const count = Math.min(part.length - offset, n - written);
      part.copy(out, written, offset, offset + count);
      written += count;
      offset += count;
      if (offset === part.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      this.#parts.splice(0, index);
      this.#offset = offset;
      this.#bytes -= n;
    }
    return out;
  }
}
