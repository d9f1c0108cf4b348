// The bytes the client connections write: replies encoded into one growable buffer that every
// connection of the process shares, and written once per event-loop turn, every connection's at
// the same point (as Redis writes its replies before it sleeps), instead of each as it is made.

import type { Socket } from 'node:net';
import { atTurnEnd, writeDirect } from '../net/index.ts';
import type { RangeSink } from '../protocol/index.ts';

const INITIAL_BYTES = 64 * 1024;
/** A buffer grown past this (one large reply) is not kept after its write. */
const KEEP_BYTES = 1024 * 1024;
/** Copies up to this many bytes go byte by byte: cheaper than a native call for a header. */
const SMALL_COPY = 16;
/** Once the output holds this much, everything sent so far is written at once. */
export const WRITE_NOW_BYTES = 64 * 1024;

/**
 * Replies encoded and not written yet. A connection encodes its replies into it and then calls
 * send() within one synchronous run, so the bytes since the last send are that connection's.
 * send() does not write: the sockets are written at the end of the event loop's turn, after its
 * I/O callbacks (atTurnEnd, net/turn.ts), each socket once with all its bytes, in the order they
 * were sent; a connection that finishes replies asynchronously flushes them with atTurnEnd too,
 * so they join the same pass. Written at once instead: everything, as soon as WRITE_NOW_BYTES
 * are waiting (a large reply, so that the socket's own buffer and its `writableLength` hold it),
 * and on writeAll() (a connection about to end its socket).
 *
 * Why: at pipeline 1 a socket `write` wakes the client's process, and when the writes of a turn
 * are spread between the reads, a client that answers quickly is asleep again at every write.
 * Writing all of a turn's replies together wakes it once (bench/results/2026-12-04-write-batch.md).
 * A turn that follows one with at most one socket writes its first socket at once (send).
 *
 * After a write the kernel did not take at once, the socket keeps a view of the buffer until it
 * is sent, so the next replies go to a new buffer.
 */
export class Output implements RangeSink {
  #buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  #length = 0;
  /** Bytes before this were sent (belong to a socket); after it, encoded since the last send. */
  #mark = 0;
  // The sends since the last writeAll: the first #count entries of these (kept between turns and
  // reused, not emptied: emptied, a JS array gives up its backing store and grows it again, a few
  // allocations every turn).
  readonly #sockets: (Socket | null)[] = [];
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];
  #count = 0;
  #scheduled = false;
  /** Bytes handed to sockets since the process started (written). */
  #written = 0;
  /**
   * Sockets sent to since the last end-of-turn pass (one socket sending again is counted once),
   * and in the turn of that pass (see send).
   */
  #turnSockets = 0;
  #lastTurnSockets = 0;
  #lastSocket: Socket | null = null;
  readonly #run = () => {
    this.#scheduled = false;
    this.writeAll();
    this.#lastTurnSockets = this.#turnSockets;
    this.#turnSockets = 0;
    this.#lastSocket = null;
  };

  /**
   * Bytes of replies handed to client sockets since the process started (INFO's
   * total_net_output_bytes): counted as each socket write is made, every connection's together.
   */
  get written(): number {
    return this.#written;
  }

  /** Bytes encoded and not written yet (sent or not). */
  get length(): number {
    return this.#length;
  }

  /** Bytes encoded since the last send() or discard(). */
  get unsent(): number {
    return this.#length - this.#mark;
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

  /**
   * The bytes encoded since the last send() are `socket`'s: written with the turn's other
   * writes, or at once when WRITE_NOW_BYTES are waiting, or at once when they are the turn's
   * first and the turn before wrote to at most one socket: a lone client (one connection, or
   * clients slower than the node) waits for nothing else, and on this machine a reply moved
   * to the end of such a turn cost a lone client 0.70x of its GETs per second.
   */
  send(socket: Socket): void {
    const end = this.#length;
    if (end === this.#mark) return;
    if (socket !== this.#lastSocket) {
      this.#lastSocket = socket;
      this.#turnSockets++;
    }
    const last = this.#count - 1;
    if (last >= 0 && this.#sockets[last] === socket && this.#ends[last] === this.#mark) {
      this.#ends[last] = end;
    } else {
      this.#sockets[this.#count] = socket;
      this.#starts[this.#count] = this.#mark;
      this.#ends[this.#count++] = end;
    }
    this.#mark = end;
    const alone = this.#turnSockets === 1 && this.#lastTurnSockets <= 1;
    if (end >= WRITE_NOW_BYTES || alone) this.writeAll();
    // The pass at the turn's end writes what waits and counts the turn's sockets for the next.
    // A lone socket needs none: the count stays at one until another socket sends.
    if (!alone) this.#schedule();
  }

  /** Drops the bytes encoded since the last send() (their socket closed). */
  discard(): void {
    this.#length = this.#mark;
  }

  /**
   * Writes everything sent so far, now, each socket's bytes in the order sent. A socket already
   * destroyed or ended is skipped (its replies are dropped, as they would be in its own buffer).
   */
  writeAll(): void {
    const n = this.#count;
    if (n === 0) return;
    const buf = this.#buf;
    let kept = false;
    let i = 0;
    try {
      for (; i < n; i++) {
        const socket = this.#sockets[i]!;
        if (socket.destroyed || socket.writableEnded) continue;
        // The socket keeps a view (not a copy) of what the kernel did not take until it is sent.
        if (writeDirect(socket, buf, this.#starts[i]!, this.#ends[i]!)) kept = true;
        this.#written += this.#ends[i]! - this.#starts[i]!;
      }
    } finally {
      // A write that threw may have kept its view too; the sockets after it lose their bytes.
      if (i < n) kept = true;
      this.#sockets.fill(null, 0, n); // no socket kept alive by this list
      this.#count = 0;
      // Bytes encoded but not sent yet (none when a send or a connection's close calls this)
      // move to the front of the buffer the next replies go to.
      const unsent = this.#length - this.#mark;
      if (kept || buf.length > KEEP_BYTES) {
        this.#buf = Buffer.allocUnsafeSlow(Math.max(INITIAL_BYTES, unsent));
        buf.copy(this.#buf, 0, this.#mark, this.#length);
      } else if (unsent > 0) buf.copyWithin(0, this.#mark, this.#length);
      this.#length = unsent;
      this.#mark = 0;
    }
  }

  /**
   * Makes room for `n` more bytes at once, in a buffer of just that size when it must grow: a
   * large reply encoded piece by piece would otherwise double the buffer up to twice its size,
   * and a socket that keeps its view (a client that does not read) keeps all of it.
   */
  reserve(n: number): void {
    if (this.#length + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafeSlow(this.#length + n);
    this.#buf.copy(next, 0, 0, this.#length);
    this.#buf = next;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    atTurnEnd(this.#run);
  }

  #grow(n: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(2 * this.#buf.length, this.#length + n));
    this.#buf.copy(next, 0, 0, this.#length);
    this.#buf = next;
  }
}

/** The process's one output buffer (see Output). */
export const output = new Output();
