// The "member lists differ" error: for member lists that differ in configuration, not while an
// address is not named yet or a member is kept unlisted for the grace.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  listsDiffer,
  MembershipCheck,
  type MemberView,
  readHello,
} from '../../src/membership/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { captureLog } from '../helpers/log-capture.ts';

const view = (name: string, self: boolean, listed: string[], unnamed = 0): MemberView => ({
  name,
  self,
  host: name,
  peerPort: 7946,
  state: 'up',
  hello: {
    name,
    status: 'active',
    listed,
    ...(unnamed > 0 ? { unnamed } : {}),
  } as unknown as HelloReply,
  lastContact: 0,
});

/**
 * n0's check, bound 1 s, over `members`; returns the error lines after two checks 2 s apart,
 * every other member heard before each.
 */
function differences(o: {
  names: string[];
  unlisted?: string[];
  unnamed?: number;
  others: MemberView[];
}) {
  const log = captureLog();
  let heard = 0;
  const check = new MembershipCheck({
    members: () => [
      view('n0', true, o.names),
      ...o.others.map((m) => ({ ...m, lastContact: heard })),
    ],
    names: () => o.names,
    unlisted: () => o.unlisted ?? [],
    unnamed: () => o.unnamed ?? 0,
    boundMs: 1000,
    logger: log.logger,
    registry: new Registry(),
  });
  for (const now of [10_000, 12_000]) {
    heard = now;
    check.update(now);
  }
  return {
    errors: log.records().filter((r) => String(r.msg).startsWith('member lists differ')),
    differing: check.differing(),
  };
}

describe('member lists compared', () => {
  it('do not differ while this node keeps a member its source no longer lists (the grace)', () => {
    // n0 keeps n3 (unlisted, its last status missed); n1 dropped it, n2 is of an older version
    // and lists what it keeps as well.
    const { errors, differing } = differences({
      names: ['n0', 'n1', 'n2', 'n3'],
      unlisted: ['n3'],
      others: [view('n1', false, ['n0', 'n1', 'n2']), view('n2', false, ['n0', 'n1', 'n2', 'n3'])],
    });
    expect(errors).toEqual([]);
    expect(differing).toEqual({});
  });

  it('do not differ while another member keeps one its source no longer lists, of either version', () => {
    // n1 keeps n3 and lists it, as a node of an older version does, naming it in `kept`; n0
    // dropped it. An older node (n0 compares `listed` as it is, keeping n3 as well) sees the
    // same list as its own: hellos list what they keep.
    const n1 = view('n1', false, ['n0', 'n1', 'n2', 'n3']);
    const withKept = { ...n1, hello: { ...n1.hello!, kept: ['n3'] } };
    expect(differences({ names: ['n0', 'n1', 'n2'], others: [withKept] }).errors).toEqual([]);
    expect(differences({ names: ['n0', 'n1', 'n2'], others: [n1] }).errors).toHaveLength(1);
    const ours = { names: ['n0', 'n1', 'n2'], unlisted: [], unnamed: 0 };
    expect(listsDiffer(ours, ['n0', 'n1', 'n2', 'n3'], 0, ['n3'])).toBe(false);
    // What it keeps covers only those names.
    expect(listsDiffer(ours, ['n0', 'n1', 'n3', 'n4'], 0, ['n3'])).toBe(true);
    // Read as probes read it: sorted, each name once; anything else is no `kept`.
    const base = { name: 'n1', status: 'active', ringId: '', rebalanced: null };
    expect(readHello({ ...base, kept: ['n4', 'n3', 'n3'] }).kept).toEqual(['n3', 'n4']);
    expect(readHello({ ...base, kept: ['n3', 7] }).kept).toBeUndefined();
  });

  it('do not differ while an address is not named yet, on either side', () => {
    // n0's source lists an address it could not name (n3 has not said who it is to n0); n1 named
    // it. And n2 has not named one that n0 knows as n3.
    const { errors } = differences({
      names: ['n0', 'n1', 'n2'],
      unnamed: 1,
      others: [view('n1', false, ['n0', 'n1', 'n2', 'n3'])],
    });
    expect(errors).toEqual([]);
    const other = differences({
      names: ['n0', 'n1', 'n2', 'n3'],
      others: [view('n2', false, ['n0', 'n1', 'n2'], 1)],
    });
    expect(other.errors).toEqual([]);
  });

  it('differ when a member lists another member than this node, every address named', () => {
    // n1 was started with another --peers (n9 instead of n2).
    const { errors, differing } = differences({
      names: ['n0', 'n1', 'n2'],
      others: [view('n1', false, ['n0', 'n1', 'n9'])],
    });
    expect(differing).toEqual({ n1: ['n0', 'n1', 'n9'] });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(
      /^member lists differ: n1 lists n0,n1,n9; this node lists n0,n1,n2/,
    );
    // Two names more than the addresses not named: still a difference.
    expect(listsDiffer({ names: ['n0'], unlisted: [], unnamed: 1 }, ['n0', 'n1', 'n2'], 0)).toBe(
      true,
    );
    expect(listsDiffer({ names: ['n0', 'n1', 'n2'], unlisted: [], unnamed: 0 }, ['n0'], 1)).toBe(
      true,
    );
  });
});

