// The order in which one connection's commands take effect: overlapping runs of reads or writes.

import type { Ordering, Reply } from '../protocol/index.ts';

/** The outcome of a command that settled later: its reply, or (reply null) what it threw. */
export type Done = (reply: Reply | null, err: unknown) => void;

/** Consecutive commands of one kind that may run concurrently. */
interface Group {
  readonly kind: Ordering;
  /** Settles when every command before this group settled; null when nothing was before. */
  readonly gate: Promise<void> | null;
  /** Commands of this group not yet settled. */
  pending: number;
  /** Resolves when `pending` reaches 0 (which implies every earlier group settled too). */
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

function newGroup(kind: Ordering, gate: Promise<void> | null): Group {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { kind, gate, pending: 0, done: promise, resolve };
}

/**
 * Runs a connection's commands so that they take effect in the order they were sent.
 * Consecutive writes (or consecutive reads) run concurrently, since replicas apply writes in
 * submission order; a read waits for the writes before it, a write for the reads before it, and
 * an `exclusive` command (REMOVE, DEL, EXEC) for everything before it, so a pipelined GET after
 * PUT sees the PUT and never a later write.
 */
export class CommandOrder {
  #group: Group | null = null;

  /** True when no command is in flight: the next one would run at once. */
  get idle(): boolean {
    return this.#group === null || this.#group.pending === 0;
  }

  /**
   * Runs `run` in its place. Returns its result when `run` ran at once and returned one; else
   * null, and the outcome goes to `done` (a reply, or what `run` threw or rejected with) once it
   * settled, in the same reaction that counts the command settled for the order (one reaction
   * per command, not one for the order and one for the caller). A throw of a `run` that ran at
   * once is thrown.
   */
  run(kind: Ordering, run: () => Reply | Promise<Reply>, done: Done): Reply | null {
    let group = this.#group;
    if (group === null || group.pending === 0) {
      // Nothing in flight: run now; only an asynchronous result needs a group.
      this.#group = null;
      const result = run();
      if (!(result instanceof Promise)) return result;
      this.#group = newGroup(kind, null);
      this.#track(this.#group, result, done);
      return null;
    }
    if (group.kind !== kind || kind === 'exclusive')
      group = this.#group = newGroup(kind, group.done);
    const gate = group.gate;
    const result = gate === null ? run() : gate.then(run);
    if (!(result instanceof Promise)) return result;
    this.#track(group, result, done);
    return null;
  }

  #track(group: Group, result: Promise<Reply>, done: Done): void {
    group.pending++;
    result.then(
      (reply) => {
        if (--group.pending === 0) group.resolve();
        done(reply, null);
      },
      (err: unknown) => {
        if (--group.pending === 0) group.resolve();
        done(null, err);
      },
    );
  }
}
