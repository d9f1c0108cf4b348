// TurnBudget: large replies of one event-loop turn over every connection, waiters in line.

import { expect, it } from 'vitest';
import { atTurnEnd } from '../../src/net/index.ts';
import { TurnBudget } from '../../src/server/turn-budget.ts';

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
