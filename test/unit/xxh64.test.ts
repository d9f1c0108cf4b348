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
    // Every length to 100 (each tail: 8-, 4- and 1-byte steps, 32-byte stripes) at every
    // alignment in its buffer, with the seeds at the edges; strings with lone surrogates (the
    // binding and Buffer.from both take them as U+FFFD).
    const seeds = [0n, 1n, 2n ** 32n - 1n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n];
    const wide = Buffer.from(Array.from({ length: 112 }, (_, i) => (i * 131 + 7) & 0xff));
    for (const seed of seeds) {
      for (let len = 0; len <= 100; len++) {
        const want = native(Buffer.from(wide.subarray(0, len)), seed);
        for (let at = 0; at < 8; at++) {
          const bytes = Buffer.from(wide.subarray(0, len));
          const holder = new Uint8Array(len + at);
          holder.set(bytes, at);
          expect(xxh64(holder.subarray(at), seed)).toBe(want);
        }
      }
      for (const text of ['\ud800', 'a\udc00b', '\u0000', 'é', '😀'.repeat(30), '節点'])
        expect(xxh64(text, seed)).toBe(native(text, seed));
    }
    for (let len = 0; len <= 80; len++) {
      const b = Buffer.from(Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff));
      expect(xxh64(b)).toBe(native(b));
    }
  });
});
