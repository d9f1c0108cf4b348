// atTurnEnd: one pass at the end of the turn, in order, including what is queued during it.

import { expect, it } from 'vitest';
import { atTurnEnd, turnPasses } from '../../src/net/index.ts';

it('runs queued functions after the turn, in order, and those queued meanwhile in the same pass', async () => {
  const seen: string[] = [];
  atTurnEnd(() => {
    seen.push('a');
    atTurnEnd(() => seen.push('c'));
  });
  atTurnEnd(() => seen.push('b'));
  seen.push('now');
  // A setImmediate queued after the pass was scheduled runs after the whole pass, 'c' included.
  await new Promise((resolve) => setImmediate(resolve));
  expect(seen).toEqual(['now', 'a', 'b', 'c']);
  atTurnEnd(() => seen.push('next'));
  await new Promise((resolve) => setImmediate(resolve));
  expect(seen.at(-1)).toBe('next');
});

it('counts its passes: the count differs between two turns that wrote, not within one', async () => {
  const before = turnPasses();
  atTurnEnd(() => {});
  atTurnEnd(() => {});
  expect(turnPasses()).toBe(before);
  await new Promise((resolve) => setImmediate(resolve));
  expect(turnPasses()).toBe(before + 1);
  // A turn in which nothing was queued runs no pass.
  await new Promise((resolve) => setImmediate(resolve));
  expect(turnPasses()).toBe(before + 1);
});
