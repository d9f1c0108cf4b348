// HalfSipHash (Aumasson and Bernstein's reference, 32-bit tag), a keyed hash for the store's
// in-memory indexes (kinds.ts hashOf): with a key a client cannot know, it cannot make keys that
// share a hash, which an unkeyed hash or one with a random start (FNV-1a's basis) lets it do.
// The Linux kernel's hsiphash is the same function, for the same use.

function rotl(x: number, b: number): number {
  return (x << b) | (x >>> (32 - b));
}

/**
 * HalfSipHash-c-d of `m` under the 64-bit key (k0, k1) (each a 32-bit word, the key's bytes read
 * little-endian), as a 32-bit integer (the reference's 4-byte tag read little-endian).
 */
export function halfSipHash(m: Uint8Array, k0: number, k1: number, c: number, d: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  const n = m.length;
  const end = n - (n & 3);
  let rounds = c;
  let w = 0;
  // Each whole 4-byte word, then the last one (the tail and the length's low byte), then the
  // finalization (w = 0 there: v3 and v0 are not changed).
  for (let i = 0, step = 0; step < 3; ) {
    if (step === 0 && i < end) {
      w = m[i]! | (m[i + 1]! << 8) | (m[i + 2]! << 16) | (m[i + 3]! << 24);
      i += 4;
    } else if (step === 0) {
      w = n << 24;
      const left = n & 3;
      if (left >= 3) w |= m[end + 2]! << 16;
      if (left >= 2) w |= m[end + 1]! << 8;
      if (left >= 1) w |= m[end]!;
      step = 1;
    } else {
      w = 0;
      v2 ^= 0xff;
      rounds = d;
      step = 2;
    }
    v3 ^= w;
    for (let r = 0; r < rounds; r++) {
      v0 = (v0 + v1) | 0;
      v1 = rotl(v1, 5) ^ v0;
      v0 = rotl(v0, 16);
      v2 = (v2 + v3) | 0;
      v3 = rotl(v3, 8) ^ v2;
      v0 = (v0 + v3) | 0;
      v3 = rotl(v3, 7) ^ v0;
      v2 = (v2 + v1) | 0;
      v1 = rotl(v1, 13) ^ v2;
      v2 = rotl(v2, 16);
    }
    v0 ^= w;
    if (step === 2) break;
  }
  return (v1 ^ v3) | 0;
}
