import { describe, expect, it } from 'vitest';
import {
  LIGHT_BYTES,
  ReplyBudget,
  type ReplyWaiter,
  TURN_BYTES,
} from '../../src/server/reply-budget.ts';

/** A connection that wants to start commands of `bytes` each, as connection.ts does. */
class Conn implements ReplyWaiter {
  started = 0;
  wants: number;
  /** What it counts in the budget: its commands started and not written. */
  held = 0;
  /** Its replies written to its socket that the kernel has not taken. */
  unsent = 0;
  bytes: number;
  readonly #budget: ReplyBudget;

  constructor(budget: ReplyBudget, bytes: number, wants: number) {
    this.#budget = budget;
    this.bytes = bytes;
    this.wants = wants;
  }

  /** Starts commands while the budget lets it (#maybeResume, #mustWait). */
  run(): void {
    while (this.wants > 0 && !this.#budget.exhausted(this)) {
      this.held += this.bytes;
      this.#budget.move(this, this.bytes);
      this.started++;
      this.wants--;
    }
  }

  wake(): void {
    this.run();
  }

  replyBytes(): number {
    return this.held + this.unsent;
  }

  nextReplyBytes(): number {
    return this.wants > 0 ? this.bytes : 0;
  }

  /** `n` of its commands (of `bytes` each) answered and were written. */
  finish(n: number, bytes = this.bytes): void {
    this.held -= n * bytes;
    this.#budget.move(this, -n * bytes);
  }
}

const turn = () => new Promise((r) => setImmediate(r));
/** A command too large to be light from a connection that holds some. */
const U = 2 * LIGHT_BYTES;
const MiB = 1024 * 1024;

/** Connections that each started one command of `bytes` (so they hold some), then want more. */
function holding(budget: ReplyBudget, bytes: number, n: number): Conn[] {
  return Array.from({ length: n }, () => {
    const c = new Conn(budget, bytes, 1);
    c.run();
    expect(c.started).toBe(1);
    return c;
  });
}

