import { describe, expect, it } from 'vitest';
import {
  DEFAULT_VNODES,
  keyToken,
  Ring,
  rangeContains,
  type TokenRangeChange,
  vnodeToken,
} from '../../src/ring/index.ts';

/** mulberry32: deterministic PRNG, so every run sees the same keys. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** `count` random 16-byte keys from `seed`. */
function randomKeys(count: number, seed: number): Buffer[] {
  const next = prng(seed);
  const keys: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const key = Buffer.alloc(16);
    for (let j = 0; j < 4; j++) key.writeUInt32LE(next(), j * 4);
    keys.push(key);
  }
  return keys;
}

/** kvstore-0 .. kvstore-(count-1), the StatefulSet pod names. */
function names(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `kvstore-${i}`);
}

function maxOverMin(counts: Map<string, number>, members: readonly string[]): number {
  const values = members.map((m) => counts.get(m) ?? 0);
  return Math.max(...values) / Math.min(...values);
}

function sorted(list: readonly string[]): string[] {
  return [...list].sort();
}

const KEYS = randomKeys(100_000, 1);

describe('keyToken and the vnode scheme', () => {
  it('is xxh32 with seed 0 (pinned: changing it reshuffles every cluster)', () => {
    expect(keyToken(Buffer.from('a'))).toBe(0x550d7456);
    expect(vnodeToken('kvstore-0', 0)).toBe(keyToken(Buffer.from('kvstore-0#0')));
    expect(vnodeToken('kvstore-0', 0)).toBe(3467878768);
  });

  it('returns unsigned 32-bit integers', () => {
    for (const key of KEYS.slice(0, 1000)) {
      const token = keyToken(key);
      expect(Number.isInteger(token) && token >= 0 && token < 2 ** 32).toBe(true);
    }
  });

  it('places keys the same way across versions (pinned ring id and owners)', () => {
    // Changing DEFAULT_VNODES moves most keys of clusters that use the default: do it knowingly.
    expect(DEFAULT_VNODES).toBe(1024);
    const ring = new Ring(names(5), { vnodes: 1024 });
    expect(ring.id).toBe('b821eb92a002186a');
    expect(['a', 'b', 'user:42', 'kvstore'].map((k) => ring.owners(Buffer.from(k), 3))).toEqual([
      ['kvstore-1', 'kvstore-0', 'kvstore-4'],
      ['kvstore-1', 'kvstore-3', 'kvstore-2'],
      ['kvstore-0', 'kvstore-1', 'kvstore-3'],
      ['kvstore-1', 'kvstore-3', 'kvstore-4'],
    ]);
  });
});

describe('balance', () => {
  for (let count = 3; count <= 10; count++) {
    it(`${count} members: max/min keys per member <= 1.25, as primary and as 1 of 3 replicas`, () => {
      const ring = new Ring(names(count));
      const primary = new Map<string, number>();
      const replica = new Map<string, number>();
      for (const key of KEYS) {
        const owners = ring.owners(key, 3);
        primary.set(owners[0]!, (primary.get(owners[0]!) ?? 0) + 1);
        for (const owner of owners) replica.set(owner, (replica.get(owner) ?? 0) + 1);
      }
      expect(maxOverMin(primary, ring.members)).toBeLessThanOrEqual(1.25);
      expect(maxOverMin(replica, ring.members)).toBeLessThanOrEqual(1.25);
    });
  }
});

