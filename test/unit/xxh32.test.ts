import { xxh32 as native } from '@node-rs/xxhash';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { xxh32 } from '../../src/ring/xxh32.ts';

describe('xxh32', () => {
  it('matches the reference vectors', () => {
    expect(xxh32(Buffer.alloc(0))).toBe(0x02cc5d05);
    expect(xxh32(Buffer.from('abc'))).toBe(0x32d153ff);
    expect(xxh32(Buffer.from('Nobody inspects the spammish repetition'))).toBe(0xe2293b2f);
  });

  it('equals the native binding on arbitrary bytes and seeds, every length up to 2 KiB', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, seed) => {
          expect(xxh32(bytes, seed)).toBe(native(bytes, seed));
        },
      ),
      { numRuns: 2000 },
    );
    for (let len = 0; len <= 64; len++) {
      const b = Buffer.from(Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff));
      expect(xxh32(b, 0)).toBe(native(b, 0));
    }
  });
});