describe('ReplyBudget', () => {
  it('stops every connection that is not light at the limit and wakes the waiters in the order they began to wait', async () => {
    let waits = 0;
    const budget = new ReplyBudget(8 * U, () => waits++);
    const [a, b, c] = holding(budget, U, 3) as [Conn, Conn, Conn];
    for (const x of [a, b, c]) x.wants = 10;
    a.run();
    b.run();
    c.run();
    expect([a.started, b.started, c.started]).toEqual([6, 1, 1]);
    expect([budget.reserved, budget.waiting, waits]).toEqual([8 * U, 3, 3]);
    a.finish(2);
    // The room goes at the next turn, to the first in line (a waited first).
    expect(a.started).toBe(6);
    await turn();
    expect([a.started, b.started, c.started]).toEqual([8, 1, 1]);
    a.finish(5); // all it has running but one
    await turn();
    // b then c, in turn; a went to the back of the line.
    expect([a.started, b.started, c.started]).toEqual([8, 6, 1]);
    b.finish(5);
    await turn();
    expect([a.started, b.started, c.started]).toEqual([8, 6, 6]);
  });

  it('lets a woken connection start TURN_BYTES of commands, then the next one, round robin', async () => {
    const budget = new ReplyBudget(8 * TURN_BYTES, () => {});
    const [a, b, c] = holding(budget, TURN_BYTES, 3) as [Conn, Conn, Conn];
    for (const x of [a, b, c]) x.wants = 10;
    a.run();
    b.run();
    c.run();
    expect([a.started, b.started, c.started]).toEqual([6, 1, 1]);
    a.finish(3);
    await turn();
    // b, c, then a again (each at the back of the line after its turn): not b taking all three.
    expect([a.started, b.started, c.started]).toEqual([7, 2, 2]);
    expect(budget.waiting).toBe(3);
  });

  it('makes a connection that is not light and did not wait queue behind those that do, even with room', async () => {
    const budget = new ReplyBudget(4 * U, () => {});
    const [a, waiter, late] = holding(budget, U, 3) as [Conn, Conn, Conn];
    a.wants = 1;
    a.run(); // at the limit
    waiter.wants = 1;
    waiter.run();
    expect(waiter.started).toBe(1);
    a.finish(1);
    late.wants = 1;
    late.run(); // room for one, but the waiter is first
    expect(late.started).toBe(1);
    await turn();
    expect([waiter.started, late.started]).toEqual([2, 1]);
    waiter.finish(1);
    await turn();
    expect(late.started).toBe(2);
    expect(budget.waiting).toBe(0);
  });

  it('starts a command larger than the limit once under it, and forgets a connection that closed', async () => {
    const budget = new ReplyBudget(4 * U, () => {});
    const small = new Conn(budget, U, 1);
    const huge = new Conn(budget, 10 * U, 1);
    const closed = new Conn(budget, U, 1);
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

  it('lets a connection counting at most LIGHT_BYTES with its next command start past the limit while others wait, and wakes it first', async () => {
    const budget = new ReplyBudget(8 * MiB, () => {});
    const [other] = holding(budget, MiB, 1) as [Conn];
    const big = new Conn(budget, MiB, 100);
    big.run();
    other.wants = 100;
    other.run();
    expect([big.started, other.started, budget.waiting]).toEqual([7, 1, 2]);
    // A client reading small values, pipelined: served while the others wait.
    const small = new Conn(budget, 100, 2000);
    small.run();
    expect(small.started).toBe(Math.floor(LIGHT_BYTES / 100));
    expect([big.started, other.started, budget.waiting]).toEqual([7, 1, 3]);
    small.finish(small.started);
    await turn();
    // Woken first: the others hold 1 MiB and more, and want 1 MiB more.
    expect(small.started).toBe(2 * Math.floor(LIGHT_BYTES / 100));
    expect([big.started, other.started]).toEqual([7, 1]);
  });

  it('bounds what light connections take past the limit to the room, passes the heavy by that much between their turns, and moves a waiter that became light to their line', async () => {
    const budget = new ReplyBudget(8 * MiB, () => {});
    // Holds 1 MiB, then wants a small command: not light until that is written.
    const mixed = new Conn(budget, MiB, 1);
    mixed.run();
    const big = new Conn(budget, MiB, 100);
    big.run();
    mixed.bytes = 100;
    mixed.wants = 1;
    mixed.run();
    expect([big.started, mixed.started, budget.waiting]).toEqual([7, 1, 2]);
    expect(budget.reserved).toBe(8 * MiB);
    const light = Array.from({ length: 40 }, () => new Conn(budget, LIGHT_BYTES, 1));
    const lightStarted = () => light.filter((c) => c.started === 1).length;
    for (const c of light) c.run();
    const room = budget.lightLimit - budget.limit;
    expect(lightStarted()).toBe(room / LIGHT_BYTES);
    expect(budget.reserved).toBe(budget.lightLimit);
    mixed.finish(1, MiB); // it holds nothing, wants 100 bytes: light, behind the light that wait
    await turn();
    // Under the lightLimit, but the light passed the heavy that wait by the room already.
    expect([lightStarted(), mixed.started, big.started]).toEqual([16, 1, 7]);
    for (const c of light) if (c.started === 1 && c.held > 0) c.finish(1);
    expect(budget.reserved).toBe(7 * MiB);
    await turn();
    // big has its turn (1 MiB), then the light pass it by the room again.
    expect([lightStarted(), mixed.started, big.started]).toEqual([32, 1, 8]);
    expect(budget.reserved).toBe(budget.lightLimit);
    for (const c of light) if (c.held > 0) c.finish(1);
    big.finish(1);
    await turn();
    expect(light.every((c) => c.started === 1)).toBe(true);
    expect([mixed.started, big.started]).toEqual([2, 9]);
    expect(budget.reserved).toBe(8 * MiB + 8 * LIGHT_BYTES + 100);
  });

  it('takes a waiter whose socket drained (light now, with no count moved) out of the line as it starts past it', async () => {
    let waits = 0;
    const budget = new ReplyBudget(4 * U, () => waits++);
    const filler = new Conn(budget, U, 4);
    filler.run();
    expect(budget.reserved).toBe(budget.limit);
    // Its socket backed up: not light, it waits with the heavy.
    const a = new Conn(budget, 100, 2);
    a.unsent = 2 * LIGHT_BYTES;
    a.run();
    expect([a.started, budget.waiting]).toEqual([0, 1]);
    // The kernel took its bytes ('drain'): light, it starts past the limit, and waits no more.
    a.unsent = 0;
    a.run();
    expect([a.started, budget.waiting]).toEqual([2, 0]);
    // A heavy connection that comes now waits for room only, not behind a's old place.
    filler.finish(1);
    const b = new Conn(budget, U, 1);
    b.unsent = 2 * LIGHT_BYTES;
    b.run();
    expect([b.started, waits]).toEqual([1, 1]);

    // With no room for the light either (a command over the lightLimit runs), it moves to their
    // line: its wait counted once.
    const full = new ReplyBudget(4 * U, () => waits++);
    const big = new Conn(full, 5 * U, 1);
    big.run();
    const c = new Conn(full, 100, 1);
    c.unsent = 2 * LIGHT_BYTES;
    c.run();
    const d = new Conn(full, U, 1);
    d.unsent = 2 * LIGHT_BYTES;
    d.run();
    c.unsent = 0;
    c.run();
    expect([c.started, d.started, full.waiting, waits]).toEqual([0, 0, 2, 3]);
    big.finish(1);
    await turn();
    expect([c.started, d.started, full.waiting, waits]).toEqual([1, 1, 0, 3]);
  });
});
