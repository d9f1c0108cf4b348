// The bytes one connection writes in one socket write: replies encoded into one growable buffer
// that every connection of the process shares, instead of a Buffer per reply and a concat.

import type { Socket } from 'node:net';
import type { RangeSink } from '../protocol/index.ts';

const INITIAL_BYTES = 64 * 1024;
/** A buffer grown past this (one large reply) is not kept after its write. */
const KEEP_BYTES = 1024 * 1024;
/** Copies up to this many bytes go byte by byte: cheaper than a native call for a header. */
const SMALL_COPY = 16;

/**
 * Replies encoded since the last write. A connection encodes into it and writes it out within
 * one synchronous turn (a flush), so one buffer serves every connection; it is empty whenever
 * control goes back to the event loop. After a write the kernel did not take at once, the
 * socket still holds the written bytes, so the next replies go to a new buffer.
 */
export class Output implements RangeSink {
  #buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  #length = 0;

  /** Bytes encoded and not written yet. */
  get length(): number {
    return this.#length;
  }

  push(bytes: Buffer): void {
    this.pushRange(bytes, 0, bytes.length);
  }

  pushRange(bytes: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.#length + n > this.#buf.length) this.#grow(n);
    const buf = this.#buf;
    if (n <= SMALL_COPY) {
      let at = this.#length;
      for (let i = start; i < end; i++) buf[at++] = bytes[i]!;
    } else bytes.copy(buf, this.#length, start, end);
    this.#length += n;
  }

  /** Writes what was encoded to `socket` as one write (nothing when empty), and empties. */
  writeTo(socket: Socket): void {
    if (this.#length === 0) return;
    const bytes = this.#buf.subarray(0, this.#length);
    this.#length = 0;
    socket.write(bytes);
    // writableLength is 0 when the kernel took every byte during write(); otherwise the socket
    // keeps `bytes` (not a copy) until it is sent.
    if (socket.writableLength > 0 || this.#buf.length > KEEP_BYTES) {
      this.#buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
    }
  }

  /** Drops what was encoded (the socket closed). */
  clear(): void {
    this.#length = 0;
  }

  #grow(n: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(2 * this.#buf.length, this.#length + n));
    this.#buf.copy(next, 0, 0, this.#length);
    this.#buf = next;
  }
}

/** The process's one output buffer (see Output). */
export const output = new Output();
