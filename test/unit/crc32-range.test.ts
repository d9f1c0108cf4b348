import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32Range } from '../../src/storage/crc32.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

describe('crc32Range', () => {
  it("is zlib's crc32 of the range, seeded, for short ranges (computed here) and long ones", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 700 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, a, b, seed) => {
          const buf = Buffer.from(bytes);
          const from = buf.length === 0 ? 0 : a % (buf.length + 1);
          const to = from + (b % (buf.length - from + 1));
          expect(crc32Range(buf, from, to, seed)).toBe(crc32(buf.subarray(from, to), seed));
        },
      ),
      { numRuns: fuzzRuns(500) },
    );
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(crc32Range(all, 0, 256, 0)).toBe(crc32(all));
    expect(crc32Range(all, 3, 200, 0x12345678)).toBe(crc32(all.subarray(3, 200), 0x12345678));
  });
});
