// A MessagePack writer and reader for the plain values peer messages are made of, faster than a
// general codec on the request path; anything else is left to msgpackr (codec.ts).

/**
 * Returned by `readPlain` for input it does not take on itself (see there): the caller decodes
 * the frame with the general codec, which gives the value or the error it gives today.
 */
export const NOT_PLAIN: unique symbol = Symbol('not plain msgpack');

/** Thrown inside `writePlain` for a value it does not encode; caught by the caller. */
class NotPlain extends Error {}
const NOT_PLAIN_ERROR = new NotPlain('not a plain value');

/** Nesting deeper than this is left to the general codec (no deep recursion here). */
const MAX_DEPTH = 64;

/** Bytes of a fresh slab: frames are cut from it until it is full (as msgpackr's are). */
const SLAB_BYTES = 64 * 1024;

let slab = Buffer.allocUnsafe(SLAB_BYTES);
/** Where the next frame starts in `slab`. */
let slabStart = 0;
/** Write position while a frame is written. */
let pos = 0;

/** Thrown by ensure() when a frame outgrows a slab: writePlain sizes it and writes it again. */
const OUTGROWN = new NotPlain('larger than a slab');

/** Set while a frame larger than a slab is written into a buffer of the size it measured. */
let sized = false;

/**
 * Makes room for `n` more bytes of the frame being written: moves it to a new slab, or, when it
 * would not fit in one, throws OUTGROWN (while `sized`, grows instead: a safety net, sizeOf and
 * the writer agree).
 */
function ensure(n: number): void {
  if (pos + n <= slab.length) return;
  const used = pos - slabStart;
  if (used + n > SLAB_BYTES && !sized) throw OUTGROWN;
  const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, used + n, Math.floor(used * 1.5)));
  slab.copy(next, 0, slabStart, pos);
  slab = next;
  slabStart = 0;
  pos = used;
}

/** Bytes of a `str`/`bin`/array/map header for `n` (fixLimit 0: no fix form; has8: an 8-bit one). */
function headSize(n: number, fixLimit: number, has8: boolean): number {
  if (n < fixLimit) return 1;
  if (has8 && n < 0x100) return 2;
  return n < 0x10000 ? 3 : 5;
}

/** Bytes writeString writes for `s`. */
function stringSize(s: string): number {
  if (s.length < 32) {
    let ascii = true;
    for (let c = 0; c < s.length && ascii; c++) ascii = s.charCodeAt(c) < 0x80;
    if (ascii) return 1 + s.length;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  return headSize(bytes, 32, true) + bytes;
}

/** Bytes write() writes for `v` (what it refuses counts 0: the write throws NOT_PLAIN). */
function sizeOf(v: unknown, depth: number): number {
  switch (typeof v) {
    case 'string':
      return stringSize(v);
    case 'number':
      if (Number.isInteger(v) && v >= -0x8000_0000 && v <= 0xffff_ffff) {
        if (v >= 0) return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
        return v >= -32 ? 1 : 5;
      }
      return 9;
    case 'boolean':
      return 1;
    case 'undefined':
      return 3;
    case 'object': {
      if (v === null) return 1;
      if (depth >= MAX_DEPTH) return 0;
      if (v instanceof Uint8Array) return headSize(v.length, 0, true) + v.length;
      let size = 0;
      if (Array.isArray(v)) {
        for (let n = 0; n < v.length; n++) size += sizeOf(v[n], depth + 1);
        return headSize(v.length, 16, false) + size;
      }
      const o = v as Record<string, unknown>;
      for (const k in o) size += stringSize(k) + sizeOf(o[k], depth + 1);
      return 3 + size;
    }
    default:
      return 0;
  }
}

/**
 * The frame `prefix` bytes of header room (zeroed, for the caller to fill) followed by the
 * MessagePack of `value`, in a slice of a shared slab (no copy), or null when `value` holds
 * something this writer leaves to the general codec: anything but null, undefined (msgpackr's
 * `d4 00 00`), booleans, numbers, strings, Buffer/Uint8Array (as `bin`), arrays and plain objects
 * (prototype Object.prototype or null, string keys, no `__proto__` key) of those, nested at most
 * MAX_DEPTH deep. What it writes decodes to the same value as msgpackr's encoding of it: integers
 * within 32 bits as ints, other numbers as float64 (-0 as 0, as msgpackr does); maps and arrays
 * in their shortest form but maps, map16 as msgpackr writes them (one of over 65535 keys is left
 * to msgpackr).
 */
export function writePlain(prefix: number, value: unknown): Buffer | null {
  if (slab.length - slabStart < 256) {
    slab = Buffer.allocUnsafe(SLAB_BYTES);
    slabStart = 0;
  }
  pos = slabStart;
  ensure(prefix);
  for (let n = 0; n < prefix; n++) slab[pos++] = 0;
  try {
    write(value, 0);
  } catch (err) {
    pos = slabStart;
    if (err === OUTGROWN) return writeSized(prefix, value);
    if (err !== NOT_PLAIN_ERROR) throw err;
    return null;
  }
  const out = slab.subarray(slabStart, pos);
  // The next frame starts 8-aligned.
  slabStart = (pos + 7) & ~7;
  return out;
}

/**
 * writePlain of a frame larger than a slab: measured first, then written into memory of exactly
 * its size (no growing copies, and a frame waiting in a peer client's queue holds no more than
 * the bytes it counts as). The slab is left as it was for the next frame.
 */
function writeSized(prefix: number, value: unknown): Buffer | null {
  const keep = slab;
  const keepStart = slabStart;
  slab = Buffer.allocUnsafeSlow(prefix + sizeOf(value, 0));
  slabStart = 0;
  pos = 0;
  sized = true;
  try {
    for (let n = 0; n < prefix; n++) slab[pos++] = 0;
    write(value, 0);
    return slab.subarray(0, pos);
  } catch (err) {
    if (err !== NOT_PLAIN_ERROR) throw err;
    return null;
  } finally {
    sized = false;
    slab = keep;
    slabStart = keepStart;
  }
}

function write(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'string':
      writeString(v);
      return;
    case 'number':
      writeNumber(v);
      return;
    case 'boolean':
      ensure(1);
      slab[pos++] = v ? 0xc3 : 0xc2;
      return;
    case 'undefined':
      ensure(3);
      slab[pos++] = 0xd4;
      slab[pos++] = 0;
      slab[pos++] = 0;
      return;
    case 'object':
      if (v === null) {
        ensure(1);
        slab[pos++] = 0xc0;
        return;
      }
      if (depth >= MAX_DEPTH) throw NOT_PLAIN_ERROR;
      if (v instanceof Uint8Array) {
        if (v.constructor !== Buffer && v.constructor !== Uint8Array) throw NOT_PLAIN_ERROR;
        writeBin(v);
        return;
      }
      if (Array.isArray(v)) {
        writeLength(v.length, 0x90, 16, 0, 0xdc);
        for (let n = 0; n < v.length; n++) write(v[n], depth + 1);
        return;
      }
      writeMap(v, depth);
      return;
    default:
      throw NOT_PLAIN_ERROR;
  }
}