describe('movement', () => {
  for (let count = 3; count <= 9; count++) {
    it(`adding a member to ${count}: ~1/${count + 1} of keys move, all to the new member`, () => {
      const before = new Ring(names(count));
      const after = new Ring(names(count + 1));
      const joiner = `kvstore-${count}`;
      const wrong: string[] = [];
      let movedPrimary = 0;
      let movedReplica = 0;
      for (const key of KEYS) {
        const old = before.owners(key, 3);
        const now = after.owners(key, 3);
        if (old[0] !== now[0]) {
          movedPrimary++;
          if (now[0] !== joiner) wrong.push(`primary ${old} -> ${now}`);
        }
        if (!now.includes(joiner)) {
          if (now.join() !== old.join()) wrong.push(`unchanged ${old} -> ${now}`);
          continue;
        }
        movedReplica++;
        // The joiner takes one slot and exactly one old owner drops out; the rest keep their order.
        const rest = now.filter((m) => m !== joiner);
        const kept = old.filter((m) => rest.includes(m));
        if (rest.join() !== kept.join() || kept.length !== old.length - 1) {
          wrong.push(`replicas ${old} -> ${now}`);
        }
      }
      expect(wrong.slice(0, 5)).toEqual([]);
      const expected = 1 / (count + 1);
      expect(movedPrimary / KEYS.length).toBeGreaterThanOrEqual(0.5 * expected);
      expect(movedPrimary / KEYS.length).toBeLessThanOrEqual(1.5 * expected);
      expect(movedReplica / KEYS.length).toBeGreaterThanOrEqual(0.5 * 3 * expected);
      expect(movedReplica / KEYS.length).toBeLessThanOrEqual(1.5 * 3 * expected);
    });
  }

  for (let count = 4; count <= 10; count++) {
    it(`removing a member from ${count}: only keys it owned change owners`, () => {
      const leaver = `kvstore-${count >> 1}`;
      const before = new Ring(names(count));
      const after = new Ring(names(count).filter((m) => m !== leaver));
      const wrong: string[] = [];
      let changed = 0;
      for (const key of KEYS) {
        const old = before.owners(key, 3);
        const now = after.owners(key, 3);
        if (!old.includes(leaver)) {
          if (now.join() !== old.join()) wrong.push(`not owned ${old} -> ${now}`);
          continue;
        }
        changed++;
        // The survivors keep their order (so a surviving primary stays primary); one member joins.
        const survivors = old.filter((m) => m !== leaver);
        const kept = now.filter((m) => old.includes(m));
        if (now.includes(leaver) || kept.join() !== survivors.join()) {
          wrong.push(`owned ${old} -> ${now}`);
        }
      }
      expect(wrong.slice(0, 5)).toEqual([]);
      expect(changed / KEYS.length).toBeGreaterThanOrEqual(0.5 * (3 / count));
      expect(changed / KEYS.length).toBeLessThanOrEqual(1.5 * (3 / count));
    });
  }
});

const entryTokens = new Map<Ring, number[]>();
/** The token of the ring entry `key` falls to: the first vnode token at or after its own, wrapping. */
function keyTokenEntry(ring: Ring, key: Buffer): number {
  let tokens = entryTokens.get(ring);
  if (tokens === undefined) {
    tokens = ring.members
      .flatMap((m) => Array.from({ length: ring.vnodes }, (_, i) => vnodeToken(m, i)))
      .sort((a, b) => a - b);
    entryTokens.set(ring, tokens);
  }
  const t = keyToken(key);
  return tokens.find((x) => x >= t) ?? tokens[0]!;
}

