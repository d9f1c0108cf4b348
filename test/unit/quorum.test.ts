import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  type OneMoreResult,
  oneMore,
  settledVouches,
  targetedQuorum,
  writeAcksNeeded,
  writeQuorum,
} from '../../src/coordinator/quorum.ts';
import { KvError } from '../../src/errors/index.ts';

/** Replicas whose answers the test hands out one by one. */
function replicas() {
  const asked: string[] = [];
  const pending = new Map<string, { ok: (v: string) => void; fail: (e: Error) => void }>();
  return {
    asked,
    call: (name: string) =>
      new Promise<string>((ok, fail) => {
        asked.push(name);
        pending.set(name, { ok, fail });
      }),
    answer: (name: string) => pending.get(name)!.ok(`v@${name}`),
    fail: (name: string) =>
      pending.get(name)!.fail(new KvError('KV_ERR_PEER_TIMEOUT', `${name} timed out`)),
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('targetedQuorum', () => {
  it('asks only the quorum first and answers from it', async () => {
    const r = replicas();
    let speculated = 0;
    const done = targetedQuorum({
      order: ['a', 'b', 'c'],
      need: 2,
      call: r.call,
      speculateMs: 60_000,
      onSpeculate: () => speculated++,
      what: 'read quorum',
    });
    expect(r.asked).toEqual(['a', 'b']);
    r.answer('b');
    r.answer('a');
    const { ok, calls } = await done;
    expect([...ok.keys()].sort()).toEqual(['a', 'b']);
    expect([...calls.keys()]).toEqual(['a', 'b']);
    expect(r.asked).toEqual(['a', 'b']);
    expect(speculated).toBe(0);
  });

  it('asks the next replica for each one that fails, and fails when too few are left', async () => {
    const r = replicas();
    const done = targetedQuorum({
      order: ['a', 'b', 'c'],
      need: 2,
      call: r.call,
      speculateMs: 60_000,
      onSpeculate: () => {},
      what: 'read quorum',
    });
    r.fail('b');
    await tick();
    expect(r.asked).toEqual(['a', 'b', 'c']);
    r.answer('a');
    r.fail('c');
    await expect(done).rejects.toThrow(
      'replication: read quorum 1/2 (b: peer_timeout, c: peer_timeout)',
    );
  });

  it('asks every other replica once the quorum is late, and takes whichever answer first', async () => {
    const r = replicas();
    let speculated = 0;
    const done = targetedQuorum({
      order: ['a', 'b', 'c', 'd'],
      need: 2,
      call: r.call,
      speculateMs: 5,
      onSpeculate: () => speculated++,
      what: 'read quorum',
    });
    r.answer('a'); // b, paused, never answers
    await expect.poll(() => r.asked).toEqual(['a', 'b', 'c', 'd']);
    expect(speculated).toBe(1);
    r.answer('d');
    const { ok, calls } = await done;
    expect([...ok.keys()].sort()).toEqual(['a', 'd']);
    expect([...calls.keys()]).toEqual(['a', 'b', 'c', 'd']);
  });

  it('never speculates when it already asked every replica', async () => {
    vi.useFakeTimers();
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const r = replicas();
    let speculated = 0;
    const done = targetedQuorum({
      order: ['a', 'b'],
      need: 2,
      call: r.call,
      speculateMs: 1,
      onSpeculate: () => speculated++,
      what: 'read quorum',
    });
    expect(vi.getTimerCount()).toBe(0);
    vi.runAllTimers();
    r.answer('a');
    r.answer('b');
    await done;
    expect(speculated).toBe(0);
  });

  it('speculates each read after its own delay, and never one that already has its quorum', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const speculated: string[] = [];
    const read = (id: string) => {
      const r = replicas();
      const done = targetedQuorum({
        order: ['a', 'b', 'c'],
        need: 2,
        call: r.call,
        speculateMs: 50,
        onSpeculate: () => speculated.push(id),
        what: 'read quorum',
      });
      return { r, done };
    };
    const first = read('first');
    await vi.advanceTimersByTimeAsync(30);
    const second = read('second');
    const third = read('third');
    await vi.advanceTimersByTimeAsync(10);
    third.r.answer('a');
    third.r.answer('b');
    await third.done;
    await vi.advanceTimersByTimeAsync(9); // 49 ms after the first
    await tick();
    expect(speculated).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await tick(); // the deadlines run in the check phase after their timer fired
    expect(speculated).toEqual(['first']);
    expect(first.r.asked).toEqual(['a', 'b', 'c']);
    expect(second.r.asked).toEqual(['a', 'b']);
    await vi.advanceTimersByTimeAsync(30); // 50 ms after the second and the third
    await tick();
    expect(speculated).toEqual(['first', 'second']);
    expect(second.r.asked).toEqual(['a', 'b', 'c']);
    // Nothing left to wait for: no timer stays armed.
    expect(vi.getTimerCount()).toBe(0);
    for (const { r, done } of [first, second]) {
      r.answer('c');
      r.answer('a');
      await done;
    }
  });
});

/** oneMore of `order`, named `read quorum`, its outcome as a promise. */
function second(
  order: string[],
  call: (name: string) => Promise<string>,
  speculateMs: number,
  onSpeculate: () => void = () => {},
): Promise<OneMoreResult<string>> {
  return new Promise((resolve, reject) => {
    const ask = (
      name: string,
      _speculative: boolean,
      ok: (v: string) => void,
      fail: (e: unknown) => void,
    ) => {
      call(name).then(ok, fail);
    };
    oneMore({ order, call: ask, speculateMs, onSpeculate, what: 'read quorum' }, resolve, reject);
  });
}

// oneMore is targetedQuorum with need 2 and this node's own answer in hand: the same asks, in
// the same order, on the same failures and delays, for the other replicas.
describe('oneMore', () => {
  it('asks only the first other replica and answers from it', async () => {
    const r = replicas();
    let speculated = 0;
    const done = second(['b', 'c'], r.call, 60_000, () => speculated++);
    expect(r.asked).toEqual(['b']);
    r.answer('b');
    const { name, value, calls } = await done;
    expect([name, value]).toEqual(['b', 'v@b']);
    expect(calls.map((c) => c.name)).toEqual(['b']);
    expect(r.asked).toEqual(['b']);
    expect(speculated).toBe(0);
  });

  it('asks the next replica for each one that fails, and fails when none is left', async () => {
    const r = replicas();
    const done = second(['b', 'c'], r.call, 60_000);
    r.fail('b');
    await tick();
    expect(r.asked).toEqual(['b', 'c']);
    r.fail('c');
    await expect(done).rejects.toThrow(
      'replication: read quorum 1/2 (b: peer_timeout, c: peer_timeout)',
    );
  });

  it('answers from the next replica after a failure', async () => {
    const r = replicas();
    const done = second(['b', 'c', 'd'], r.call, 60_000);
    r.fail('b');
    await tick();
    r.answer('c');
    const { name, calls } = await done;
    expect(name).toBe('c');
    expect(calls.map((c) => c.name)).toEqual(['b', 'c']);
    expect(r.asked).toEqual(['b', 'c']);
  });

  it('fails at once with no other replica to ask', async () => {
    await expect(second([], () => Promise.resolve('x'), 1)).rejects.toThrow(
      'replication: read quorum 1/2 (replicas down)',
    );
  });

  it('asks every other replica once the answer is late, and takes whichever answers first', async () => {
    const r = replicas();
    let speculated = 0;
    const done = second(['b', 'c', 'd'], r.call, 5, () => speculated++);
    // b, paused, never answers
    await expect.poll(() => r.asked).toEqual(['b', 'c', 'd']);
    expect(speculated).toBe(1);
    r.fail('c');
    await tick();
    r.answer('d');
    const { name, calls } = await done;
    expect(name).toBe('d');
    expect(calls.map((c) => c.name)).toEqual(['b', 'c', 'd']);
    expect(speculated).toBe(1);
  });

  it('arms no timer with one other replica, and leaves none armed once answered', async () => {
    vi.useFakeTimers();
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const one = replicas();
    const alone = second(['b'], one.call, 1);
    expect(vi.getTimerCount()).toBe(0);
    one.answer('b');
    await alone;
    const two = replicas();
    const late = second(['b', 'c'], two.call, 50);
    expect(vi.getTimerCount()).toBe(1);
    two.answer('b');
    await late;
    expect(vi.getTimerCount()).toBe(0);
    expect(two.asked).toEqual(['b']);
  });
  it('arms one timer for the reads made together, and speculates each one still unanswered', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const spec: string[] = [];
    const reads = ['x', 'y', 'z'].map((id) => {
      const r = replicas();
      return { r, done: second(['b', 'c'], r.call, 20, () => spec.push(id)) };
    });
    expect(vi.getTimerCount()).toBe(1);
    reads[1]!.r.answer('b');
    await reads[1]!.done;
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    await tick();
    expect(spec).toEqual(['x', 'z']);
    expect(reads.map(({ r }) => r.asked)).toEqual([['b', 'c'], ['b'], ['b', 'c']]);
    for (const { r, done } of [reads[0]!, reads[2]!]) {
      r.answer('c');
      expect((await done).name).toBe('c');
    }
    // A read made later has its own delay, from when it was made.
    await vi.advanceTimersByTimeAsync(5);
    const later = replicas();
    const late = second(['b', 'c'], later.call, 20, () => spec.push('later'));
    await vi.advanceTimersByTimeAsync(19);
    await tick();
    expect(later.asked).toEqual(['b']);
    await vi.advanceTimersByTimeAsync(1);
    await tick();
    expect(later.asked).toEqual(['b', 'c']);
    later.answer('b');
    await late;
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not speculate a read whose answer arrived in time but waited in the socket behind a long turn', async () => {
    // The other owner's answer is in the kernel's socket buffer before the delay is over, but
    // this process's turn runs past it (a busy coordinator): Node then finds the timer due and
    // the socket readable in the same loop iteration, and runs timers first.
    const server = createServer();
    onTestFinished(() => {
      server.close();
    });
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = connect(port, '127.0.0.1');
    onTestFinished(() => {
      client.destroy();
    });
    await new Promise((resolve) => client.once('connect', resolve));
    const replica = await accepted;
    onTestFinished(() => {
      replica.destroy();
    });
    const asked: string[] = [];
    const speculated: string[] = [];
    const done = new Promise<OneMoreResult<string>>((resolve, reject) => {
      oneMore<string>(
        {
          order: ['b', 'c'],
          call: (name, _speculative, ok) => {
            asked.push(name);
            // b answers over the socket; c (asked only by speculation) never does.
            if (name === 'b') client.once('data', (d) => ok(d.toString()));
          },
          speculateMs: 5,
          onSpeculate: () => speculated.push('read'),
          what: 'read quorum',
        },
        resolve,
        reject,
      );
    });
    replica.write('v@b'); // on loopback: in the client's receive buffer at once
    const until = performance.now() + 30;
    while (performance.now() < until) {} // the rest of a long turn
    expect((await done).value).toBe('v@b');
    await tick();
    expect(asked).toEqual(['b']);
    expect(speculated).toEqual([]);
  });

  it('keeps every call made, with a promise of its outcome for answers that come later', async () => {
    const r = replicas();
    const done = second(['b', 'c', 'd'], r.call, 5);
    await expect.poll(() => r.asked).toEqual(['b', 'c', 'd']);
    r.answer('c');
    const { name, calls } = await done;
    expect(name).toBe('c');
    const [b, c, d] = calls.map((call) => call.promise);
    await expect(c).resolves.toBe('v@c');
    r.answer('b');
    r.fail('d');
    await expect(b).resolves.toBe('v@b');
    await expect(d).rejects.toThrow('d timed out');
  });

  it('answers in the callback of an answer given at once, and arms no timer for it', () => {
    vi.useFakeTimers();
    onTestFinished(() => {
      vi.useRealTimers();
    });
    let got: OneMoreResult<string> | null = null;
    oneMore<string>(
      {
        order: ['b', 'c'],
        call: (name, _speculative, ok) => ok(`v@${name}`),
        speculateMs: 5,
        onSpeculate: () => {},
        what: 'read quorum',
      },
      (result) => {
        got = result;
      },
      () => {},
    );
    expect(got).toMatchObject({ name: 'b', value: 'v@b' });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('writeQuorum', () => {
  /** A write quorum over `names` whose outcome the test reads without awaiting it. */
  function write(names: string[], groups: { members: string[]; need: number }[]) {
    const r = replicas();
    const hinted: string[] = [];
    let outcome: 'pending' | 'ok' | string = 'pending';
    const done = writeQuorum(names, groups, 'write quorum', r.call, (n) => hinted.push(n));
    done.then(
      () => {
        outcome = 'ok';
      },
      (err: Error) => {
        outcome = err.message;
      },
    );
    return { r, hinted, outcome: () => outcome, done };
  }

  it('asks every replica at once and answers OK as soon as a group has its count', async () => {
    const w = write(['a', 'b', 'c'], [{ members: ['a', 'b', 'c'], need: 2 }]);
    expect(w.r.asked).toEqual(['a', 'b', 'c']);
    w.r.answer('c');
    await tick();
    expect(w.outcome()).toBe('pending');
    w.r.answer('a');
    await tick();
    expect(w.outcome()).toBe('ok');
  });

  it('hints every replica that fails, also after the quorum answered', async () => {
    const w = write(['a', 'b', 'c'], [{ members: ['a', 'b', 'c'], need: 2 }]);
    w.r.fail('b');
    w.r.answer('a');
    w.r.answer('c');
    await w.done;
    expect(w.hinted).toEqual(['b']);
    const late = write(['a', 'b', 'c'], [{ members: ['a', 'b', 'c'], need: 2 }]);
    late.r.answer('a');
    late.r.answer('b');
    await late.done;
    late.r.fail('c');
    await tick();
    expect(late.hinted).toEqual(['c']);
  });

  it('fails as soon as a group can no longer reach its count, naming the failures', async () => {
    const w = write(['a', 'b', 'c'], [{ members: ['a', 'b', 'c'], need: 2 }]);
    w.r.fail('a');
    await tick();
    expect(w.outcome()).toBe('pending');
    w.r.fail('c');
    await tick();
    expect(w.outcome()).toBe('replication: write quorum 1/2 (a: peer_timeout, c: peer_timeout)');
    w.r.answer('b');
    await tick();
    expect(w.hinted).toEqual(['a', 'c']);
  });

  it('needs the count in every group while data moves, a member counting in each it is in', async () => {
    // Target ring a, b, d; settled ring a, b, c: a and b count in both.
    const groups = [
      { members: ['a', 'b', 'd'], need: 2 },
      { members: ['a', 'b', 'c'], need: 2 },
    ];
    const w = write(['a', 'b', 'c', 'd'], groups);
    w.r.answer('a');
    w.r.answer('d');
    await tick();
    expect(w.outcome()).toBe('pending'); // the settled ring has only a
    w.r.answer('c');
    await tick();
    expect(w.outcome()).toBe('ok');
    const lost = write(['a', 'b', 'c', 'd'], groups);
    lost.r.answer('a');
    lost.r.fail('b');
    lost.r.fail('c');
    await tick();
    expect(lost.outcome()).toBe('replication: write quorum 1/2 (b: peer_timeout, c: peer_timeout)');
  });

  it('counts a call that throws as a failure', async () => {
    const hinted: string[] = [];
    const done = writeQuorum(
      ['a', 'b'],
      [{ members: ['a', 'b'], need: 2 }],
      'write quorum',
      (n) => {
        if (n === 'b') throw new Error('boom');
        return Promise.resolve();
      },
      (n) => hinted.push(n),
    );
    await expect(done).rejects.toThrow('replication: write quorum 1/2 (b: error)');
    expect(hinted).toEqual(['b']);
  });

  it('fails at once when a group has fewer members asked than it needs', async () => {
    const w = write(['a'], [{ members: ['a', 'b'], need: 2 }]);
    await tick();
    expect(w.outcome()).toBe('replication: write quorum 1/2 (replicas down)');
  });
});

/** The subsets of `set` (a bit mask) with `size` members. */
function subsets(set: number, size: number): number[] {
  const out: number[] = [];
  for (let m = set; ; m = (m - 1) & set) {
    if (bits(m) === size) out.push(m);
    if (m === 0) return out;
  }
}

/**
 * Whether every write acknowledged by a quorum of the holders it saw meets every read quorum of
 * the holders its reader sees, the lost owners answering with what they held: owners
 * 0..holders-1 of `n` hold the key now, the others are recorded lost. A reader now, after writes
 * that saw the holders now and any of the lost ones.
 */
function readMeets(n: number, holders: number, r: number, w: number) {
  const now = (1 << holders) - 1;
  const lost = ((1 << n) - 1) & ~now;
  for (let size = 0; size <= n - holders; size++) {
    for (const gone of subsets(lost, size)) {
      const then = now | gone;
      for (const ws of subsets(then, Math.min(w, bits(then))))
        for (const rs of subsets(now, Math.min(r, bits(now)))) if ((ws & rs) === 0) return false;
    }
  }
  return true;
}

/**
 * Whether a write now, acknowledged by a write quorum of the holders, meets every read of a
 * member that has recorded any part of the losses (none, some, all): owners 0..holders-1 of `n`
 * hold the key, the next `answering` are lost but answer with what they held (a decommissioned
 * owner's old copy), the rest are back on new directories and refuse reads that expect the
 * recorded one. Such a reader asks the holders and the lost owners it has not recorded and needs
 * a read quorum of them; one whose group is empty (it recorded every loss, and no holder is left)
 * refuses the read for the losses.
 */
function writeMeets(
  n: number,
  holders: number,
  answering: number,
  r: number,
  w: number,
  acked = 0,
) {
  const held = (1 << holders) - 1;
  const lost = ((1 << n) - 1) & ~held;
  const answers = ((1 << (holders + answering)) - 1) & ~held;
  // The first `acked` of the answering lost owners took the write (as target owners): each
  // answers a reader with it, or refuses the reader (another directory, or the recorded one while
  // its own ring records it lost); never with an older value.
  const took = ((1 << (holders + acked)) - 1) & ~held;
  for (let size = 0; size <= n - holders; size++) {
    for (const unrecorded of subsets(lost, size)) {
      const need = Math.min(r, bits(held | unrecorded));
      if (need === 0) continue;
      for (let t = 0; t <= acked; t++) {
        for (const tookAnswering of subsets(took, t)) {
          const pool = held | (unrecorded & ((answers & ~took) | tookAnswering));
          if (bits(pool) < need) continue;
          for (const ws of subsets(held, Math.min(w, holders)))
            for (const rs of subsets(pool, need))
              if ((ws & rs) === 0 && (rs & took) === 0) return false;
        }
      }
    }
  }
  return true;
}

function bits(m: number): number {
  let count = 0;
  for (let x = m; x > 0; x &= x - 1) count++;
  return count;
}

/** settledVouches for a key with no owner handed off to this node's target ring. */
const vouches = (
  what: 'read' | 'write',
  holders: number,
  lost: number,
  r: number,
  w: number,
  mayAnswer = lost,
) => settledVouches(what, { holders, lost, mayAnswer, owners: holders + lost }, r, w);

describe('settledVouches', () => {
  it('is true exactly when every acknowledged write meets every read quorum, for 1 to 5 owners', () => {
    let refused = 0;
    let checked = 0;
    for (let n = 1; n <= 5; n++)
      for (let r = 1; r <= n; r++)
        for (let w = 1; w <= n; w++) {
          if (r + w <= n) continue;
          for (let lost = 0; lost <= n; lost++) {
            const h = n - lost;
            const read = readMeets(n, h, r, w);
            expect(vouches('read', h, lost, r, w), `read n${n} r${r} w${w} lost${lost}`).toBe(read);
            checked++;
            if (!read) refused++;
            for (let answering = 0; answering <= lost; answering++) {
              const write = writeMeets(n, h, answering, r, w);
              const got = vouches('write', h, lost, r, w, answering);
              expect(got, `write n${n} r${r} w${w} lost${lost} answering${answering}`).toBe(write);
              checked++;
              if (!write) refused++;
            }
          }
        }
    expect(checked).toBeGreaterThan(400);
    expect(refused).toBeGreaterThan(0);
  });

  it('takes a refused write once enough lost owners in the target acknowledged it, exactly when every read meets it', () => {
    // writeAcksNeeded: the fewest acknowledgements of lost owners that may answer and are in the
    // writer's target ring that make the write vouched; checked against every reader, every
    // write set of the holders, and every split of the lost owners that took it into those that
    // answer with it and those that refuse.
    let taken = 0;
    let checked = 0;
    for (let n = 1; n <= 5; n++)
      for (let r = 1; r <= n; r++)
        for (let w = 1; w <= n; w++) {
          if (r + w <= n) continue;
          for (let lost = 1; lost <= n; lost++) {
            const h = n - lost;
            for (let answering = 1; answering <= lost; answering++) {
              if (writeMeets(n, h, answering, r, w)) continue;
              const c = { holders: h, lost, mayAnswer: answering, owners: n };
              for (let inTarget = 0; inTarget <= answering; inTarget++) {
                const k = writeAcksNeeded(c, inTarget, r, w);
                const at = `n${n} r${r} w${w} lost${lost} answering${answering} inTarget${inTarget}`;
                // The fewest that meet every read: none of fewer does, k does.
                let fewest: number | null = null;
                for (let a = 1; a <= inTarget && fewest === null; a++)
                  if (writeMeets(n, h, answering, r, w, a)) fewest = a;
                expect(k, at).toBe(fewest);
                checked++;
                if (k !== null) taken++;
              }
            }
          }
        }
    expect(checked).toBeGreaterThan(100);
    expect(taken).toBeGreaterThan(0);
    // RF 3, W 3, R 1, the lost owner not known to be refilled (its hello not in yet): taken once it
    // acknowledged; RF 3, R = W = 2 with two lost that may answer: one of them is not enough.
    expect(writeAcksNeeded({ holders: 2, lost: 1, mayAnswer: 1, owners: 3 }, 1, 1, 3)).toBe(1);
    expect(writeAcksNeeded({ holders: 1, lost: 2, mayAnswer: 2, owners: 3 }, 2, 2, 2)).toBe(1);
    expect(writeAcksNeeded({ holders: 2, lost: 1, mayAnswer: 1, owners: 3 }, 0, 1, 3)).toBe(null);
  });

  it('takes a write whose lost owners are all back on new directories, whatever R and W', () => {
    // RF 3, W = 3, R = 1 (and RF 2, W = 2, R = 1): one lost volume refused every write of its
    // keys until the refill ended, though the lost owner refuses every read that expects its
    // old directory and takes the write itself as a target owner.
    expect(vouches('write', 2, 1, 1, 3, 0)).toBe(true);
    expect(vouches('write', 1, 1, 1, 2, 0)).toBe(true);
    expect(vouches('write', 0, 1, 1, 1, 0)).toBe(true);
    // A decommissioned owner not seen handing off to this node's target may answer: refused.
    expect(vouches('write', 2, 1, 1, 3, 1)).toBe(false);
  });

  it('refuses nothing for quorums that do not overlap (R + W <= owners): they promise no read every write', () => {
    for (const what of ['read', 'write'] as const)
      for (let lost = 0; lost <= 3; lost++) {
        expect(vouches(what, 3 - lost, lost, 1, 1), `${what} lost${lost}`).toBe(true);
        expect(vouches(what, 3 - lost, lost, 1, 2), `${what} lost${lost}`).toBe(true);
      }
    // Also when an owner handed off to this node's target ring is left out of the count: 3
    // owners, R = 1 and W = 2 promise no overlap, whatever the lost one may answer.
    for (const what of ['read', 'write'] as const) {
      const c = { holders: 1, lost: 1, mayAnswer: 1, owners: 3 };
      expect(settledVouches(what, c, 1, 2), what).toBe(true);
    }
  });

  it('vouches with one of three owners lost, not with two or three, at R = W = 2', () => {
    for (const what of ['read', 'write'] as const) {
      expect(vouches(what, 2, 1, 2, 2)).toBe(true);
      expect(vouches(what, 1, 2, 2, 2)).toBe(false);
      expect(vouches(what, 0, 3, 2, 2)).toBe(false);
    }
  });
});