/**
 * A type and length header: `fix | n` when `n < fixLimit`, else `code8` and a byte (when the type
 * has that form: non-zero), else `code16` and two bytes, else `code16 + 1` and four.
 */
function writeLength(n: number, fix: number, fixLimit: number, code8: number, code16: number) {
  ensure(5);
  if (n < fixLimit) slab[pos++] = fix | n;
  else if (code8 !== 0 && n < 0x100) {
    slab[pos++] = code8;
    slab[pos++] = n;
  } else if (n < 0x10000) {
    slab[pos++] = code16;
    slab.writeUInt16BE(n, pos);
    pos += 2;
  } else {
    slab[pos++] = code16 + 1;
    slab.writeUInt32BE(n, pos);
    pos += 4;
  }
}

function writeMap(v: object, depth: number): void {
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN_ERROR;
  // map16 (as msgpackr writes), its count filled in after the keys: no array of them.
  ensure(3);
  const head = pos - slabStart;
  slab[pos] = 0xde;
  pos += 3;
  let count = 0;
  const o = v as Record<string, unknown>;
  for (const k in o) {
    if (k === '__proto__' || ++count > 0xffff) throw NOT_PLAIN_ERROR;
    writeString(k);
    write(o[k], depth + 1);
  }
  // `head` is relative to the frame's start: ensure() may have moved the frame to a new slab.
  slab.writeUInt16BE(count, slabStart + head + 1);
}

function writeNumber(v: number): void {
  ensure(9);
  if (Number.isInteger(v) && v >= -0x8000_0000 && v <= 0xffff_ffff) {
    // Non-negative: fixint, uint 8/16/32; negative: fixint, else int32 (rare in peer messages).
    if (v >= 0) writeLength(v, 0, 0x80, 0xcc, 0xcd);
    else if (v >= -32) slab[pos++] = 0xe0 | (v + 32);
    else {
      slab[pos++] = 0xd2;
      slab.writeInt32BE(v, pos);
      pos += 4;
    }
    return;
  }
  slab[pos++] = 0xcb;
  slab.writeDoubleBE(v, pos);
  pos += 8;
}

