// The bytes of one unfinished unit (a text line, a RESP bulk string) collected across socket
// reads, holding about what it counts whatever the size of the reads.

/** Pieces at least this long are kept as views of their read; shorter ones are copied. */
const VIEW_BYTES = 4096;
/** Smallest copy buffer. */
const TAIL_MIN = 256;
/** Largest copy buffer: a full one becomes a part and another is started. */
const TAIL_MAX = 64 * 1024;

/**
 * Collects pieces of reads. Before, an unfinished line kept a view of every read it spanned: a
 * client sending one byte per TCP segment made the node hold a read's Buffer, its memory and a
 * view (about 380 bytes measured, test/integration/trickle.test.ts) for each byte counted
 * against the request bounds. Here a piece shorter than 4 KiB is copied into a buffer that grows
 * by doubling up to 64 KiB, so what is held is at most twice the bytes (plus 256) and one object
 * per 4 KiB; a longer piece stays a view of its read, whose object is small against it.
 */
export class ByteParts {
  #parts: Buffer[] = [];
  #bytes = 0;
  #tail: Buffer | null = null;
  #used = 0;

  /** Bytes collected since the last take() or clear(). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Adds `chunk[from, to)`: a view when it is long, else a copy. */
  add(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.#bytes += n;
    if (n >= VIEW_BYTES) {
      this.#flushTail();
      this.#parts.push(chunk.subarray(from, to));
      return;
    }
    let tail = this.#room(n);
    const fits = Math.min(n, tail.length - this.#used);
    chunk.copy(tail, this.#used, from, from + fits);
    this.#used += fits;
    if (fits < n) {
      this.#flushTail();
      tail = this.#room(n - fits);
      chunk.copy(tail, 0, from + fits, to);
      this.#used = n - fits;
    }
  }

  /**
   * Everything collected followed by `last` (a view of the read that ends the unit), as one
   * Buffer, and forgets it. No copy when only `last`, or only one view and no `last`, is held.
   */
  take(last?: Buffer): Buffer {
    this.#flushTail();
    const parts = this.#parts;
    let bytes = this.#bytes;
    if (last !== undefined && last.length > 0) {
      parts.push(last);
      bytes += last.length;
    }
    this.clear();
    if (parts.length === 0) return Buffer.alloc(0);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
  }

  /** Forgets everything collected. */
  clear(): void {
    this.#parts = [];
    this.#bytes = 0;
    this.#tail = null;
    this.#used = 0;
  }

  /** The copy buffer, grown (by doubling, up to TAIL_MAX) to take `n` more bytes if it can. */
  #room(n: number): Buffer {
    const tail = this.#tail;
    const want = this.#used + n;
    if (tail !== null && (want <= tail.length || tail.length >= TAIL_MAX)) return tail;
    let size = tail === null ? TAIL_MIN : tail.length * 2;
    while (size < want && size < TAIL_MAX) size *= 2;
    const grown = Buffer.allocUnsafeSlow(Math.min(size, TAIL_MAX));
    if (tail !== null) tail.copy(grown, 0, 0, this.#used);
    this.#tail = grown;
    return grown;
  }

  /** Moves the copy buffer's bytes into the parts. */
  #flushTail(): void {
    if (this.#tail !== null && this.#used > 0) {
      this.#parts.push(this.#tail.subarray(0, this.#used));
    }
    this.#tail = null;
    this.#used = 0;
  }
}

/**
 * Copies of short pieces (a request's small arguments), packed into blocks that grow by
 * doubling from 256 bytes to 64 KiB: each copy is a view of its block, so a read is not kept
 * alive by the view of a few bytes of it. What is held is at most about twice the bytes copied.
 */
export class PieceCopies {
  #block: Buffer | null = null;
  #used = 0;

  /** `chunk[from, to)` as a view of a block of this object's, or of the chunk when long. */
  copy(chunk: Buffer, from: number, to: number): Buffer {
    const n = to - from;
    if (n >= VIEW_BYTES) return chunk.subarray(from, to);
    let block = this.#block;
    if (block === null || block.length - this.#used < n) {
      const size = block === null ? TAIL_MIN : Math.min(TAIL_MAX, block.length * 2);
      block = Buffer.allocUnsafeSlow(Math.max(size, n));
      this.#block = block;
      this.#used = 0;
    }
    chunk.copy(block, this.#used, from, to);
    const out = block.subarray(this.#used, this.#used + n);
    this.#used += n;
    return out;
  }

  /** Starts a new block at the next copy (the views made so far stay valid). */
  clear(): void {
    this.#block = null;
    this.#used = 0;
  }
}
