import { defineConfig } from 'vitest/config';
import { COMPILE_CACHE } from './test/helpers/compile-cache.ts';
import { LongestFirst } from './test/sequencer.ts';

// Node's module compile cache (type-stripped sources and V8 code, checked against each file's
// content at load) for every process the tests start, vitest's workers, the nodes, kvctl and the
// bench scripts, which inherit the environment: a node from src/main.ts then starts on a third
// of the CPU (0.3 s instead of 0.9 s), and the suites start over a thousand of them. The code
// that runs is the same; set NODE_DISABLE_COMPILE_CACHE=1 to run without it.
process.env.NODE_COMPILE_CACHE ??= COMPILE_CACHE;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Stops at once, with a clear message, on any Node but the pinned one.
    globalSetup: ['test/global-setup.ts'],
    // A connection per fetch: a kept-alive one can be closed by the server under a request.
    setupFiles: ['test/fetch-setup.ts'],
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
