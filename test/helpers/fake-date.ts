// Date alone on vitest's fake clock in every test of a file (timers stay real), for unit tests
// whose steps depend on the wall clock (repair windows, tombstone graces).

import { afterEach, beforeEach, vi } from 'vitest';
import { cleanup } from './node-process.ts';

/**
 * Fakes Date in each test of the calling file, and after each ends makes it real again and
 * cleans up (node-process.ts cleanup). Returns `later(ms)`, which moves the fake clock on.
 */
export function fakeDateEachTest(): (ms: number) => void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
  });
  afterEach(async () => {
    vi.useRealTimers();
    await cleanup();
  });
  return (ms) => vi.setSystemTime(Date.now() + ms);
}
