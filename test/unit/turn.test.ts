// atTurnEnd: one pass at the end of the turn, in order, including what is queued during it.

import { expect, it } from 'vitest';
import { atNextTurn, atTurnEnd, currentJob, turnPasses } from '../../src/net/index.ts';

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

it('runs what atNextTurn queued in the pass after the one its turn ends with, in order', async () => {
  const seen: string[] = [];
  const before = turnPasses();
  const pass = () => turnPasses() - before;
  atNextTurn(() => seen.push(`a in pass ${pass()}`));
  atTurnEnd(() => {
    seen.push(`end in pass ${pass()}`);
    // Queued during the pass its turn ends with: the next pass too, after 'a'.
    atNextTurn(() => {
      seen.push(`b in pass ${pass()}`);
      atTurnEnd(() => seen.push(`joins pass ${pass()}`));
    });
  });
  await new Promise((resolve) => setImmediate(resolve));
  expect(seen).toEqual(['end in pass 0']);
  // Scheduled from the pass (setImmediate's phase), the next pass comes in the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  expect(seen).toEqual(['end in pass 0', 'a in pass 1', 'b in pass 1', 'joins pass 1']);
  expect(turnPasses()).toBe(before + 2);
});

it('names the job running now: the same through it, another in each later one', async () => {
  // A microtask queued before the job's first currentJob() runs in the job; one queued after it,
  // after the job's end.
  const seen: number[] = [];
  queueMicrotask(() => seen.push(currentJob()));
  const first = currentJob();
  expect(currentJob()).toBe(first);
  queueMicrotask(() => seen.push(currentJob()));
  await new Promise((res) => setImmediate(res));
  expect(seen[0]).toBe(first);
  expect(seen[1]).not.toBe(first);
  const later = currentJob();
  expect(later).not.toBe(first);
  await new Promise((res) => setTimeout(res, 1));
  expect(currentJob()).not.toBe(later);
});
