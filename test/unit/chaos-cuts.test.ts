// The chaos nemesis's link cuts: overlapping splits and a heal racing the next split must leave
// exactly the links some split still holds cut. (Seed 742897944 once left kv0 and kv1 unable to
// reach kv4 for good: a heal cleared a slot's cut list while a new split was adding to it.) The
// neighbour-table change is recorded here; the chaos runs make it with `ip neigh`.

import { describe, expect, it } from 'vitest';
import { type Link, LinkCuts } from '../../test/chaos/cuts.ts';

/** LinkCuts whose changes are applied to a set of cut links after a delay, in call order kept. */
function recorded(delays: number[] = []) {
  const table = new Set<string>();
  const log: string[] = [];
  let i = 0;
  const cuts = new LinkCuts(async ([from, to], cut) => {
    await new Promise((r) => setTimeout(r, delays[i++ % Math.max(delays.length, 1)] ?? 0));
    const key = `${from}>${to}`;
    if (cut) table.add(key);
    else table.delete(key);
    log.push(`${cut ? 'cut' : 'heal'} ${key}`);
  });
  return { cuts, table, log };
}

const both = (a: string, b: string): Link[] => [
  [a, b],
  [b, a],
];

describe('chaos link cuts', () => {
  it('keeps a link cut until the last split holding it heals', async () => {
    const { cuts, table } = recorded();
    const a = [...both('kv4', 'kv0'), ...both('kv4', 'kv1')];
    const b = both('kv4', 'kv0');
    await cuts.cut(a);
    await cuts.cut(b);
    await cuts.heal(a);
    expect([...table].sort()).toEqual(['kv0>kv4', 'kv4>kv0']);
    expect(cuts.cutFrom('kv4')).toEqual(['kv0']);
    await cuts.heal(b);
    expect([...table]).toEqual([]);
    expect(cuts.cutFrom('kv4')).toEqual([]);
  });

  it('a heal racing the next split leaves the new split in force, and its heal clears it', async () => {
    // Slow changes, so the heal of the first split is still running when the second begins.
    const { cuts, table, log } = recorded([30, 5, 20, 1]);
    const first = [...both('kv4', 'kv3'), ...both('kv4', 'kv0'), ...both('kv3', 'kv0')];
    await cuts.cut(first);
    const healing = cuts.heal(first);
    const second = [...both('kv4', 'kv0'), ...both('kv4', 'kv1')];
    const splitting = cuts.cut(second);
    await Promise.all([healing, splitting]);
    expect([...table].sort()).toEqual(['kv0>kv4', 'kv1>kv4', 'kv4>kv0', 'kv4>kv1']);
    // Changes ran in the order the counts changed: kv0>kv4 healed, then cut again.
    expect(log.filter((l) => l.endsWith(' kv0>kv4'))).toEqual([
      'cut kv0>kv4',
      'heal kv0>kv4',
      'cut kv0>kv4',
    ]);
    await cuts.heal(second);
    expect([...table]).toEqual([]);
  });

  it('healFrom gives back every link out of a host, and a later heal of those links is a no-op', async () => {
    const { cuts, table } = recorded();
    const a = both('kv2', 'kv0');
    await cuts.cut(a);
    await cuts.cut(a);
    await cuts.healFrom('kv2');
    await cuts.healFrom('kv0');
    expect([...table]).toEqual([]);
    await cuts.heal(a);
    expect([...table]).toEqual([]);
    expect(cuts.cutFrom('kv2')).toEqual([]);
  });

  it('a failed change rejects its caller and later changes still run', async () => {
    let fail = true;
    const done: string[] = [];
    const cuts = new LinkCuts(async ([from, to]) => {
      if (fail) {
        fail = false;
        throw new Error('RTNETLINK answers: Operation not permitted');
      }
      done.push(`${from}>${to}`);
    });
    await expect(cuts.cut([['kv0', 'kv1']])).rejects.toThrow(/not permitted/);
    await cuts.cut([['kv1', 'kv0']]);
    expect(done).toEqual(['kv1>kv0']);
  });
});
