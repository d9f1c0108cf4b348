// src/storage/halfsiphash.ts against the reference implementation's own test vectors
// (vectors_hsip32: HalfSipHash-2-4, 4-byte tag, key bytes 0..7, message bytes 0..i-1), and the
// rounds hashOf uses (1-3) against a different key and message changing the hash.

import { describe, expect, it } from 'vitest';
import { halfSipHash } from '../../src/storage/halfsiphash.ts';
import { hashOf } from '../../src/storage/kinds.ts';

// The first 17 of the reference's 64 vectors: every tail length (0-3) several times, over 4 words.
const VECTORS = [
  'a9359f5b',
  '27475ab8',
  'fa62a603',
  '8afee704',
  '2a6e4689',
  'c5fab669',
  '5863fc23',
  '8bcf63c5',
  'd0b8848f',
  'f806e779',
  '94b07934',
  '08083050',
  '57f0872f',
  '77e663ff',
  'd6fff87c',
  '74fe2b97',
  'd9b5ac84',
];
const K0 = 0x03020100;
const K1 = 0x07060504;

describe('halfSipHash', () => {
  it("gives the reference's HalfSipHash-2-4 tags for messages of 0 to 16 bytes", () => {
    const tags = VECTORS.map((_, i) => {
      const tag = Buffer.alloc(4);
      tag.writeUInt32LE(
        halfSipHash(
          Uint8Array.from({ length: i }, (_, j) => j),
          K0,
          K1,
          2,
          4,
        ) >>> 0,
      );
      return tag.toString('hex');
    });
    expect(tags).toEqual(VECTORS);
  });

  it('depends on the key: the same message under another key hashes apart', () => {
    const m = Buffer.from('user:1234');
    const a = halfSipHash(m, K0, K1, 1, 3);
    expect(halfSipHash(m, K0 ^ 1, K1, 1, 3)).not.toBe(a);
    expect(halfSipHash(m, K0, K1 ^ (1 << 31), 1, 3)).not.toBe(a);
    expect(halfSipHash(m, K0, K1, 1, 3)).toBe(a);
  });

  it("hashOf spreads 20,000 keys that differ in one byte over an index's low bits", () => {
    const slots = new Uint32Array(1 << 12);
    for (let i = 0; i < 20_000; i++) slots[hashOf(Buffer.from(`k:${i}`)) & 0xfff]!++;
    // About 4.9 a slot; a hash that kept the low bits of a counter would fill a few slots only.
    expect(Math.max(...slots)).toBeLessThan(25);
    expect(slots.filter((n) => n === 0).length).toBeLessThan(100);
  });
});
