// A node-wide bound on the bytes of writes in flight, shared by every client connection.

import type { Command } from '../protocol/index.ts';

/**
 * Counts the key and value bytes of writes that were accepted but are not durable yet. While
 * the count is at the limit, connections stop running new commands and reading; they register
 * to be woken when writes complete. So memory held by in-flight writes stays near the limit,
 * however many clients send large values at once.
 */
export class WriteBudget {
  readonly limit: number;
  #inflight = 0;
  #waiters = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** True when no further write may start; `wake` is called once room is back. */
  exhausted(wake: () => void): boolean {
    if (this.#inflight < this.limit) return false;
    this.#waiters.add(wake);
    return true;
  }

  /** Bytes a command holds until it is durable (0 for reads). */
  static cost(cmd: Command): number {
    switch (cmd.type) {
      case 'put':
        return cmd.key.length + cmd.value.length;
      case 'mset':
        return cmd.entries.reduce((n, [k, v]) => n + k.length + v.length, 0);
      default:
        return 0;
    }
  }

  take(n: number): void {
    this.#inflight += n;
  }

  give(n: number): void {
    this.#inflight -= n;
    if (this.#inflight >= this.limit / 2 || this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}
