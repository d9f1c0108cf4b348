// Cleanup registered where a test makes something: defer(fn) undoes it when the test ends, passed or failed.

import { onTestFinished } from 'vitest';
import { pushDeferred, runDeferred } from './deferred.ts';

/**
 * Runs `fn` when the current test ends, passed or failed: the last deferred first, each one even
 * when an earlier one threw (the first error then fails the test). node-process.ts's cleanup()
 * runs them before it kills the nodes, so clients close before the nodes they talk to; without
 * it they run once the test has finished (vitest's onTestFinished). Call it from a test or a
 * helper a test calls, not from a beforeAll hook.
 */
export function defer(fn: () => unknown): void {
  if (pushDeferred(fn)) onTestFinished(runDeferred);
}