describe('a difference lasts', () => {
  /**
   * n0's check, bound 8 s, with n0 listing n0,n1 (n2 just left its source) and n1 whose list
   * and last hello's receipt (`heard`) the test sets, as `paused` (n0's own pauses, ms).
   */
  function check() {
    const log = captureLog();
    const n1 = { listed: ['n0', 'n1', 'n2'], heard: 0 };
    let paused = 0;
    const c = new MembershipCheck({
      members: () => [
        view('n0', true, ['n0', 'n1']),
        { ...view('n1', false, n1.listed), lastContact: n1.heard },
      ],
      names: () => ['n0', 'n1'],
      paused: () => paused,
      boundMs: 8000,
      logger: log.logger,
      registry: new Registry(),
    });
    return {
      n1,
      update: (now: number) => c.update(now),
      pause: (ms: number) => {
        paused += ms;
      },
      errors: () => log.records().filter((r) => String(r.msg).startsWith('member lists differ')),
      differing: () => c.differing(),
    };
  }

  /** n1 heard every second from `from`, still listing n2: reported at `at`, not before. */
  function expectReportedAt(c: ReturnType<typeof check>, from: number, at: number) {
    for (let now = from; now < at; now += 1000) {
      c.n1.heard = now;
      c.update(now);
    }
    expect(c.errors()).toEqual([]);
    c.n1.heard = at;
    c.update(at);
    expect(c.differing()).toEqual({ n1: ['n0', 'n1', 'n2'] });
    expect(c.errors()).toHaveLength(1);
  }

  it('only as long as hellos received since it began show it', () => {
    // Chaos 35104-d: n0 dropped n2 at 10 s, last heard n1 at 9.5 s (still listing n2), and then
    // heard nothing more from it (cut off), n1 still up in its view. n1 dropped n2 as well, which
    // n0 never read: its old hello is no evidence, however long n0 waits.
    const c = check();
    c.n1.heard = 9_500;
    for (let now = 10_000; now <= 30_000; now += 1000) c.update(now);
    expect(c.differing()).toEqual({});
    expect(c.errors()).toEqual([]);
    // Heard once more, still listing n2, the difference has lasted from 10 s to that check.
    c.n1.heard = 30_500;
    c.update(31_000);
    expect(c.differing()).toEqual({ n1: ['n0', 'n1', 'n2'] });
    expect(c.errors()).toHaveLength(1);
  });

  it('not while this process was paused', () => {
    // n0 dropped n2 at 10 s, was stopped from 10.5 s to 19.5 s, and then read n1's answer that
    // waited in its socket (n1 still listing n2): 1 s of n0's running time, not 10 s.
    const paused = () => {
      const c = check();
      c.n1.heard = 10_000;
      c.update(10_000);
      c.pause(9000);
      c.n1.heard = 20_000;
      c.update(20_000);
      return c;
    };
    // Heard nothing more (cut off): never reported.
    const cut = paused();
    for (let now = 21_000; now <= 40_000; now += 1000) cut.update(now);
    expect(cut.errors()).toEqual([]);
    // n1 still lists n2 hello after hello: reported once 8 s of n0's running time passed, at 27 s.
    expectReportedAt(paused(), 21_000, 27_000);
  });

  it('while a member keeps listing a removed member past the bound, and not once it drops it', () => {
    const c = check();
    expectReportedAt(c, 10_000, 18_000);
    expect(c.errors()[0]!.msg).toMatch(
      /^member lists differ: n1 lists n0,n1,n2; this node lists n0,n1 \(for over 8 s\)/,
    );
    c.n1.listed = ['n0', 'n1'];
    c.n1.heard = 19_000;
    c.update(19_000);
    expect(c.differing()).toEqual({});
  });
});
