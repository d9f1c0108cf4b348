import { describe, expect, it } from 'vitest';
import { LIVE, RecentKinds } from '../../src/storage/kinds.ts';

// The bound of the recent kinds follows what they are worth (src/storage/kinds.ts): it halves
// while the writes go to many more keys than it holds, grows back when they come back to fewer,
// and an idle process lets a map full of keys that did not come back go. Counts, no timings.

/** Keys of 8 characters: 96 bytes each as the map counts them, so 1,000 keys fill ROOM. */
const ROOM = 96_000;
const key = (i: number) => Buffer.from(`k${String(i).padStart(7, '0')}`);

/** A write as Storage makes it of the map: ask for the key's kind, then set it when it changed. */
function write(kinds: RecentKinds, i: number): void {
  const k = key(i);
  if (kinds.get(k) !== LIVE) kinds.set(k, LIVE);
}

/** A deterministic sequence of numbers in [0, 1) (mulberry32: 32-bit arithmetic, full period). */
function random(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x6d2b79f5) >>> 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('RecentKinds: the bound', () => {
  it('halves to a sixteenth while every key is new (a bulk load), and grows back when writes return', () => {
    const kinds = new RecentKinds(ROOM);
    for (let i = 0; i < 1000; i++) write(kinds, i);
    expect([kinds.bound, kinds.size]).toEqual([ROOM, 1000]); // full, nothing dropped yet
    for (let i = 1000; i < 10_000; i++) write(kinds, i);
    expect(kinds.bound).toBe(ROOM / 16);
    expect(kinds.size).toBeLessThanOrEqual(63);
    // Writes over 800 keys: a few answered at the small bound, all of them at the whole bound.
    const next = random(5);
    for (let n = 0; n < 20_000; n++) write(kinds, 50_000 + Math.floor(next() * 800));
    expect([kinds.bound, kinds.size]).toEqual([ROOM, 800]);
  });

  it('halves to a sixteenth with random writes over 100 times the keys it holds, stays whole over 1.5 times', () => {
    const wide = new RecentKinds(ROOM);
    const narrow = new RecentKinds(ROOM);
    const next = random(9);
    for (let n = 0; n < 200_000; n++) {
      write(wide, Math.floor(next() * 100_000));
      write(narrow, Math.floor(next() * 1500));
    }
    expect(wide.bound).toBe(ROOM / 16);
    // 1,500 keys for room for 1,000: full, most writes answered; it pays at its whole bound.
    expect(narrow.bound).toBe(ROOM);
    expect(narrow.size).toBeGreaterThan(800);
  });

  it('after a bulk load halved it, grows back under writes its whole size would answer a third of', () => {
    const kinds = new RecentKinds(ROOM);
    for (let i = 0; i < 10_000; i++) write(kinds, i);
    expect(kinds.bound).toBe(ROOM / 16);
    // Random writes over 3,000 keys: a sixteenth of the map answers ~2% of them, the whole map
    // a third (a quarter or more: worth its size).
    const next = random(11);
    for (let n = 0; n < 200_000; n++) write(kinds, 20_000 + Math.floor(next() * 3000));
    expect(kinds.bound).toBe(ROOM);
  });

  it('when idle, lets a map full of keys that did not come back go, and starts again whole', () => {
    const kinds = new RecentKinds(ROOM);
    for (let i = 0; i < 10_000; i++) write(kinds, i);
    expect(kinds.bound).toBe(ROOM / 16);
    const held = kinds.size;
    expect(kinds.idle()).toEqual({ keys: held, bytes: held * 96 });
    expect([kinds.size, kinds.bound]).toEqual([0, ROOM]);
    // Fewer keys than it holds, each written once: none dropped, kept.
    for (let i = 0; i < 900; i++) write(kinds, i);
    expect(kinds.idle()).toEqual({ keys: 0, bytes: 0 });
    expect(kinds.size).toBe(900);
  });
});

