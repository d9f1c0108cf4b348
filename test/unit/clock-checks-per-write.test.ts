// How often a write asks the clock check (ClockCheck.check, through checkClock): each check reads
// the clocks three times, on every write (bench/results/2026-12-07-s33-durable-set.md). A plain
// SET is checked once, as its version is made; a refusing clock refuses it all the same.

import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { standalone } from '../helpers/standalone.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

const b = (s: string) => Buffer.from(s);

/** A one-member coordinator whose clock check counts its calls, refusing while `refuse.now`. */
function counted(): { c: ClusterCoordinator; checks: () => number; refuse: { now: boolean } } {
  const s = Storage.open({ path: tempDir(), nodeName: 'n1' });
  opened.push(s);
  let checks = 0;
  const refuse = { now: false };
  const checkClock = () => {
    checks++;
    if (refuse.now) throw new KvError('KV_ERR_CLOCK_OFFSET', 'clock: stepped (test)');
  };
  const c = standalone(s, 100, new Topology(['n1'], null, 1), { checkClock });
  return { c, checks: () => checks, refuse };
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
});