describe('determinism and edge cases', () => {
  it('depends only on the member set and vnodes', () => {
    const a = new Ring(['kvstore-2', 'kvstore-0', 'kvstore-1']);
    const b = new Ring(['kvstore-1', 'kvstore-2', 'kvstore-1', 'kvstore-0', 'kvstore-2']);
    expect(b.members).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    expect(b.id).toBe(a.id);
    expect(b.id).toMatch(/^[0-9a-f]{16}$/);
    for (const key of KEYS.slice(0, 2000)) expect(b.owners(key, 3)).toEqual(a.owners(key, 3));
    expect(new Ring(names(4)).id).not.toBe(a.id);
    expect(new Ring(names(3), { vnodes: 512 }).id).not.toBe(a.id);
    expect(new Ring(names(3), { vnodes: 512 }).id).toBe(new Ring(names(3), { vnodes: 512 }).id);
  });

  it('returns distinct owners, primary first, clamped to the member count', () => {
    const ring = new Ring(names(5));
    for (const key of KEYS.slice(0, 2000)) {
      const all = ring.owners(key, 5);
      expect(new Set(all).size).toBe(5);
      expect(ring.owners(key, 9)).toEqual(all);
      expect(ring.owners(key, 3)).toEqual(all.slice(0, 3));
      expect(ring.owners(key, 1)).toEqual(all.slice(0, 1));
      expect(ring.ownersOfToken(keyToken(key), 3)).toEqual(all.slice(0, 3));
    }
    expect(ring.owners(KEYS[0]!, 0)).toEqual([]);
    expect(new Ring(['solo']).owners(KEYS[0]!, 3)).toEqual(['solo']);
  });

  it('ownersShared: the owners of owners(), one frozen array per entry and count, shared by its keys', () => {
    for (const ring of [new Ring(names(3)), new Ring(names(5), { vnodes: 4 })]) {
      const byOwners = new Map<string, readonly string[]>();
      for (const key of KEYS.slice(0, 2000)) {
        for (const n of [1, 3, 9]) {
          const shared = ring.ownersShared(key, n);
          expect(shared).toEqual(ring.owners(key, n));
          expect(Object.isFrozen(shared)).toBe(true);
          expect(ring.ownersShared(key, n)).toBe(shared);
        }
        // 5 members of 4 vnodes: 20 entries, so many keys share an entry and its array.
        const three = ring.ownersShared(key, 3);
        const seen = byOwners.get(`${keyTokenEntry(ring, key)}`);
        if (seen !== undefined) expect(three).toBe(seen);
        byOwners.set(`${keyTokenEntry(ring, key)}`, three);
      }
    }
    expect(new Ring(names(3)).ownersShared(KEYS[0]!, 0)).toEqual([]);
    expect(new Ring([]).ownersShared(KEYS[0]!, 3)).toEqual([]);
    // Past SHARED_WALK_ENTRIES entries, a walk per call (the same owners, not kept).
    const big = new Ring(names(17));
    const once = big.ownersShared(KEYS[0]!, 3);
    expect(once).toEqual(big.owners(KEYS[0]!, 3));
    expect(big.ownersShared(KEYS[0]!, 3)).not.toBe(once);
  });

  it('wraps: tokens past the last vnode belong to the first', () => {
    const ring = new Ring(names(3), { vnodes: 4 });
    const tokens = names(3)
      .flatMap((m) => [0, 1, 2, 3].map((i) => ({ m, t: vnodeToken(m, i) })))
      .sort((x, y) => x.t - y.t);
    const first = tokens[0]!;
    const last = tokens.at(-1)!;
    expect(ring.ownersOfToken(2 ** 32 - 1, 1)).toEqual([first.m]);
    expect(ring.ownersOfToken(last.t + 1, 1)).toEqual([first.m]);
    expect(ring.ownersOfToken(0, 1)).toEqual([first.m]);
    expect(ring.ownersOfToken(last.t, 1)).toEqual([last.m]);
    expect(ring.ownersOfToken(tokens[1]!.t, 1)).toEqual([tokens[1]!.m]);
    expect(ring.ownersOfToken(first.t + 1, 1)).toEqual([tokens[1]!.m]);
  });

  it('empty ring: no owners, no share, a stable id', () => {
    const ring = new Ring([]);
    expect(ring.members).toEqual([]);
    expect(ring.owners(KEYS[0]!, 3)).toEqual([]);
    expect(ring.share('kvstore-0')).toBe(0);
    expect(ring.id).toBe(new Ring([]).id);
  });

  it('breaks token collisions by member name', () => {
    // Found by search: both names' vnode 0 hash to 1065552706.
    expect(vnodeToken('node-47939', 0)).toBe(vnodeToken('node-138741', 0));
    for (const order of [
      ['node-47939', 'node-138741'],
      ['node-138741', 'node-47939'],
    ]) {
      const ring = new Ring(order, { vnodes: 1 });
      expect(ring.owners(KEYS[0]!, 2)).toEqual(['node-138741', 'node-47939']);
      expect(ring.ownersOfToken(1065552706, 2)).toEqual(['node-138741', 'node-47939']);
      expect(ring.ownersOfToken(1065552707, 1)).toEqual(['node-138741']);
      expect(ring.share('node-138741')).toBe(1);
      expect(ring.share('node-47939')).toBe(0);
    }
  });

  it('rejects bad vnodes, names and counts', () => {
    expect(() => new Ring(['a'], { vnodes: 0 })).toThrow(/^ring: vnodes/);
    expect(() => new Ring(['a'], { vnodes: 1.5 })).toThrow(/^ring: vnodes/);
    expect(() => new Ring(['a', ''])).toThrow(/^ring: member names/);
    const ring = new Ring(['a']);
    for (const n of [-1, 1.5, Number.NaN]) {
      expect(() => ring.owners(KEYS[0]!, n)).toThrow(/^ring: owner count/);
    }
  });
});