function writeString(s: string): void {
  const n = s.length;
  // ASCII of up to 31 characters (keys, method names): byte by byte, no encoder call.
  if (n < 32) {
    ensure(1 + n);
    const start = pos;
    slab[pos++] = 0xa0 | n;
    let ascii = true;
    for (let c = 0; c < n; c++) {
      const code = s.charCodeAt(c);
      if (code >= 0x80) {
        ascii = false;
        break;
      }
      slab[pos++] = code;
    }
    if (ascii) return;
    pos = start;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  writeLength(bytes, 0xa0, 32, 0xd9, 0xda);
  ensure(bytes);
  pos += slab.write(s, pos, bytes, 'utf8');
}

function writeBin(b: Uint8Array): void {
  const n = b.length;
  writeLength(n, 0, 0, 0xc4, 0xc5);
  ensure(n);
  slab.set(b, pos);
  pos += n;
}

// ---- reader ----

let src: Buffer = Buffer.alloc(0);
let at = 0;
let end = 0;

/** Thrown inside the reader for input it leaves to the general codec. */
const LEAVE = new NotPlain('left to the general codec');

/**
 * The value MessagePack `buf` holds, or NOT_PLAIN when it holds anything but what writePlain
 * writes (in any of MessagePack's forms of those: every int width up to 32 bits, str8/16/32,
 * bin8/16/32, fix/16/32 arrays and maps), is truncated, malformed, nested deeper than MAX_DEPTH,
 * has a map key that is not a string or is `__proto__`, or has bytes after the value. `bin`s
 * come back as views into `buf`. Never throws: NOT_PLAIN sends the caller to the general codec,
 * which decodes or refuses the input as it always did.
 */
export function readPlain(buf: Buffer): unknown {
  src = buf;
  at = 0;
  end = buf.length;
  try {
    const v = read(0);
    return at === end ? v : NOT_PLAIN;
  } catch (err) {
    if (err === LEAVE || err instanceof RangeError) return NOT_PLAIN;
    throw err;
  } finally {
    src = EMPTY;
  }
}

const EMPTY = Buffer.alloc(0);

function need(n: number): void {
  if (at + n > end) throw LEAVE;
}

function read(depth: number): unknown {
  need(1);
  const b = src[at++]!;
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b < 0xc0) return readString(b & 0x1f);
  if (b >= 0x90 && b < 0xa0) return readArray(b & 0x0f, depth);
  if (b < 0x90) return readMap(b & 0x0f, depth);
  // bin 8/16/32, uint 8/16/32, str 8/16/32, array 16/32, map 16/32: a 1, 2 or 4-byte length.
  if (b >= 0xc4 && b <= 0xc6) return readBin(uint(b - 0xc4));
  if (b >= 0xcc && b <= 0xce) return uint(b - 0xcc);
  if (b >= 0xd9 && b <= 0xdb) return readString(uint(b - 0xd9));
  if (b >= 0xdc && b <= 0xdd) return readArray(uint(b - 0xdb), depth);
  if (b >= 0xde && b <= 0xdf) return readMap(uint(b - 0xdd), depth);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcb:
      need(8);
      at += 8;
      return src.readDoubleBE(at - 8);
    case 0xd0:
      return (uint(0) << 24) >> 24;
    case 0xd1:
      return (uint(1) << 16) >> 16;
    case 0xd2:
      return uint(2) | 0;
    case 0xd4:
      // fixext1 type 0, data 0: msgpackr's undefined; any other fixext1 is an extension.
      if (uint(1) !== 0) throw LEAVE;
      return undefined;
    default:
      // float32, 64-bit ints (bigints), extensions, 0xc1: the general codec's.
      throw LEAVE;
  }
}

/** An unsigned big-endian int of 1 (`width` 0), 2 (1) or 4 (2) bytes. */
function uint(width: number): number {
  const n = 1 << width;
  need(n);
  at += n;
  if (n === 1) return src[at - 1]!;
  return n === 2 ? src.readUInt16BE(at - 2) : src.readUInt32BE(at - 4);
}

function readBin(n: number): Buffer {
  need(n);
  at += n;
  return src.subarray(at - n, at);
}

/** Strings of up to 3 ASCII bytes (map keys: `i`, `m`, `b`, `ks`, ...) by their bytes. */
const shortStrings = new Map<number, string>();

function readString(n: number): string {
  need(n);
  if (n <= 3) {
    let code = n;
    let high = 0;
    for (let c = at; c < at + n; c++) {
      code = code * 256 + src[c]!;
      high |= src[c]!;
    }
    let s = shortStrings.get(code);
    if (s === undefined) {
      s = src.toString('utf8', at, at + n);
      // Only ASCII is cached (its bytes always decode the same), and a bounded number of them.
      if (high < 0x80 && shortStrings.size < 4096) shortStrings.set(code, s);
    }
    at += n;
    return s;
  }
  at += n;
  return src.toString('utf8', at - n, at);
}

function readArray(n: number, depth: number): unknown[] {
  if (depth >= MAX_DEPTH) throw LEAVE;
  // Every element takes at least one byte: a count beyond the bytes left is malformed.
  need(n);
  const out = new Array<unknown>(n);
  for (let k = 0; k < n; k++) out[k] = read(depth + 1);
  return out;
}

function readMap(n: number, depth: number): Record<string, unknown> {
  if (depth >= MAX_DEPTH) throw LEAVE;
  need(2 * n);
  const out: Record<string, unknown> = {};
  for (let k = 0; k < n; k++) {
    // Keys are short strings: a fixstr is read here, any other form through read().
    need(1);
    const b = src[at]!;
    let key: unknown;
    if (b >= 0xa0 && b < 0xc0) {
      at++;
      key = readString(b & 0x1f);
    } else {
      key = read(depth + 1);
    }
    if (typeof key !== 'string' || key === '__proto__') throw LEAVE;
    out[key] = read(depth + 1);
  }
  return out;
}
