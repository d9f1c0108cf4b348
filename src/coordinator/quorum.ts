// Waits for enough replicas: each group of replicas needs its own number of successes.

import { KvError } from '../errors/index.ts';

/** A set of replicas of which at least `need` must succeed. */
export interface QuorumGroup {
  readonly members: readonly string[];
  readonly need: number;
}

/**
 * Resolves with the successes so far as soon as every group has `need` of them; rejects with
 * KV_ERR_UNAVAILABLE as soon as some group can no longer reach its count. Calls keep running
 * after it settles (callers attach their own handlers for late answers). `what` names the
 * operation in the error: `replication: write quorum 1/2 (kvstore-1: peer_timeout)`, where 1 is
 * how many replicas could still answer and 2 how many are needed.
 */
export function quorum<T>(
  calls: ReadonlyMap<string, Promise<T>>,
  groups: readonly QuorumGroup[],
  what: string,
): Promise<Map<string, T>> {
  return new Promise((resolve, reject) => {
    const ok = new Map<string, T>();
    const failed = new Map<string, string>();
    let done = false;
    const check = () => {
      if (done) return;
      let satisfied = true;
      for (const g of groups) {
        let good = 0;
        let possible = 0;
        for (const m of g.members) {
          if (ok.has(m)) good++;
          if (!failed.has(m) && calls.has(m)) possible++;
        }
        if (possible < g.need) {
          done = true;
          const why = [...failed].map(([n, e]) => `${n}: ${e}`).join(', ') || 'replicas down';
          reject(
            new KvError(
              'KV_ERR_UNAVAILABLE',
              `replication: ${what} ${possible}/${g.need} (${why})`,
            ),
          );
          return;
        }
        if (good < g.need) satisfied = false;
      }
      if (satisfied) {
        done = true;
        resolve(ok);
      }
    };
    for (const [name, call] of calls) {
      call.then(
        (v) => {
          ok.set(name, v);
          check();
        },
        (err: unknown) => {
          failed.set(name, err instanceof KvError ? err.code.slice(7).toLowerCase() : 'error');
          check();
        },
      );
    }
    check();
  });
}