/** Whether two owner lists hold different sets of members. */
function ownersChanged(was: readonly string[], is: readonly string[]): boolean {
  return sorted(was).join() !== sorted(is).join();
}

/**
 * The range holding `token`, or undefined. `ranges` must be ordered by start and disjoint
 * (checked by the caller), so only the last range with start < token and the wrapping last
 * range can hold it.
 */
function findRange(ranges: TokenRangeChange[], token: number): TokenRangeChange | undefined {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[mid]!.start < token) lo = mid + 1;
    else hi = mid;
  }
  for (const r of [ranges[lo - 1], ranges.at(-1)]) {
    if (r && rangeContains(r.start, r.end, token)) return r;
  }
  return undefined;
}

describe('diff', () => {
  const cases: Array<[string, string[], string[], number, number]> = [
    ['join 5 -> 6', names(5), names(6), DEFAULT_VNODES, DEFAULT_VNODES],
    ['leave 6 -> 5', names(6), names(5), DEFAULT_VNODES, DEFAULT_VNODES],
    ['replace a member', names(5), [...names(4), 'kvstore-9'], 64, 64],
    ['grow 1 -> 4', names(1), names(4), 16, 16],
    ['from empty', [], names(3), 8, 8],
    ['to empty', names(3), [], 8, 8],
    // Owners get reordered without changing the set: not a change.
    ['vnodes 16 -> 32', names(4), names(4), 16, 32],
  ];
  for (const [label, from, to, fromVnodes, toVnodes] of cases) {
    for (const n of [1, 3]) {
      it(`${label}, n=${n}: a key is in a range iff its owner set changed`, () => {
        const before = new Ring(from, { vnodes: fromVnodes });
        const after = new Ring(to, { vnodes: toVnodes });
        const ranges = before.diff(after, n);
        expect(ranges.length).toBeGreaterThan(0);
        const wrong: string[] = [];
        for (const key of KEYS.slice(0, 20_000)) {
          const token = keyToken(key);
          const range = findRange(ranges, token);
          const was = before.owners(key, n);
          const is = after.owners(key, n);
          if ((range !== undefined) !== ownersChanged(was, is)) {
            wrong.push(`token ${token}: ${was} -> ${is}, range ${JSON.stringify(range)}`);
          } else if (
            range &&
            (range.before.join() !== was.join() || range.after.join() !== is.join())
          ) {
            wrong.push(`token ${token}: ${was} -> ${is}, range ${JSON.stringify(range)}`);
          }
        }
        expect(wrong.slice(0, 5)).toEqual([]);
        for (const r of ranges) {
          // Both ends of every range are inside it, with the range's owners.
          for (const token of [r.end, (r.start + 1) >>> 0]) {
            expect(before.ownersOfToken(token, n)).toEqual(r.before);
            expect(after.ownersOfToken(token, n)).toEqual(r.after);
          }
        }
        // Ordered by start, disjoint; only the last may wrap.
        for (let i = 0; i + 1 < ranges.length; i++) {
          expect(ranges[i]!.start).toBeLessThan(ranges[i]!.end);
          expect(ranges[i]!.end).toBeLessThanOrEqual(ranges[i + 1]!.start);
        }
        const last = ranges.at(-1)!;
        if (last.start >= last.end) expect(last.end).toBeLessThanOrEqual(ranges[0]!.start);
        // Touching ranges (also across the wrap) differ in owners, else they would be merged.
        ranges.forEach((r, i) => {
          const following = ranges[(i + 1) % ranges.length]!;
          if (ranges.length > 1 && r.end === following.start) {
            expect([r.before, r.after]).not.toEqual([following.before, following.after]);
          }
        });
      });
    }
  }

  it('is empty for the same member set and covers everything for disjoint ones', () => {
    const ring = new Ring(names(4));
    expect(ring.diff(new Ring([...names(4)].reverse()), 3)).toEqual([]);
    expect(new Ring([]).diff(new Ring([]), 3)).toEqual([]);
    // One token each: both segments change from x to y and merge into the whole ring.
    const whole = new Ring(['x'], { vnodes: 1 }).diff(new Ring(['y'], { vnodes: 1 }), 1);
    const top = Math.max(vnodeToken('x', 0), vnodeToken('y', 0));
    expect(whole).toEqual([{ start: top, end: top, before: ['x'], after: ['y'] }]);
    expect(rangeContains(whole[0]!.start, whole[0]!.end, 0)).toBe(true);
    expect(rangeContains(whole[0]!.start, whole[0]!.end, 2 ** 32 - 1)).toBe(true);
  });

  it('merges ranges that touch across 2^32 - 1 -> 0', () => {
    // y36 holds the lowest and the highest token, x the two between: y's two ranges touch
    // across 2^32 - 1 -> 0 and merge into one wrapping range.
    expect(vnodeToken('y36', 0)).toBeLessThan(vnodeToken('x', 0));
    expect(vnodeToken('y36', 1)).toBeGreaterThan(vnodeToken('x', 1));
    const across = new Ring(['x'], { vnodes: 2 }).diff(new Ring(['x', 'y36'], { vnodes: 2 }), 1);
    const [high, low] = [vnodeToken('x', 1), vnodeToken('y36', 0)];
    expect(across).toEqual([{ start: high, end: low, before: ['x'], after: ['y36'] }]);
  });
});

