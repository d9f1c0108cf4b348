// Waits for enough replicas: each group of replicas needs its own number of successes.

import { KvError, wireCode } from '../errors/index.ts';

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
          reject(unavailable(what, possible, g.need, failed));
          return;
        }
        if (good < g.need) satisfied = false;
      }
      if (satisfied) {
        done = true;
        resolve(ok);
      }
    };
    for (const [name, call] of calls) track(name, call, ok, failed, check);
    check();
  });
}

/** Records a call's outcome in `ok` or, as a short reason (`peer_timeout`), in `failed`. */
function track<T>(
  name: string,
  call: Promise<T>,
  ok: Map<string, T>,
  failed: Map<string, string>,
  after: (failed: boolean) => void,
): void {
  call.then(
    (v) => {
      ok.set(name, v);
      after(false);
    },
    (err: unknown) => {
      failed.set(name, err instanceof KvError ? wireCode(err.code).toLowerCase() : 'error');
      after(true);
    },
  );
}

/** `replication: read quorum 1/2 (kvstore-1: peer_timeout)`. */
function unavailable(
  what: string,
  possible: number,
  need: number,
  failed: ReadonlyMap<string, string>,
): KvError {
  const why = [...failed].map(([n, e]) => `${n}: ${e}`).join(', ') || 'replicas down';
  return new KvError('KV_ERR_UNAVAILABLE', `replication: ${what} ${possible}/${need} (${why})`);
}

/** How a targeted quorum asks its replicas. */
export interface TargetedAsk<T> {
  /** Every replica, most preferred first; the first `need` are asked at once. */
  readonly order: readonly string[];
  readonly need: number;
  readonly call: (name: string) => Promise<T>;
  /** After this many ms without a quorum, every replica not asked yet is asked. */
  readonly speculateMs: number;
  /** Called once when the speculative requests go out. */
  readonly onSpeculate: () => void;
  /** Names the operation in the error, as for quorum(). */
  readonly what: string;
}

/** A targeted quorum's successes, and every call it made (for read repair). */
export interface TargetedResult<T> {
  readonly ok: Map<string, T>;
  readonly calls: Map<string, Promise<T>>;
}

/**
 * Asks only the first `need` replicas of `order`; each failure asks the next one not asked yet,
 * and when the quorum is still short after `speculateMs` (a slow or paused replica the failure
 * detector has not caught yet) every replica not asked yet is asked at once. Resolves once `need`
 * succeeded; rejects with KV_ERR_UNAVAILABLE, as quorum() does, once too many failed.
 */
export function targetedQuorum<T>(t: TargetedAsk<T>): Promise<TargetedResult<T>> {
  return new Promise((resolve, reject) => {
    const calls = new Map<string, Promise<T>>();
    const ok = new Map<string, T>();
    const failed = new Map<string, string>();
    let next = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const check = () => {
      if (done) return;
      const possible = t.order.length - failed.size;
      if (ok.size < t.need && possible >= t.need) return;
      done = true;
      clearTimeout(timer);
      if (ok.size >= t.need) {
        resolve({ ok, calls });
        return;
      }
      reject(unavailable(t.what, possible, t.need, failed));
    };
    const ask = (name: string) => {
      const call = t.call(name);
      calls.set(name, call);
      track(name, call, ok, failed, (failedNow) => {
        if (failedNow && !done && next < t.order.length) ask(t.order[next++]!);
        check();
      });
    };
    while (next < Math.min(t.need, t.order.length)) ask(t.order[next++]!);
    if (next < t.order.length) {
      timer = setTimeout(() => {
        if (done || next >= t.order.length) return;
        t.onSpeculate();
        while (next < t.order.length) ask(t.order[next++]!);
      }, t.speculateMs);
    }
    check();
  });
}
