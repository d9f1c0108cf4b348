// How often a write asks the clock check (ClockCheck.check, through checkClock): each check reads
// the clocks three times, on every write (bench/results/2026-12-07-s33-durable-set.md). A plain
// SET is checked once, as its version is made; a refusing clock refuses it all the same.

import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { Storage, SUB_MS_STEP } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { standalone } from '../helpers/standalone.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

const b = (s: string) => Buffer.from(s);

/**
 * A one-member coordinator whose clock check counts its calls, refusing while `refuse.now`, and
 * returning `reading.at` (undefined: no reading) as the reading of the clocks it checked.
 */
function counted(): {
  c: ClusterCoordinator;
  s: Storage;
  checks: () => number;
  refuse: { now: boolean };
  reading: { at: number | undefined };
} {
  const s = Storage.open({ path: tempDir(), nodeName: 'n1' });
  opened.push(s);
  let checks = 0;
  const refuse = { now: false };
  const reading: { at: number | undefined } = { at: undefined };
  const checkClock = () => {
    checks++;
    if (refuse.now) throw new KvError('KV_ERR_CLOCK_OFFSET', 'clock: stepped (test)');
    return reading.at;
  };
  const c = standalone(s, 100, new Topology(['n1'], null, 1), { checkClock });
  return { c, s, checks: () => checks, refuse, reading };
}

describe('clock checks per write', () => {
  it('checks a plain SET once, and a SET with an expiry, a DEL and a GET as before', async () => {
    const { c, checks } = counted();
    await c.execute({ type: 'put', key: b('k'), value: b('v') });
    expect(checks()).toBe(1);
    await c.execute({
      type: 'put',
      key: b('k'),
      value: b('v'),
      expiry: { relative: true, ms: 60_000 },
    });
    expect(checks()).toBeGreaterThan(1);
    const before = checks();
    await c.execute({ type: 'get', key: b('k') });
    expect(checks()).toBe(before);
    await c.execute({ type: 'remove', key: b('k') });
    expect(checks()).toBeGreaterThan(before);
  });

  it('refuses a plain SET while the clock is refused, writing nothing', async () => {
    const { c, refuse } = counted();
    refuse.now = true;
    expect(() => c.execute({ type: 'put', key: b('k'), value: b('v') })).toThrow(
      /KV_ERR_CLOCK_OFFSET|clock: stepped/,
    );
    refuse.now = false;
    expect(await c.execute({ type: 'get', key: b('k') })).toEqual({ type: 'not_found' });
  });

  // The check reads the wall clock between two reads of the monotonic clock to see a step; the
  // version was then made from a read of the wall clock of its own after it (two more reads of
  // the clocks per SET, and a step between the two reads went into the version unseen). Now it
  // is made from the reading the check returns.
  it("makes a plain SET's and a DEL's versions from the reading of the clocks the check returns", async () => {
    const { c, s, reading } = counted();
    // No reading (a check that returns none): the store's clock reads the wall clock itself.
    const before = Date.now();
    await c.execute({ type: 'put', key: b('j'), value: b('v') });
    expect(s.get(b('j'))!.version.wall).toBeGreaterThanOrEqual(before);
    expect(s.get(b('j'))!.version.wall).toBeLessThanOrEqual(Date.now());
    // A reading 5 s ahead of the wall clock, 0.25 ms into its millisecond: no read of the clock
    // after the check could give this version.
    const at = Math.floor(Date.now()) + 5_000 + 0.25;
    reading.at = at;
    await c.execute({ type: 'put', key: b('k'), value: b('v') });
    const put = s.get(b('k'))!.version;
    expect(put.wall).toBe(Math.floor(at));
    expect(put.logical).toBe(250 * SUB_MS_STEP);
    // The same reading again: the clock never goes back, the version is the next one up.
    await c.execute({ type: 'put', key: b('k'), value: b('w') });
    expect(s.get(b('k'))!.version).toMatchObject({ wall: put.wall, logical: put.logical + 1 });
    reading.at = at + 1.5;
    expect(await c.execute({ type: 'remove', key: b('k') })).toEqual({ type: 'ok' });
    expect(s.get(b('k'))).toMatchObject({ tombstone: true, version: { wall: Math.floor(at) + 1 } });
  });
});