describe('share', () => {
  for (let count = 1; count <= 6; count++) {
    it(`${count} members: shares sum to min(n, members)`, () => {
      const ring = new Ring(names(count), { vnodes: 64 });
      for (const n of [1, 2, 3, count + 2]) {
        const total = ring.members.reduce((sum, m) => sum + ring.share(m, n), 0);
        expect(total).toBeCloseTo(Math.min(n, count), 9);
      }
      expect(ring.share('not-a-member')).toBe(0);
    });
  }

  it('matches the fraction of random keys each member owns', () => {
    const ring = new Ring(names(5), { vnodes: 16 });
    for (const n of [1, 3]) {
      for (const member of ring.members) {
        const owned = KEYS.filter((k) => ring.owners(k, n).includes(member)).length;
        expect(owned / KEYS.length).toBeCloseTo(ring.share(member, n), 2);
      }
    }
  });
});

describe('entry order', () => {
  /**
   * The ring as its scheme defines it, built the plain way: every member's vnode tokens sorted by
   * token, ties by member name (the Ring sorts them natively, as one number each: 5869c01).
   */
  function reference(members: string[], vnodes: number) {
    const names = [...new Set(members)].sort();
    const entries = names.flatMap((m) =>
      Array.from({ length: vnodes }, (_, i) => ({ t: vnodeToken(m, i), m })),
    );
    entries.sort((a, b) => a.t - b.t || (a.m < b.m ? -1 : a.m > b.m ? 1 : 0));
    return (token: number, n: number): string[] => {
      let e = entries.findIndex((x) => x.t >= token);
      if (e < 0) e = 0;
      const out: string[] = [];
      while (out.length < Math.min(n, names.length)) {
        const m = entries[e]!.m;
        if (!out.includes(m)) out.push(m);
        e = (e + 1) % entries.length;
      }
      return out;
    };
  }

  for (const [count, vnodes] of [
    [3, 64],
    [7, 16],
    [12, 128],
  ] as const) {
    it(`${count} members x ${vnodes} vnodes: the same owners at every entry's token, either side of it, and random tokens`, () => {
      const members = Array.from({ length: count }, (_, i) => `node-${(i * 7919) % 1000}`);
      const ring = new Ring(members, { vnodes });
      const owners = reference(members, vnodes);
      const random = prng(count * 1000 + vnodes);
      const tokens = members.flatMap((m) =>
        Array.from({ length: vnodes }, (_, i) => vnodeToken(m, i)),
      );
      const probes = [
        ...tokens.flatMap((t) => [t, (t + 1) >>> 0, (t - 1) >>> 0]),
        ...Array.from({ length: 500 }, () => random()),
        0,
        2 ** 32 - 1,
      ];
      const wrong = probes
        .filter((t) => ring.ownersOfToken(t, 3).join() !== owners(t, 3).join())
        .slice(0, 5);
      expect(wrong).toEqual([]);
    });
  }
});
