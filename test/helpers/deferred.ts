// The stack behind defer() (defer.ts), apart from vitest so that scripts importing node-process.ts (the chaos runner) do not load it.

const pending: (() => unknown)[] = [];

/** Adds `fn` to the stack; true when the stack was empty (the caller then arranges a run). */
export function pushDeferred(fn: () => unknown): boolean {
  pending.push(fn);
  return pending.length === 1;
}

/** Runs what is deferred now, last first; every one runs, then the first error is thrown. */
export async function runDeferred(): Promise<void> {
  const errors: unknown[] = [];
  while (pending.length > 0) {
    try {
      await pending.pop()!();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
}
