// What a request held past its read costs: a copy of it that keeps no read chunk alive, and its size.

import { ARG_OVERHEAD } from '../protocol/index.ts';

/**
 * Bytes charged for each object, array, function and Buffer view a held value is made of, on
 * top of the bytes a Buffer or string holds. Measured on Node 24 (heap and ArrayBuffers after a
 * full GC, 200,000 items): a queued `SET k v` holds 320 bytes (counted 550), an ECHO answer of
 * 100 bytes 320 (470), an MSET of 10 pairs 3,000 (4,400); in a node, 4,000 queued `SET k v`
 * held 1.2 to 2.2 MB, counted 2.2 MB (test/integration/limits.test.ts). A Buffer view alone is
 * 114 bytes, counted as a request's argument is (ARG_OVERHEAD).
 */
const OBJECT_OVERHEAD = 64;
const BUFFER_OVERHEAD = ARG_OVERHEAD;
/** Per element of an array and per property of an object: its slot. */
const SLOT_BYTES = 8;
/** A string: its header, then 2 bytes a character at most (UTF-16). */
const STRING_OVERHEAD = 16;

/** The first slab; each next one is twice the last, up to SLAB_MAX_BYTES. */
const SLAB_MIN_BYTES = 256;
const SLAB_MAX_BYTES = 16 * 1024;

/**
 * Where detached Buffers are copied to: slabs filled in order, each twice the size of the one
 * before up to 16 KiB, so that a queue of one short command allocates 256 bytes and a long one
 * few allocations (a Buffer of more than a quarter of the largest slab gets an allocation of its
 * own). `allocated` counts every byte allocated, slack included, so what an arena holds is
 * counted whole. One per owner of the copies (a transaction): its slabs are freed with the last
 * copy that uses them.
 */
export class Arena {
  #slab: Buffer = Buffer.alloc(0);
  #offset = 0;
  /** Bytes of every allocation made, slabs' unused tails included. */
  allocated = 0;

  alloc(n: number): Buffer {
    if (n > SLAB_MAX_BYTES / 4) {
      this.allocated += n;
      return Buffer.allocUnsafeSlow(n);
    }
    if (this.#offset + n > this.#slab.length) {
      const size = Math.min(SLAB_MAX_BYTES, Math.max(SLAB_MIN_BYTES, 2 * this.#slab.length, n));
      this.#slab = Buffer.allocUnsafeSlow(size);
      this.#offset = 0;
      this.allocated += size;
    }
    const out = this.#slab.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }
}

/** A value held past its read: a copy that shares no memory with it, and what it costs. */
export interface Detached<T> {
  readonly value: T;
  /**
   * The bytes the copy holds: an estimate of its objects, and the bytes the arena allocated for
   * it (never less than its Buffers' bytes).
   */
  readonly bytes: number;
}

/**
 * A deep copy of `value` (plain objects, arrays, Buffers; strings, numbers, and anything else
 * kept by reference: functions, errors) in which every Buffer is copied into `arena`, so that
 * holding the copy keeps no read chunk alive. A Buffer the decoder cut from a read is a view of
 * that read: a command queued in MULTI held the whole read, however short its key and value (one
 * connection whose reads each carried one `SET k v` and 64 KiB of empty requests held 1 GiB for
 * 20,000 commands counted as 1.3 MB).
 */
export function detach<T>(value: T, arena: Arena): Detached<T> {
  const before = arena.allocated;
  const copied = copy(value, arena);
  return { value: copied.value as T, bytes: copied.bytes + arena.allocated - before };
}

/** The copy, and the bytes of its objects (its Buffers' bytes are the arena's). */
function copy(value: unknown, arena: Arena): { value: unknown; bytes: number } {
  if (Buffer.isBuffer(value)) {
    const out = arena.alloc(value.length);
    value.copy(out);
    return { value: out, bytes: BUFFER_OVERHEAD };
  }
  if (typeof value === 'string') return { value, bytes: STRING_OVERHEAD + 2 * value.length };
  if (Array.isArray(value)) {
    let bytes = OBJECT_OVERHEAD + SLOT_BYTES * value.length;
    const out = value.map((item) => {
      const c = copy(item, arena);
      bytes += c.bytes;
      return c.value;
    });
    return { value: out, bytes };
  }
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    let bytes = OBJECT_OVERHEAD;
    for (const [k, v] of Object.entries(value)) {
      const c = copy(v, arena);
      out[k] = c.value;
      bytes += SLOT_BYTES + c.bytes;
    }
    return { value: out, bytes };
  }
  // Kept by reference (a closure, an error): counted as one object.
  const shared = (typeof value === 'object' && value !== null) || typeof value === 'function';
  return { value, bytes: shared ? OBJECT_OVERHEAD : 0 };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
