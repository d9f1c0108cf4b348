// The order in which one connection's commands take effect: overlapping runs of reads or writes.

import type { Ordering, Reply } from '../protocol/index.ts';

/**
 * The outcome of a command that settled later, for `target` (what the caller gave run() for it):
 * its reply, or (reply null) what it threw; `at`: when (performance.now(), read once for every
 * command settled by the same promise). One for the order's life, not a closure per command.
 */
export type Settled<T> = (target: T, reply: Reply | null, err: unknown, at: number) => void;

/** Consecutive commands of one kind that may run concurrently. */
interface Group {
  readonly kind: Ordering;
  /** Settles when every command before this group settled; null when nothing was before. */
  readonly gate: Promise<void> | null;
  /** Commands of this group not yet settled. */
  pending: number;
  /**
   * Resolves when `pending` reaches 0 (which implies every earlier group settled too). Made only
   * when a later group must wait for this one (doneOf): at pipeline 1 none does, and a promise
   * with its resolvers per command was most of what the order allocated.
   */
  done: Promise<void> | null;
  resolve: (() => void) | null;
}

/** #waiters with no promise tracked (never added to: #result is null then). */
const NO_WAITERS: unknown[] = [];

function newGroup(kind: Ordering, gate: Promise<void> | null): Group {
  return { kind, gate, pending: 0, done: null, resolve: null };
}

/** `group.done`, made on first use; only asked of a group with commands pending. */
function doneOf(group: Group): Promise<void> {
  if (group.done === null) {
    const { promise, resolve } = Promise.withResolvers<void>();
    group.done = promise;
    group.resolve = resolve;
  }
  return group.done;
}

/**
 * Runs a connection's commands so that they take effect in the order they were sent.
 * Consecutive writes (or consecutive reads) run concurrently, since replicas apply writes in
 * submission order; a read waits for the writes before it, a write for the reads before it, and
 * an `exclusive` command (REMOVE, DEL, EXEC) for everything before it, so a pipelined GET after
 * PUT sees the PUT and never a later write.
 */
export class CommandOrder<T> {
  readonly #settled: Settled<T>;
  #group: Group | null = null;
  /**
   * The last asynchronous result tracked, and the group and target of each command waiting for
   * it (in pairs, in order). Commands that get the same promise (the SETs of one log group share
   * one: ClusterCoordinator) share one reaction to it instead of one each.
   */
  #result: Promise<Reply> | null = null;
  #waiters: (Group | T)[] = NO_WAITERS as (Group | T)[];

  /** `settled` gets the outcome of each command that settled later (see run). */
  constructor(settled: Settled<T>) {
    this.#settled = settled;
  }

  /** True when no command is in flight: the next one would run at once. */
  get idle(): boolean {
    return this.#group === null || this.#group.pending === 0;
  }

  /**
   * Runs `run(arg)` in its place. Returns its result when it ran at once and returned one; else
   * null, and the outcome goes to the order's `settled` with `target` (a reply, or what `run`
   * threw or rejected with) once it settled, in the same reaction that counts the command
   * settled for the order (one reaction per command, not one for the order and one for the
   * caller). A throw of a `run` that ran at once is thrown. `run` and `arg` apart, and `target`
   * instead of a callback: a command that runs at once makes no closure (two a SET, before).
   */
  run<A>(kind: Ordering, run: (arg: A) => Reply | Promise<Reply>, arg: A, target: T): Reply | null {
    let group = this.#group;
    if (group === null || group.pending === 0) {
      // Nothing in flight: run now; only an asynchronous result needs a group.
      this.#group = null;
      const result = run(arg);
      if (!(result instanceof Promise)) return result;
      this.#group = newGroup(kind, null);
      this.#track(this.#group, result, target);
      return null;
    }
    if (group.kind !== kind || kind === 'exclusive')
      group = this.#group = newGroup(kind, doneOf(group));
    const gate = group.gate;
    const result = gate === null ? run(arg) : gate.then(() => run(arg));
    if (!(result instanceof Promise)) return result;
    this.#track(group, result, target);
    return null;
  }

  /** Once its promise settled, a list takes no more commands: a later one starts a new list. */
  #close(waiters: (Group | T)[]): void {
    if (this.#waiters !== waiters) return;
    this.#result = null;
    this.#waiters = NO_WAITERS as (Group | T)[];
  }

  #track(group: Group, result: Promise<Reply>, target: T): void {
    group.pending++;
    if (result === this.#result) {
      this.#waiters.push(group, target);
      return;
    }
    const waiters: (Group | T)[] = [group, target];
    this.#result = result;
    this.#waiters = waiters;
    result.then(
      (reply) => {
        this.#close(waiters);
        this.#settleAll(waiters, reply, null);
      },
      (err: unknown) => {
        this.#close(waiters);
        this.#settleAll(waiters, null, err);
      },
    );
  }

  /**
   * Settles each waiting command in order, as one reaction each did: its group counts it, then
   * `settled` runs for it. One that throws does not keep the ones after it from settling; the
   * first throw is thrown again at the end (the reaction's promise rejects, as that command's own
   * did).
   */
  #settleAll(waiters: readonly (Group | T)[], reply: Reply | null, err: unknown): void {
    let thrown: { err: unknown } | null = null;
    const at = performance.now();
    const settled = this.#settled;
    for (let i = 0; i < waiters.length; i += 2) {
      const group = waiters[i] as Group;
      if (--group.pending === 0) group.resolve?.();
      try {
        settled(waiters[i + 1] as T, reply, err, at);
      } catch (e) {
        thrown ??= { err: e };
      }
    }
    if (thrown !== null) throw thrown.err;
  }
}
