// xxHash32 (https://github.com/Cyan4973/xxHash, XXH32) in TypeScript.
//
// The ring hashes every key of every request. For keys of tens of bytes this is 3-5x faster than
// the native @node-rs/xxhash binding (26-39 ns vs 124-132 ns per 17-byte key on Node 24: the
// N-API call costs more than the hashing). The binding stays for the ring id (xxh64, ring.ts).
// test/unit/xxh32.test.ts checks it against that binding on arbitrary inputs.

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));

/** XXH32 of `data` with `seed`, as an unsigned 32-bit integer. */
export function xxh32(data: Uint8Array, seed = 0): number {
  const len = data.length;
  const r32 = (p: number) =>
    data[p]! | (data[p + 1]! << 8) | (data[p + 2]! << 16) | (data[p + 3]! << 24);
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = len - 16;
    do {
      v1 = Math.imul(rotl((v1 + Math.imul(r32(i), P2)) | 0, 13), P1);
      v2 = Math.imul(rotl((v2 + Math.imul(r32(i + 4), P2)) | 0, 13), P1);
      v3 = Math.imul(rotl((v3 + Math.imul(r32(i + 8), P2)) | 0, 13), P1);
      v4 = Math.imul(rotl((v4 + Math.imul(r32(i + 12), P2)) | 0, 13), P1);
      i += 16;
    } while (i <= limit);
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) h = Math.imul(rotl((h + Math.imul(r32(i), P3)) | 0, 17), P4);
  for (; i < len; i++) h = Math.imul(rotl((h + Math.imul(data[i]!, P5)) | 0, 11), P1);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}
