// refusalOf: what a serving node refuses of its clients' commands, and whether it stays ready
// (/readyz). Real processes: test/integration/readyz-refusals.test.ts.

import { expect, it } from 'vitest';
import type { ClockRefusal } from '../../src/membership/index.ts';
import { type RefusalSources, refusalOf } from '../../src/node/refusal.ts';

function sources(over: Partial<RefusalSources> = {}): RefusalSources {
  return {
    stalled: () => null,
    dropping: () => null,
    duplicate: () => null,
    clock: () => null,
    others: () => 2,
    ...over,
  };
}

const ownClock: ClockRefusal = { reason: 'clock: no peer has answered', mutual: false };

it('refuses nothing while nothing refuses', () => {
  expect(refusalOf(sources())).toBeNull();
});

it('is not ready for a stalled disk, records being dropped or another process under its name, peers or not', () => {
  for (const others of [0, 2]) {
    expect(
      refusalOf(sources({ dropping: () => 'replica: dropping', others: () => others })),
    ).toEqual({ commands: 'all', reason: 'replica: dropping', ready: false });
    expect(refusalOf(sources({ stalled: () => 'storage: stalled', others: () => others }))).toEqual(
      { commands: 'all', reason: 'storage: stalled', ready: false },
    );
    expect(
      refusalOf(sources({ duplicate: () => 'membership: twin', others: () => others })),
    ).toEqual({ commands: 'all', reason: 'membership: twin', ready: false });
  }
});

it("refuses writes for its clock: not ready while another member may take them, unless it's mutual", () => {
  expect(refusalOf(sources({ clock: () => ownClock }))).toEqual({
    commands: 'writes',
    reason: ownClock.reason,
    ready: false,
  });
  // Every other member down (or none): no node would take them instead.
  expect(refusalOf(sources({ clock: () => ownClock, others: () => 0 }))).toMatchObject({
    ready: true,
  });
  // Its only witness refuses writes as well: neither is the better place for clients.
  const mutual = { reason: 'clock: off from 1 of 1', mutual: true };
  expect(refusalOf(sources({ clock: () => mutual }))).toMatchObject({ ready: true });
});

it('names the first refusal that applies: the disk, the name, then the clock', () => {
  const all = sources({
    stalled: () => 'storage: stalled',
    duplicate: () => 'membership: twin',
    clock: () => ownClock,
  });
  expect(refusalOf(all)?.reason).toBe('storage: stalled');
  expect(refusalOf({ ...all, stalled: () => null })?.reason).toBe('membership: twin');
});
