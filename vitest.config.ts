import { defineConfig } from 'vitest/config';
import { LongestFirst } from './test/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Stops at once, with a clear message, on any Node but the pinned one.
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // A timeout finds a hang, it does not measure speed: on 2 cores shared with other work a
    // node takes seconds to start (8 s at load average 60), so the default leaves room for that.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll's own default is 1 s: too short for a wait on another process on a busy
    // machine. Waits that cross processes still say their own timeout.
    expect: { poll: { timeout: 10_000 } },
    // Integration tests start real node processes; two cores leave no room for more parallelism.
    maxWorkers: 2,
    // After-hooks run last registered first: fixtures such as useControlPlane() rely on it.
    // Files start longest first, also on a fresh clone (test/sequencer.ts).
    sequence: { hooks: 'stack', sequencer: LongestFirst },
  },
});