describe('RecentKinds: the table of bytes', () => {
  /**
   * Random writes of random kinds to keys of 1 to 35 bytes (many sharing prefixes, some of one
   * length only), with room for a few hundred: through the ring's wraps and pads, the index's
   * growth, backward-shift deletes and shrinks, every answer is the kind last set for that key or
   * nothing (an answer of nothing costs a read; a wrong one would corrupt the counters), and the
   * keys set last are all answered.
   */
  it('answers only the kind last set for a key, and knows the keys set last', () => {
    for (const seed of [1, 2, 3]) {
      const kinds = new RecentKinds(30_000);
      const last = new Map<string, number>();
      const recent: Buffer[] = [];
      const next = random(seed);
      const keyOf = (n: number) => Buffer.from(`${'x'.repeat(n % 31)}${n}`, 'latin1');
      let answered = 0;
      for (let n = 0; n < 50_000; n++) {
        // Narrow and wide phases: the bound halves and grows back, the table shrinks and grows.
        const space = Math.floor(n / 10_000) % 2 === 0 ? 400 : 50_000;
        const k = keyOf(Math.floor(next() * space));
        const had = kinds.get(k);
        const want = last.get(k.toString('latin1'));
        if (had !== undefined) {
          answered++;
          expect(had).toBe(want);
        }
        const kind = Math.floor(next() * 5) - 3 === 1 ? Date.now() + n : Math.floor(next() * 4) - 3;
        kinds.set(k, kind);
        last.set(k.toString('latin1'), kind);
        recent.push(k);
        if (recent.length > 20) recent.shift();
        if (n % 7_919 === 0) kinds.idle();
      }
      expect(answered).toBeGreaterThan(10_000);
      for (const k of recent) expect(kinds.get(k)).toBe(last.get(k.toString('latin1')));
      expect(kinds.size).toBeLessThanOrEqual(30_000 / 89);
    }
  });

  it('answers only the kind last set for keys of any bytes: empty, zeros, over 64 KiB, views into larger buffers', () => {
    // The key's bytes are the key (no string of them): a key that is a prefix of another, one of
    // zeros, one longer than a u16, the same bytes at another offset of another buffer.
    for (const seed of [21, 22]) {
      const next = random(seed);
      const kinds = new RecentKinds(400_000);
      const pool: Buffer[] = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(2)];
      while (pool.length < 400) {
        const r = next();
        const len = r < 0.9 ? Math.floor(next() * 24) : r < 0.97 ? 4096 : 65_536 + pool.length;
        const b = Buffer.alloc(len, pool.length % 3 === 0 ? 0 : pool.length);
        if (len > 0) b[len - 1] = Math.floor(next() * 256);
        const at = Math.floor(next() * 9);
        const view = Buffer.alloc(len + 16).fill(0xff);
        b.copy(view, at);
        pool.push(next() < 0.5 ? b : view.subarray(at, at + len));
      }
      const last = new Map<string, number>();
      let answered = 0;
      let answeredLong = 0;
      for (let n = 0; n < 20_000; n++) {
        const k = pool[Math.floor(next() * (n % 5_000 < 2_500 ? 60 : pool.length))]!;
        const had = kinds.get(k);
        if (had !== undefined) {
          expect(had).toBe(last.get(k.toString('latin1')));
          answered++;
          if (k.length > 65_535) answeredLong++;
        }
        const kind = next() < 0.3 ? 1.7e12 + n : Math.floor(next() * 3) - 3;
        kinds.set(k, kind);
        last.set(k.toString('latin1'), kind);
        // Just set: held, when it fits a sixteenth of the bound (the least the bound halves to).
        if (k.length < 4096) expect(kinds.get(k)).toBe(kind);
      }
      expect(answered).toBeGreaterThan(10_000);
      expect(answeredLong).toBeGreaterThan(0);
    }
  });

  it('keeps keys of the longest length, and drops one longer than its bound at once', () => {
    const kinds = new RecentKinds(10_000);
    const long = (c: string) => Buffer.alloc(1900, c);
    for (const c of 'abcd') kinds.set(long(c), LIVE);
    for (const c of 'abcd') expect(kinds.get(long(c))).toBe(LIVE);
    const tiny = new RecentKinds(1000);
    tiny.set(long('e'), LIVE);
    expect([tiny.size, tiny.get(long('e'))]).toEqual([0, undefined]);
    tiny.set(Buffer.from('k'), LIVE);
    expect(tiny.get(Buffer.from('k'))).toBe(LIVE);
  });
});
