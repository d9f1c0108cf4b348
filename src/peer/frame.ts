// Length-prefixed framing of the peer stream: a pure, incremental decoder and the frame header.

import { KvError } from '../errors/index.ts';

/** Bytes of the length prefix in front of every frame body. */
export const FRAME_HEADER_BYTES = 4;

/** Chunks shorter than this are copied into a buffer of the decoder's, not kept as they came. */
const COPY_BELOW = 4096;
/** Largest such buffer: a full one stays a part, and another is started. */
const TAIL_MAX = 64 * 1024;

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
  /** The buffer short chunks are copied into, and the part that is its filled start. */
  #tail: Buffer | null = null;
  #tailPart: Buffer | null = null;
  /** The last chunk pushed, when it is short and kept as it came (copied at the next push). */
  #raw: Buffer | null = null;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes pushed but not yet returned by `next()` (headers included). */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /**
   * Bytes of the frame being received (its header included) once its header is in and while its
   * body is not whole; 0 otherwise (nothing buffered, a header not whole, a whole frame waiting
   * for next(), or failed).
   */
  get partialFrameBytes(): number {
    if (this.#failure !== null || this.#bytes < FRAME_HEADER_BYTES) return 0;
    const total = FRAME_HEADER_BYTES + this.#peekLength();
    return total > this.#bytes ? total : 0;
  }

  /**
   * Appends a chunk of the stream. Keeps a reference to it (no copy) until consumed. What is left
   * of a chunk under 4 KiB when the next one arrives is copied then into a buffer that doubles up
   * to 64 KiB, so a peer sending a few bytes per TCP segment does not make the decoder keep a
   * read's objects (about 380 bytes) for each: it keeps the last read at most. A read whose
   * frames are taken before the next push (the common case: a reply in one segment) is never
   * copied, and its frames are views of it.
   */
  push(chunk: Buffer): void {
    if (chunk.length === 0 || this.#failure !== null) return;
    this.#settle();
    this.#bytes += chunk.length;
    this.#parts.push(chunk);
    if (chunk.length >= COPY_BELOW) this.#tail = null;
    else this.#raw = chunk;
  }

  /** The short chunk pushed last, when some of it is still held: its rest is copied (#append). */
  #settle(): void {
    const raw = this.#raw;
    if (raw === null) return;
    this.#raw = null;
    const last = this.#parts.length - 1;
    if (last < 0 || this.#parts[last] !== raw) return;
    this.#parts.pop();
    const rest = last === 0 ? raw.subarray(this.#offset) : raw;
    if (last === 0) this.#offset = 0;
    this.#append(rest);
  }

  /** Copies a short chunk after the bytes of the copy buffer, when it is still the last part. */
  #append(chunk: Buffer): void {
    const last = this.#parts.length - 1;
    const tail = this.#tail;
    const used = this.#tailPart?.length ?? 0;
    if (tail !== null && last >= 0 && this.#parts[last] === this.#tailPart) {
      if (used + chunk.length <= tail.length) {
        chunk.copy(tail, used);
        this.#tailPart = tail.subarray(0, used + chunk.length);
        this.#parts[last] = this.#tailPart;
        return;
      }
      if (tail.length < TAIL_MAX && (last > 0 || this.#offset === 0)) {
        // Grow: the part is replaced by a copy in a buffer twice as large (nothing of it taken).
        const grown = Buffer.allocUnsafeSlow(
          Math.min(TAIL_MAX, Math.max(2 * tail.length, used + chunk.length)),
        );
        if (used + chunk.length <= grown.length) {
          tail.copy(grown, 0, 0, used);
          chunk.copy(grown, used);
          this.#tail = grown;
          this.#tailPart = grown.subarray(0, used + chunk.length);
          this.#parts[last] = this.#tailPart;
          return;
        }
      }
    }
    const fresh = Buffer.allocUnsafeSlow(256 * Math.ceil(chunk.length / 256));
    chunk.copy(fresh, 0);
    this.#tail = fresh;
    this.#tailPart = fresh.subarray(0, chunk.length);
    this.#parts.push(this.#tailPart);
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
      this.#raw = null;
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
    this.#tail = null;
    this.#tailPart = null;
    this.#raw = null;
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
