import { xxh64 as native } from '@node-rs/xxhash';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { xxh64 } from '../../src/ring/xxh64.ts';

// The ring's and the placement's ids are xxh64 values that nodes compare on the wire and keep in
// their state documents: the TypeScript version must give the binding's values exactly.
describe('xxh64', () => {
  it('matches the reference vectors', () => {
    expect(xxh64(Buffer.alloc(0))).toBe(0xef46db3751d8e999n);
    expect(xxh64('abc')).toBe(0x44bc2cf5ad770999n);
    expect(xxh64('Nobody inspects the spammish repetition')).toBe(0xfbcea83c8a378bf1n);
  });

  it('equals the native binding on arbitrary bytes, strings and seeds, every length up to 2 KiB', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (bytes, seed) => {
          expect(xxh64(bytes, seed)).toBe(native(bytes, seed));
          // A view into a larger buffer: only its own bytes count.
          const wider = Buffer.concat([Buffer.from([1, 2, 3]), bytes, Buffer.from([4])]);
          expect(xxh64(wider.subarray(3, 3 + bytes.length), seed)).toBe(native(bytes, seed));
        },
      ),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => {
        expect(xxh64(text)).toBe(native(text));
      }),
      { numRuns: 500 },
    );
    for (let len = 0; len <= 80; len++) {
      const b = Buffer.from(Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff));
      expect(xxh64(b)).toBe(native(b));
    }
  });
});
