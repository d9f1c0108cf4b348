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

/**
 * quorum() for writes, whose answers carry nothing: starts `call(name)` for each of `names` and
 * resolves as soon as every group has `need` successes; rejects with KV_ERR_UNAVAILABLE (the same
 * message as quorum()) as soon as some group can no longer reach its count. `onFail(name)` runs
 * for every call that fails, also after the quorum settled (the caller's hint). One reaction per
 * call and a count per group, instead of quorum()'s maps and a second reaction for the failure:
 * this runs once per client write.
 */
export function writeQuorum(
  names: readonly string[],
  groups: readonly QuorumGroup[],
  what: string,
  call: (name: string) => Promise<unknown>,
  onFail: (name: string) => void,
): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const good = groups.map(() => 0);
  const possible = groups.map((g) => {
    let n = 0;
    for (const m of g.members) if (names.includes(m)) n++;
    return n;
  });
  let failed: [string, string][] | null = null;
  let done = false;
  const settle = () => {
    if (done) return;
    let satisfied = true;
    for (let g = 0; g < groups.length; g++) {
      const need = groups[g]!.need;
      if (possible[g]! < need) {
        done = true;
        reject(unavailable(what, possible[g]!, need, new Map(failed)));
        return;
      }
      if (good[g]! < need) satisfied = false;
    }
    if (satisfied) {
      done = true;
      resolve();
    }
  };
  const count = (name: string, into: number[], by: number) => {
    for (let g = 0; g < groups.length; g++) if (groups[g]!.members.includes(name)) into[g]! += by;
  };
  for (const name of names) {
    let started: Promise<unknown>;
    try {
      started = call(name);
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(
      () => {
        count(name, good, 1);
        settle();
      },
      (err: unknown) => {
        onFail(name);
        if (done) return;
        failed ??= [];
        failed.push([name, err instanceof KvError ? wireCode(err.code).toLowerCase() : 'error']);
        count(name, possible, -1);
        settle();
      },
    );
  }
  settle();
  return promise;
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

/**
 * The speculation deadlines of one delay made within a millisecond, under one timer: Node's
 * timers count in whole milliseconds from the loop's cached time, so theirs would fire within
 * the same millisecond anyway (here one may fire up to a millisecond early). One timer for them
 * saves each read a Timeout, its insertion in Node's timer list and its clearTimeout (a
 * replicated GET made one of each; the reads of a turn share a batch). A deadline cancelled
 * before it runs (the read answered) is dropped at once; the timer is cleared once every
 * deadline of the batch is cancelled.
 *
 * The deadlines run in the check phase after the timer fired (setImmediate), not in the timer's
 * own callback: Node runs due timers before it reads its sockets, so after a turn longer than
 * the delay (a busy coordinator: a batch of 800 pipelined GETs, a collection) the timer came
 * first and every read of its batch asked a third replica although the answer it waited for had
 * arrived and sat unread in the socket. The reads' answers that came meanwhile are read in the
 * poll phase between the two and cancel their deadlines; a replica that is really late is asked
 * about one loop iteration later.
 */
class Deadlines {
  readonly ms: number;
  /** When the batch began (performance.now()). */
  readonly at: number;
  readonly #fns: ((() => void) | null)[] = [];
  #live = 0;
  #fired = false;
  readonly #timer: NodeJS.Timeout;

  constructor(ms: number, at: number) {
    this.ms = ms;
    this.at = at;
    this.#timer = setTimeout(this.#fire, ms);
  }

  /** True while it takes deadlines of `ms` made `now`: begun within 1 ms, its timer armed. */
  open(ms: number, now: number): boolean {
    return this.ms === ms && now - this.at < 1 && !this.#fired && this.#live > 0;
  }

  /** Adds `fn`, to run when the timer fires; returns its slot, for cancel. */
  add(fn: () => void): number {
    this.#live++;
    return this.#fns.push(fn) - 1;
  }

  cancel(slot: number): void {
    if (this.#fns[slot] === null) return;
    this.#fns[slot] = null;
    if (--this.#live === 0 && !this.#fired) clearTimeout(this.#timer);
  }

  /** The timer fired: the deadlines still live run after this iteration's poll phase. */
  readonly #fire = () => {
    this.#fired = true;
    setImmediate(this.#run);
  };

  readonly #run = () => {
    const fns = this.#fns;
    for (let i = 0; i < fns.length; i++) {
      const fn = fns[i];
      if (fn === null || fn === undefined) continue;
      fns[i] = null;
      // One that throws (none should) keeps no other read from speculating; the error surfaces.
      try {
        fn();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
}

/** The batch new deadlines join (Deadlines), while it is open. */
let batch: Deadlines | null = null;

/** A deadline made by speculateLater: its batch and slot, for cancel. */
interface Deadline {
  readonly batch: Deadlines;
  readonly slot: number;
}

/**
 * After `speculateMs`, asks the replicas not asked yet (`askRest`, which asks none once the
 * quorum is met or lost), counting the speculation once when it asked any. Cancel it once the
 * quorum is met or lost (cancel).
 */
function speculateLater(
  t: { readonly speculateMs: number; readonly onSpeculate: () => void },
  askRest: () => boolean,
): Deadline {
  const ms = t.speculateMs;
  const now = performance.now();
  if (batch === null || !batch.open(ms, now)) batch = new Deadlines(ms, now);
  const slot = batch.add(() => {
    if (askRest()) t.onSpeculate();
  });
  return { batch, slot };
}

function cancel(deadline: Deadline | undefined): void {
  deadline?.batch.cancel(deadline.slot);
}

/** How a targeted quorum asks its replicas. */
export interface TargetedAsk<T> {
  /** Every replica, most preferred first; the first `need` are asked at once. */
  readonly order: readonly string[];
  readonly need: number;
  /** Asks one replica; `speculative` when it is asked because the quorum was late. */
  readonly call: (name: string, speculative: boolean) => Promise<T>;
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
    let timer: Deadline | undefined;
    const check = () => {
      if (done) return;
      const possible = t.order.length - failed.size;
      if (ok.size < t.need && possible >= t.need) return;
      done = true;
      cancel(timer);
      if (ok.size >= t.need) {
        resolve({ ok, calls });
        return;
      }
      reject(unavailable(t.what, possible, t.need, failed));
    };
    const ask = (name: string, speculative = false) => {
      const call = t.call(name, speculative);
      calls.set(name, call);
      track(name, call, ok, failed, (failedNow) => {
        if (failedNow && !done && next < t.order.length) ask(t.order[next++]!);
        check();
      });
    };
    while (next < Math.min(t.need, t.order.length)) ask(t.order[next++]!);
    if (next < t.order.length) {
      timer = speculateLater(t, () => {
        if (done || next >= t.order.length) return false;
        while (next < t.order.length) ask(t.order[next++]!, true);
        return true;
      });
    }
    check();
  });
}

/**
 * How oneMore asks: a targeted quorum of two whose first answer, this node's own, is in hand.
 * Each call answers through callbacks, not a promise: this runs once per replicated GET, where
 * a promise per call, its reaction and the quorum's own promise were most of what a read
 * allocated and a microtask each.
 */
export interface OneMoreAsk<T> {
  /** The other replicas, most preferred first; the first is asked at once. */
  readonly order: readonly string[];
  /**
   * Asks one replica (`speculative` when asked because the answer was late); exactly one of
   * `ok` and `fail` is called, once, then or later. It must not throw.
   */
  readonly call: (
    name: string,
    speculative: boolean,
    ok: (value: T) => void,
    fail: (err: unknown) => void,
  ) => void;
  /** After this many ms without an answer, every replica not asked yet is asked. */
  readonly speculateMs: number;
  readonly onSpeculate: () => void;
  readonly what: string;
}

/**
 * One call oneMore made: its outcome once in, and a promise of it for those that wait for it
 * (read repair's late answers), made only when asked for. A rejected one is marked handled, as
 * oneMore's own reaction marked every call before: who asks for it attaches what it needs.
 */
export class OneMoreCall<T> {
  readonly name: string;
  #settled: 'no' | 'ok' | 'failed' = 'no';
  #value: T | undefined;
  #err: unknown;
  #promise: Promise<T> | null = null;
  #resolve: ((value: T) => void) | null = null;
  #reject: ((err: unknown) => void) | null = null;

  constructor(name: string) {
    this.name = name;
  }

  get promise(): Promise<T> {
    if (this.#promise !== null) return this.#promise;
    if (this.#settled === 'ok') this.#promise = Promise.resolve(this.#value as T);
    else if (this.#settled === 'failed') this.#promise = Promise.reject(this.#err);
    else {
      const { promise, resolve, reject } = Promise.withResolvers<T>();
      [this.#promise, this.#resolve, this.#reject] = [promise, resolve, reject];
    }
    this.#promise.catch(() => {});
    return this.#promise;
  }

  ok(value: T): void {
    [this.#settled, this.#value] = ['ok', value];
    this.#resolve?.(value);
  }

  failed(err: unknown): void {
    [this.#settled, this.#err] = ['failed', err];
    this.#reject?.(err);
  }
}

/** The answer that completed a oneMore quorum, and every call it made (for read repair). */
export interface OneMoreResult<T> {
  readonly name: string;
  readonly value: T;
  /** Every call made, in the order made; `name`'s among them. */
  readonly calls: readonly OneMoreCall<T>[];
}

/**
 * targetedQuorum with `need` 2 when this node is a replica and its answer is already in hand
 * (read synchronously): asks `order`'s first replica, the next one on each failure, and all
 * those not asked yet when `speculateMs` pass without an answer; `done` gets the first success.
 * `failed` gets KV_ERR_UNAVAILABLE, as targetedQuorum rejects with (this node counted among the
 * replicas that could answer), once every replica of `order` failed. Exactly one of them is
 * called, once, in the callback of the call that decided it (or at once with no replica to ask).
 * The same behaviour for the common read (R=2, this node an owner) as targetedQuorum, without
 * its maps and without a promise.
 */
export function oneMore<T>(
  t: OneMoreAsk<T>,
  done: (result: OneMoreResult<T>) => void,
  failed: (err: KvError) => void,
): void {
  const calls: OneMoreCall<T>[] = [];
  let why: Map<string, string> | null = null;
  let next = 0;
  let over = false;
  let timer: Deadline | undefined;
  const ask = (name: string, speculative = false) => {
    const call = new OneMoreCall<T>(name);
    calls.push(call);
    t.call(
      name,
      speculative,
      (value) => {
        call.ok(value);
        if (over) return;
        over = true;
        cancel(timer);
        done({ name, value, calls });
      },
      (err: unknown) => {
        call.failed(err);
        if (over) return;
        why ??= new Map();
        why.set(name, err instanceof KvError ? wireCode(err.code).toLowerCase() : 'error');
        if (next < t.order.length) {
          ask(t.order[next++]!);
        } else if (why.size === t.order.length) {
          over = true;
          cancel(timer);
          failed(unavailable(t.what, 1, 2, why));
        }
      },
    );
  };
  if (t.order.length === 0) {
    failed(unavailable(t.what, 1, 2, new Map()));
    return;
  }
  ask(t.order[next++]!);
  if (next < t.order.length && !over) {
    timer = speculateLater(t, () => {
      if (over || next >= t.order.length) return false;
      while (next < t.order.length) ask(t.order[next++]!, true);
      return true;
    });
  }
}

/**
 * A key's owners in the settled ring as a coordinator counts them while data moves (Placement).
 */
export interface SettledCount {
  /** Owners that hold the key (Placement.settled). */
  readonly holders: number;
  /**
   * Owners recorded lost and not seen handing their data off to this node's target ring
   * (Placement.lostOwners).
   */
  readonly lost: number;
  /**
   * Of `lost`, those that may still answer a read with what they held: not known to be back on a
   * new data directory (Placement.lostMayAnswer).
   */
  readonly mayAnswer: number;
  /** All the key's owners in the settled ring: holders, lost ones, and those handed off. */
  readonly owners: number;
}

/**
 * Whether a key's settled holders still vouch for every acknowledged write, for a read or a write
 * (`what`) made now. `holders` of its settled owners hold it, and `lost` others are recorded lost
 * without having handed their data off to this node's target ring (a new data directory, a name
 * back empty, or a hand-off to another target ring): what they took cannot be read from them,
 * nor is it known to be in the target ring. (Owners that handed off to this node's target ring
 * are left out: all they held is there, where the read asks a quorum too.)
 * - A read: with n = holders + lost, a write acknowledged while all n held the key reached
 *   min(W, n) of them, the lost ones perhaps among them, and the read asks min(R, holders) of the
 *   rest; every pair meets when min(W, n) + min(R, holders) > n (a write that saw fewer holders
 *   only makes it easier).
 * - A write reaches min(W, holders), and must meet the read of a member that has not recorded
 *   the losses yet, which asks min(R, m) of the m = holders + mayAnswer owners that can answer
 *   it: a lost owner back on a new data directory refuses reads that expect the recorded one, but
 *   a decommissioned owner answers with what it held (it answers a member that reads the ring
 *   without it too). So min(W, holders) + min(R, m) > m; when m is 0, no read counts on the
 *   settled owners (a member that recorded the losses refuses it, one that did not cannot meet
 *   its quorum there), and the write is taken. A member that recorded some losses only reads
 *   fewer lost owners: no worse.
 * Otherwise the target ring's owners are all that is left, and which of them took a write depends
 * on the target ring of the member that made it, which may differ from this node's (chaos seed
 * 32020: a stale value read back over three acknowledged writes). Nothing lost, or quorums that
 * do not overlap on the key's owners (R + W <= owners): always true.
 */
export function settledVouches(
  what: 'read' | 'write',
  c: SettledCount,
  readQuorum: number,
  writeQuorum: number,
): boolean {
  // Quorums that do not meet on the key's owners (R + W <= owners: --read-quorum and
  // --write-quorum chosen for availability, spec.allowStaleReads) promise no read every
  // acknowledged write, lost owners or not: such a cluster is not refused for them either.
  if (c.lost === 0 || readQuorum + writeQuorum <= c.owners) return true;
  const { holders } = c;
  if (what === 'read') {
    const n = holders + c.lost;
    return Math.min(writeQuorum, n) + Math.min(readQuorum, holders) > n;
  }
  const m = holders + c.mayAnswer;
  return m === 0 || Math.min(writeQuorum, holders) + Math.min(readQuorum, m) > m;
}

/**
 * For a write settledVouches refuses: how many of the lost owners that may answer and are in the
 * writer's target ring (`inTarget` of `c.mayAnswer`) must acknowledge it for the holders to vouch
 * after all; null when not even all of them would do. Such an owner took the write on the
 * directory it runs on: a member that has not recorded the loss reads the write from it, or is
 * refused (another directory than the recorded one, or the recorded one while its own ring
 * records it lost: ReplicaHandlerOptions.lostAt), never an older value. It counts as an owner
 * that holds the write or is left out of the reader's pool: the bound of settledVouches with
 * mayAnswer less the acknowledgements.
 */
export function writeAcksNeeded(
  c: SettledCount,
  inTarget: number,
  readQuorum: number,
  writeQuorum: number,
): number | null {
  for (let k = 1; k <= Math.min(inTarget, c.mayAnswer); k++) {
    const counted = { ...c, mayAnswer: c.mayAnswer - k };
    if (settledVouches('write', counted, readQuorum, writeQuorum)) return k;
  }
  return null;
}

/**
 * KV_ERR_UNAVAILABLE for a read or write of a key whose holders do not vouch (settledVouches),
 * refused before any replica was asked: a refused write was written nowhere.
 */
export function unvouched(what: 'read' | 'write', c: SettledCount): KvError {
  const handed = c.owners - c.holders - c.lost;
  const refilled = what === 'write' ? c.lost - c.mayAnswer : 0;
  const back = refilled > 0 ? `, ${refilled} back on a new data directory` : '';
  const off = `${back}${handed > 0 ? `, ${handed} handed off to this node's target ring` : ''}`;
  const lost = what === 'read' ? c.lost : c.mayAnswer;
  const kind =
    what === 'read'
      ? 'recorded lost (a new data directory, or a hand-off this node did not see to its target ring)'
      : 'recorded lost and may still answer reads with what they held (a hand-off this node did not see to its target ring)';
  const undone = what === 'write' ? '; the key was not written' : '';
  return new KvError(
    'KV_ERR_UNAVAILABLE',
    `replication: ${what} refused: ${lost} of the key's ${c.owners} settled owners are ${kind}${off}, so the ${c.holders} holding it cannot vouch for every acknowledged write${undone}; retry once the ring settles`,
  );
}
