// TurnBudget: large replies of one event-loop turn over every connection, waiters in line.

import { expect, it } from 'vitest';
import { atTurnEnd, inPieces, TurnBudget } from '../../src/net/index.ts';

const nextPass = async () => {
  // A pass runs in the turn something is queued; the line is served in the pass after it.
  atTurnEnd(() => {});
  await new Promise((resolve) => setImmediate(resolve));
};

/** A writer of `n` replies of `size` bytes that goes on while the budget lets it. */
function writer(budget: TurnBudget, name: string, n: number, size: number, log: string[]) {
  let left = n;
  const go = () => {
    while (left > 0) {
      if (budget.exhausted()) return budget.wait(go);
      budget.spend(size);
      log.push(name);
      left--;
    }
  };
  return go;
}

it('bounds the bytes of a turn, serves waiters in the order they began to wait (one that had its share at the back), and makes the others wait behind them', async () => {
  const budget = new TurnBudget(4);
  const log: string[] = [];
  writer(budget, 'a', 6, 1, log)();
  writer(budget, 'b', 3, 1, log)();
  expect(log).toEqual(['a', 'a', 'a', 'a']);
  expect(budget.waiting).toBe(2);
  // Others wait: a new writer waits behind them though it made nothing this turn.
  const c = writer(budget, 'c', 1, 1, log);
  c();
  expect(budget.waiting).toBe(3);
  await nextPass();
  await nextPass();
  // a's 2, then b's 2 (the bound); c, not served, goes before b, which had its share.
  expect(log.slice(4)).toEqual(['a', 'a', 'b', 'b']);
  await nextPass();
  expect(log.slice(8)).toEqual(['c', 'b']);
  expect(budget.waiting).toBe(0);
  expect(budget.exhausted()).toBe(false);
});

it('lets the first waiter of a turn write one reply larger than the bound', async () => {
  const budget = new TurnBudget(4);
  const log: string[] = [];
  budget.spend(4);
  writer(budget, 'big', 2, 10, log)();
  expect(log).toEqual([]);
  await nextPass();
  await nextPass();
  expect(log).toEqual(['big']);
  await nextPass();
  expect(log).toEqual(['big', 'big']);
});

/** A whole of `n` pieces of `size` each for inPieces, logging `name` per piece. */
function pieces(budget: TurnBudget, name: string, n: number, size: number, log: string[]) {
  let left = n;
  return () => {
    budget.spend(size);
    log.push(name);
    return --left === 0;
  };
}

it('inPieces: goes on while the turn lasts and none waits, then one piece each in line, round robin', async () => {
  const budget = new TurnBudget(4);
  const log: string[] = [];
  const a = inPieces(budget, pieces(budget, 'a', 6, 1, log));
  const b = inPieces(budget, pieces(budget, 'b', 3, 1, log));
  const c = inPieces(budget, pieces(budget, 'c', 1, 1, log));
  // a alone this turn until the count is spent; then a, b and c wait, in that order.
  expect(log).toEqual(['a', 'a', 'a', 'a']);
  expect(budget.waiting).toBe(3);
  await nextPass();
  await nextPass();
  // The next turn: a piece each in line, round robin, four in all (c and a are done).
  expect(log.slice(4)).toEqual(['a', 'b', 'c', 'a']);
  await Promise.all([a, c]);
  expect(budget.waiting).toBe(1);
  await nextPass();
  // Alone in line, b takes what it needs of a turn.
  expect(log.slice(8)).toEqual(['b', 'b']);
  await b;
  expect(budget.waiting).toBe(0);
});

it('inPieces: rejects with what a piece threw, and calls it no more', async () => {
  const budget = new TurnBudget(4);
  let calls = 0;
  const failing = inPieces(budget, () => {
    calls++;
    budget.spend(3);
    if (calls === 2) throw new Error('bad record');
    return false;
  });
  await expect(failing).rejects.toThrow('bad record');
  await nextPass();
  expect(calls).toBe(2);
});
