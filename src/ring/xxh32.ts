// xxHash32 (https://github.com/Cyan4973/xxHash, XXH32) in TypeScript.
//
// The ring hashes every key of every request. For keys of tens of bytes this is 3-5x faster than
// the native @node-rs/xxhash binding (26-39 ns vs 124-132 ns per 17-byte key on Node 24: the
// N-API call costs more than the hashing). The ring id is xxh64, in ./xxh64.ts.
// test/unit/xxh32.test.ts checks it against that binding on arbitrary inputs.

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

/** XXH32 of `data` with `seed`, as an unsigned 32-bit integer. */
export function xxh32(data: Uint8Array, seed = 0): number {
  // The rotations and 32-bit reads are written out, not small functions: a node hashes about
  // 10^4 times while it builds its ring at start (1024 vnodes a member), enough calls of such a
  // helper for V8 to optimize it with TurboFan when the machine is busy, which pages in 5 MiB of
  // the node binary that an idle node otherwise never runs (docs/memory.md).
  const len = data.length;
  let i = 0;
  let h: number;
  let x: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = len - 16;
    do {
      x = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
      x = (v1 + Math.imul(x, P2)) | 0;
      v1 = Math.imul((x << 13) | (x >>> 19), P1);
      x = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
      x = (v2 + Math.imul(x, P2)) | 0;
      v2 = Math.imul((x << 13) | (x >>> 19), P1);
      x = data[i + 8]! | (data[i + 9]! << 8) | (data[i + 10]! << 16) | (data[i + 11]! << 24);
      x = (v3 + Math.imul(x, P2)) | 0;
      v3 = Math.imul((x << 13) | (x >>> 19), P1);
      x = data[i + 12]! | (data[i + 13]! << 8) | (data[i + 14]! << 16) | (data[i + 15]! << 24);
      x = (v4 + Math.imul(x, P2)) | 0;
      v4 = Math.imul((x << 13) | (x >>> 19), P1);
      i += 16;
    } while (i <= limit);
    h =
      (((v1 << 1) | (v1 >>> 31)) +
        ((v2 << 7) | (v2 >>> 25)) +
        ((v3 << 12) | (v3 >>> 20)) +
        ((v4 << 18) | (v4 >>> 14))) |
      0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) {
    x = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    x = (h + Math.imul(x, P3)) | 0;
    h = Math.imul((x << 17) | (x >>> 15), P4);
  }
  for (; i < len; i++) {
    x = (h + Math.imul(data[i]!, P5)) | 0;
    h = Math.imul((x << 11) | (x >>> 21), P1);
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}
