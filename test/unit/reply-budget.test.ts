import { describe, expect, it } from 'vitest';
import { ReplyBudget, type ReplyWaiter, TURN_BYTES } from '../../src/server/reply-budget.ts';

/** A connection that wants to start commands of `bytes` each, as connection.ts does. */
class Conn implements ReplyWaiter {
  started = 0;
  wants: number;
  readonly #budget: ReplyBudget;
  readonly #bytes: number;

  constructor(budget: ReplyBudget, bytes: number, wants: number) {
    this.#budget = budget;
    this.#bytes = bytes;
    this.wants = wants;
  }

  /** Starts commands while the budget lets it (#maybeResume, #mustWait). */
  run(): void {
    while (this.wants > 0 && !this.#budget.exhausted(this)) {
      this.#budget.move(this.#bytes);
      this.started++;
      this.wants--;
    }
  }

  wake(): void {
    this.run();
  }

  /** `n` of its commands answered and were written. */
  finish(n: number): void {
    this.#budget.move(-n * this.#bytes);
  }
}

const turn = () => new Promise((r) => setImmediate(r));

describe('ReplyBudget', () => {
  it('stops every connection at the limit and wakes the waiters in the order they began to wait', async () => {
    let waits = 0;
    const budget = new ReplyBudget(4, () => waits++);
    const a = new Conn(budget, 1, 10);
    const b = new Conn(budget, 1, 10);
    const c = new Conn(budget, 1, 10);
    a.run();
    b.run();
    c.run();
    expect([a.started, b.started, c.started]).toEqual([4, 0, 0]);
    expect([budget.reserved, budget.waiting, waits]).toEqual([4, 3, 3]);
    a.finish(2);
    // The room goes at the end of the turn, to the first in line (a waited first).
    expect(a.started).toBe(4);
    await turn();
    expect([a.started, b.started, c.started]).toEqual([6, 0, 0]);
    a.finish(4); // all it has running
    await turn();
    // b then c, in turn; a went to the back of the line.
    expect([a.started, b.started, c.started]).toEqual([6, 4, 0]);
    b.finish(4);
    await turn();
    expect([a.started, b.started, c.started]).toEqual([6, 4, 4]);
  });

  it('lets a woken connection start TURN_BYTES of commands, then the next one, round robin', async () => {
    const budget = new ReplyBudget(4 * TURN_BYTES, () => {});
    const [a, b, c] = [0, 1, 2].map(() => new Conn(budget, TURN_BYTES, 10));
    a!.run();
    b!.run();
    c!.run();
    expect([a!.started, b!.started, c!.started]).toEqual([4, 0, 0]);
    a!.finish(3);
    await turn();
    // b, c, then a again (each at the back of the line after its turn): not b taking all three.
    expect([a!.started, b!.started, c!.started]).toEqual([5, 1, 1]);
    expect(budget.waiting).toBe(3);
  });

  it('makes a connection that did not wait queue behind those that do, even with room', async () => {
    const budget = new ReplyBudget(4, () => {});
    const a = new Conn(budget, 1, 4);
    const waiter = new Conn(budget, 1, 1);
    a.run();
    waiter.run();
    expect(waiter.started).toBe(0);
    a.finish(1);
    const late = new Conn(budget, 1, 1);
    late.run(); // room for one, but the waiter is first
    expect(late.started).toBe(0);
    await turn();
    expect([waiter.started, late.started]).toEqual([1, 0]);
    a.finish(3);
    await turn();
    expect(late.started).toBe(1);
    expect(budget.waiting).toBe(0);
  });

  it('starts a command larger than the limit once under it, and forgets a connection that closed', async () => {
    const budget = new ReplyBudget(4, () => {});
    const small = new Conn(budget, 1, 1);
    const huge = new Conn(budget, 10, 1);
    const closed = new Conn(budget, 1, 1);
    small.run();
    huge.run();
    expect(huge.started).toBe(1); // under the limit: it starts, and passes it by its own bound
    closed.run();
    expect(closed.started).toBe(0);
    budget.leave(closed);
    expect(budget.waiting).toBe(0);
    huge.finish(1);
    small.finish(1);
    await turn();
    expect([budget.reserved, closed.started]).toEqual([0, 0]);
  });
});
