import { describe, expect, it } from 'vitest';
import { ReadPreference } from '../../src/coordinator/read-preference.ts';

/** The end of the current event-loop turn (atTurnEnd runs in setImmediate's phase). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const MEMBERS = Object.freeze(['a', 'b', 'c', 'd', 'e']);

describe('ReadPreference', () => {
  it('puts the same member first for every read of a turn, whatever order the owners come in', () => {
    const pref = new ReadPreference('a');
    const firsts = new Set<string>();
    for (const owners of [
      ['b', 'c'],
      ['c', 'b'],
      ['b', 'c', 'd'],
      ['d', 'c', 'b'],
      ['e', 'b', 'c', 'd'],
    ]) {
      pref.order(owners, MEMBERS);
      if (owners.includes('b')) firsts.add(owners[0]!);
    }
    expect(firsts.size).toBe(1);
  });

  it('moves on a member each turn, so every other member is preferred as often', async () => {
    const pref = new ReadPreference('c');
    const counts = new Map<string, number>();
    for (let turn = 0; turn < 40; turn++) {
      const owners = ['a', 'b', 'd', 'e'];
      pref.order(owners, MEMBERS);
      counts.set(owners[0]!, (counts.get(owners[0]!) ?? 0) + 1);
      expect(owners.slice(1)).toEqual(
        [...'abde'].filter((n) => n !== owners[0]).sort(byCycleFrom(owners[0]!)),
      );
      await nextTurn();
    }
    expect(Object.fromEntries(counts)).toEqual({ a: 10, b: 10, d: 10, e: 10 });
  });

  it('puts members not in the ring after the others, in the order given', () => {
    const pref = new ReadPreference('a');
    const owners = ['x', 'c', 'w', 'b'];
    pref.order(owners, MEMBERS);
    expect(owners.slice(2)).toEqual(['x', 'w']);
    expect(new Set(owners.slice(0, 2))).toEqual(new Set(['b', 'c']));
  });

  it('draws whether a turn asks every owner once per turn', async () => {
    const pref = new ReadPreference('a');
    const turns: boolean[] = [];
    for (let turn = 0; turn < 200; turn++) {
      const first = pref.askAll(0.5);
      for (let read = 0; read < 10; read++) expect(pref.askAll(0.5)).toBe(first);
      turns.push(first);
      await nextTurn();
    }
    // 200 fair draws: both outcomes, each far from never (binomial, 0.5: 100 +- 40 is 1 - 1e-8).
    const yes = turns.filter(Boolean).length;
    expect(yes).toBeGreaterThan(60);
    expect(yes).toBeLessThan(140);
    expect(pref.askAll(0)).toBe(false);
    expect(pref.askAll(1)).toBe(true);
  });
});

/** Orders the other members cyclically from after `first` (a..e without c). */
function byCycleFrom(first: string): (x: string, y: string) => number {
  const ring = [...'abde'];
  const at = (n: string) => (ring.indexOf(n) - ring.indexOf(first) + ring.length) % ring.length;
  return (x, y) => at(x) - at(y);
}
