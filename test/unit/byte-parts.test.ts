import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteParts, PieceCopies } from '../../src/protocol/index.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

describe('ByteParts', () => {
  it('takes back every piece added, in order, whatever their sizes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 9000 }), { maxLength: 40 }),
        fc.uint8Array({ maxLength: 300 }),
        (pieces, last) => {
          const parts = new ByteParts();
          let bytes = 0;
          for (const p of pieces) {
            // Each piece in the middle of a larger read, as a socket read holds it.
            const chunk = Buffer.concat([Buffer.from('xx'), p, Buffer.from('yy')]);
            parts.add(chunk, 2, 2 + p.length);
            chunk.fill(0x21); // the read is reused: a copy must not see it
            bytes += p.length;
            expect(parts.bytes).toBe(bytes);
          }
          const all = Buffer.concat([...pieces, last]);
          // Views of long pieces see the fill: compare only when none was long.
          const long = pieces.some((p) => p.length >= 4096);
          const out = parts.take(Buffer.from(last));
          expect(out.length).toBe(all.length);
          if (!long) expect(out.equals(all)).toBe(true);
          expect(parts.bytes).toBe(0);
        },
      ),
      { numRuns: fuzzRuns(200) },
    );
  });

  it('holds one copy buffer for many one-byte reads, at most twice their bytes', () => {
    const parts = new ByteParts();
    for (let i = 0; i < 3000; i++) parts.add(Buffer.from([0x61 + (i % 26)]), 0, 1);
    const out = parts.take();
    expect(out.length).toBe(3000);
    expect(out.buffer.byteLength).toBeLessThanOrEqual(2 * 3000);
    expect(out.toString('latin1', 0, 3)).toBe('abc');
  });
});

describe('PieceCopies', () => {
  it('copies short pieces out of their reads and keeps long ones as views', () => {
    const copies = new PieceCopies();
    const read = Buffer.from('..hello..');
    const short = copies.copy(read, 2, 7);
    read.fill(0x21);
    expect(short.toString()).toBe('hello');
    const big = Buffer.alloc(5000, 0x62);
    expect(copies.copy(big, 0, 5000).buffer).toBe(big.buffer);
    const many = Array.from({ length: 1000 }, (_, i) => copies.copy(Buffer.from([i % 256]), 0, 1));
    expect(many.every((b, i) => b[0] === i % 256)).toBe(true);
    expect(new Set(many.map((b) => b.buffer)).size).toBeLessThan(10);
  });
});
