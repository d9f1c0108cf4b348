// CRC-32 (zlib's) of a range of a buffer, without a view of it for the short ranges.

import { crc32 } from 'node:zlib';

/**
 * Ranges shorter than this are computed here (slice-by-8 tables); longer ones by zlib. A log
 * record of a small SET (~150 bytes) took ~240 ns with zlib (a subarray for it, ~100 bytes of
 * heap, and the call into C++) and ~110 ns here; at ~300 bytes the two are even.
 */
const SHORT = 256;

/** The eight 256-entry tables of slice-by-8 (reflected polynomial 0xedb88320), one after another. */
const T = makeTables();

function makeTables(): Int32Array {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
}

/** crc32(buf.subarray(from, to), seed) of node:zlib (`seed`: the CRC of what came before). */
export function crc32Range(buf: Uint8Array, from: number, to: number, seed: number): number {
  if (to - from >= SHORT) return crc32(buf.subarray(from, to), seed);
  let c = ~seed;
  let i = from;
  for (; i + 8 <= to; i += 8) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c =
      T[1792 + (c & 0xff)]! ^
      T[1536 + ((c >>> 8) & 0xff)]! ^
      T[1280 + ((c >>> 16) & 0xff)]! ^
      T[1024 + (c >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^
      T[512 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!;
  }
  for (; i < to; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
