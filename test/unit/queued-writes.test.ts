import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashOf } from '../../src/storage/kinds.ts';
import { QueuedWrites } from '../../src/storage/queued-writes.ts';
import { type Queued, QueuedDelete } from '../../src/storage/scan.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

/** The table's writes as a Map by latin1 key, checked against what entries/keyAt/valueAt give. */
function contents(t: QueuedWrites): Map<string, Queued> {
  const out = new Map<string, Queued>();
  for (const [key, v] of t) out.set(key.toString('latin1'), v);
  const byIndex = new Map<string, Queued>();
  for (let i = 0; i < t.entries; i++) {
    const v = t.valueAt(i);
    if (v !== undefined) byIndex.set(t.keyAt(i).toString('latin1'), v);
  }
  expect(byIndex).toEqual(out);
  expect(out.size).toBe(t.size);
  return out;
}

// Keys from a small alphabet, 0 to 40 bytes: many share prefixes, lengths and hashes' low bits.
const keyArb = fc
  .uint8Array({ minLength: 0, maxLength: 40 })
  .map((a) => Buffer.from(a.map((b) => b % 3)));
const opArb = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keyArb, del: fc.boolean(), n: fc.nat(1000) }),
  fc.record({ op: fc.constant('delete' as const), key: keyArb }),
  fc.record({ op: fc.constant('get' as const), key: keyArb }),
);

describe('QueuedWrites', () => {
  it('answers as a Map by key bytes through any sets, deletes and gets (fuzzed)', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.array(opArb, { maxLength: 600 }), (expected, ops) => {
        const t = new QueuedWrites(expected);
        const model = new Map<string, Queued>();
        for (const o of ops) {
          const k = o.key.toString('latin1');
          if (o.op === 'set') {
            const v = o.del ? new QueuedDelete() : Buffer.from(`v${o.n}`);
            // The caller's key may change after the set (a socket buffer reused): copied.
            const key = Buffer.from(o.key);
            t.set(key, v);
            key.fill(7);
            model.set(k, v);
          } else if (o.op === 'delete') {
            t.delete(o.key);
            model.delete(k);
          } else {
            expect(t.get(o.key)).toBe(model.get(k));
          }
        }
        const got = contents(t);
        expect(got.size).toBe(model.size);
        for (const [k, v] of model) expect(got.get(k)).toBe(v);
      }),
      { numRuns: fuzzRuns(200) },
    );
  });

  it('keeps every key through growth, its views unchanged, in first-set order', () => {
    const t = new QueuedWrites();
    const views: Buffer[] = [];
    const keys: Buffer[] = [];
    for (let i = 0; i < 30_000; i++) {
      // Up to 1,903 bytes now and then (the arena grows past doubling), else 8 to 23 bytes.
      const len = i % 997 === 0 ? 4 + (i % 1900) : 8 + (i % 16);
      const key = Buffer.alloc(len, i % 251);
      key.writeUInt32BE(i, 0);
      keys.push(key);
      t.set(key, Buffer.from([i & 0xff]));
      if (i % 1000 === 0) views.push(t.keyAt(t.entries - 1));
    }
    for (let i = 0; i < keys.length; i += 7) t.set(keys[i]!, new QueuedDelete());
    expect(t.size).toBe(keys.length);
    expect(t.entries).toBe(keys.length);
    for (let i = 0; i < keys.length; i++) {
      expect(t.keyAt(i).equals(keys[i]!)).toBe(true);
      const v = t.get(keys[i]!);
      if (i % 7 === 0) expect(v).toBeInstanceOf(QueuedDelete);
      else expect(v).toEqual(Buffer.from([i & 0xff]));
    }
    for (const [j, view] of views.entries()) expect(view.equals(keys[j * 1000]!)).toBe(true);
    expect(t.get(Buffer.from('absent'))).toBeUndefined();
  });

  it("spreads keys made to share one FNV-1a state: a client cannot pile a batch's keys (nor the recent kinds') on one slot", () => {
    // 12-byte keys whose FNV-1a state (from the fixed offset basis) is that of 'aaaaaaaaaaaa':
    // 8 free bytes, then 4 found by meeting in the middle (2 bytes forward, 2 back). With that
    // basis every one had one hash: 8,000 of them took ~1 s of one table's inserts (16 ms apart).
    // With a random basis about a third of them still shared hashes (105 distinct of 300 in one
    // fresh-clone run); hashOf is a keyed hash now (HalfSipHash), and these spread like any keys.
    const P = 0x01000193;
    const PINV = 0x359c449b; // P * PINV = 1 (mod 2^32)
    expect(Math.imul(P, PINV)).toBe(1);
    const len = 12;
    const step = (h: number, b: number) => Math.imul(h ^ b, P);
    const back = (h: number, b: number) => (Math.imul(h, PINV) ^ b) | 0;
    const basis = (0x811c9dc5 ^ len) | 0;
    let target = basis;
    for (let i = 0; i < len; i++) target = step(target, 97);
    const ends = new Map<number, number>();
    for (let b3 = 0; b3 < 256; b3++)
      for (let b4 = 0; b4 < 256; b4++) ends.set(back(back(target, b4), b3), (b3 << 8) | b4);
    const keys: Buffer[] = [];
    for (let p = 0; keys.length < 300; p++) {
      const prefix = Buffer.alloc(8, 0x41);
      prefix.writeUInt32BE(p, 0);
      let h = basis;
      for (const x of prefix) h = step(h, x);
      search: for (let b1 = 0; b1 < 256; b1++) {
        for (let b2 = 0; b2 < 256; b2++) {
          const m = ends.get(step(step(h, b1), b2));
          if (m === undefined) continue;
          keys.push(Buffer.concat([prefix, Buffer.from([b1, b2, m >> 8, m & 0xff])]));
          break search;
        }
      }
    }
    // Each key reaches the target state from the fixed basis.
    for (const key of keys) {
      let h = basis;
      for (const x of key) h = step(h, x);
      expect(h).toBe(target);
    }
    expect(new Set(keys.map((k) => k.toString('latin1'))).size).toBe(keys.length);
    expect(new Set(keys.map(hashOf)).size).toBeGreaterThan(keys.length - 5);
  });
});
