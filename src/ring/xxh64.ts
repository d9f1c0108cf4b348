// xxHash64 (https://github.com/Cyan4973/xxHash, XXH64) in TypeScript, on BigInts.
//
// The ring's id and the placement's id are the xxh64 of a few hundred bytes, computed when a ring
// is built (at start and on a membership change), never per request. They were the native
// @node-rs/xxhash binding's last use in the node; loading that binding reserved a 32 MiB
// allocator region and kept 2 MiB of it and 0.5 MiB of its library resident in every node, an
// empty one included (docs/memory.md). The ids are on the wire and in the state documents, so
// the value must not change: test/unit/xxh64.test.ts checks it against that binding (a
// devDependency) on arbitrary inputs.

const M = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & M;
}

function round(acc: bigint, input: bigint): bigint {
  return (rotl((acc + input * P2) & M, 31n) * P1) & M;
}

function merge(acc: bigint, v: bigint): bigint {
  return ((acc ^ round(0n, v)) * P1 + P4) & M;
}

/** XXH64 of `data` (a string: its UTF-8 bytes) with `seed`, as an unsigned 64-bit BigInt. */
export function xxh64(data: Uint8Array | string, seed = 0n): bigint {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  const s = seed & M;
  let i = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (s + P1 + P2) & M;
    let v2 = (s + P2) & M;
    let v3 = s;
    let v4 = (s - P1) & M;
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, view.getBigUint64(i, true));
      v2 = round(v2, view.getBigUint64(i + 8, true));
      v3 = round(v3, view.getBigUint64(i + 16, true));
      v4 = round(v4, view.getBigUint64(i + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = (s + P5) & M;
  }
  h = (h + BigInt(len)) & M;
  for (; i + 8 <= len; i += 8) {
    h ^= round(0n, view.getBigUint64(i, true));
    h = (rotl(h, 27n) * P1 + P4) & M;
  }
  if (i + 4 <= len) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & M;
    h = (rotl(h, 23n) * P2 + P3) & M;
    i += 4;
  }
  for (; i < len; i++) {
    h ^= (BigInt(bytes[i]!) * P5) & M;
    h = (rotl(h, 11n) * P1) & M;
  }
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  h ^= h >> 32n;
  return h;
}
