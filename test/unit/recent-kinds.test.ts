import { describe, expect, it } from 'vitest';
import { LIVE, RecentKinds } from '../../src/storage/kinds.ts';

// The bound of the recent kinds follows what they are worth (src/storage/kinds.ts): it halves
// while the writes go to many more keys than it holds, grows back when they come back to fewer,
// and an idle process lets a map full of keys that did not come back go. Counts, no timings.

/** Keys of 8 characters: 96 bytes each as the map counts them, so 1,000 keys fill ROOM. */
const ROOM = 96_000;
const key = (i: number) => `k${String(i).padStart(7, '0')}`;

/** A write as Storage makes it of the map: ask for the key's kind, then set it when it changed. */
function write(kinds: RecentKinds, i: number): void {
  if (kinds.get(key(i)) !== LIVE) kinds.set(key(i), LIVE);
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
