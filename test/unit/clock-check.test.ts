// ClockCheck's step detection on clocks the test moves (Date.now and performance.now spied): a
// jump of the wall clock against the monotonic clock by more than half the bound refuses writes
// until probes sent after it agree; a wall clock that drifts slowly against the monotonic clock
// (NTP slewing it where the monotonic clock is not slewed, as on macOS) never counts as a step.
// The real step, on three processes, is test/integration/clock-step.test.ts.

import { Registry } from 'prom-client';
import { afterEach, expect, it, vi } from 'vitest';
import { ClockCheck, type ClockOffset } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';

afterEach(() => vi.restoreAllMocks());

const MAX = 500;

/** A ClockCheck over clocks the test moves, and the offsets its probes "measured". */
function setUp() {
  let wall = 1_700_000_000_000;
  let mono = 1_000;
  vi.spyOn(Date, 'now').mockImplementation(() => Math.floor(wall));
  vi.spyOn(performance, 'now').mockImplementation(() => mono);
  const offsets: ClockOffset[] = [];
  const check = new ClockCheck({
    offsets: () => offsets,
    maxOffsetMs: MAX,
    peers: () => 2,
    logger: createLogger('silent', {}),
    registry: new Registry(),
  });
  return {
    check,
    /** Both clocks advance by `ms`; the wall clock `drift` ms more. */
    advance(ms: number, drift = 0) {
      mono += ms;
      wall += ms + drift;
    },
    /** Two peers answered probes sent now, their clocks `offsetMs` from this one. */
    probed(offsetMs = 0) {
      offsets.splice(0);
      for (const member of ['b', 'c'])
        offsets.push({ member, offsetMs, errorMs: 1, sentMono: mono });
    },
  };
}

it('refuses writes from a step of the wall clock until probes sent after it agree', () => {
  const t = setUp();
  t.probed();
  t.check.update();
  expect(() => t.check.check()).not.toThrow();
  t.advance(100, 2_000); // stepped 2 s ahead
  expect(() => t.check.check()).toThrow(/stepped ahead by 2000 ms/);
  t.check.update(); // the probes measured before the step do not count
  expect(() => t.check.check()).toThrow(/stepped ahead/);
  t.advance(1_000);
  t.probed(0); // sent after the step, and the peers agree (NTP stepped them alike)
  t.check.update();
  expect(() => t.check.check()).not.toThrow();
});

it('follows a wall clock that drifts slowly against the monotonic clock: never a step', () => {
  const t = setUp();
  t.probed();
  t.check.update();
  // 500 ppm (the most NTP slews) for an hour, looked at every second: 1.8 s in all.
  for (let s = 0; s < 3_600; s++) {
    t.advance(1_000, 0.5);
    t.check.update();
    expect(() => t.check.check()).not.toThrow();
  }
});
