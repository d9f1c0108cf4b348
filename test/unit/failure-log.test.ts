// FailureLog: a task that keeps failing is said once per run of failures, its end once.

import { expect, it } from 'vitest';
import { FailureLog } from '../../src/observability/index.ts';
import { captureLog } from '../helpers/log-capture.ts';

function setup() {
  const { logger, records } = captureLog();
  let now = 0;
  const log = new FailureLog({
    logger,
    failed: 'task failed',
    worked: 'task works again',
    everyMs: 1000,
    now: () => now,
  });
  const advance = (ms: number) => {
    now += ms;
  };
  return { log, records, advance };
}

const full = (free: number) =>
  new Error(`storage: not writable: disk full (${free} bytes free in /d, below 8388608)`);

it('says a full disk once while it lasts (its message changing), again after everyMs', () => {
  const { log, records, advance } = setup();
  expect(log.failed(full(100))).toBe(true);
  for (let i = 0; i < 20; i++) expect(log.failed(full(100 + i), { n: i })).toBe(false);
  advance(1000);
  expect(log.failed(full(7))).toBe(true);
  expect(records().map((r) => [r.msg, r.level, r.diskFull, r.repeats])).toEqual([
    ['task failed', 50, true, 0],
    ['task failed', 50, true, 20],
  ]);
});

it('says a failure of another kind at once, and the end of the run once with its count', () => {
  const { log, records } = setup();
  log.worked(); // nothing failed: nothing said
  log.failed(full(1));
  log.failed(full(2));
  log.failed(new Error('storage: LMDB flush failed'));
  log.failed(new Error('storage: LMDB flush failed'));
  log.worked({ dropped: 3 });
  log.worked();
  log.failed(full(3));
  expect(records().map((r) => [r.msg, r.diskFull, r.repeats, r.failures, r.dropped])).toEqual([
    ['task failed', true, 0, undefined, undefined],
    ['task failed', undefined, 1, undefined, undefined],
    ['task works again', undefined, undefined, 4, 3],
    ['task failed', true, 0, undefined, undefined],
  ]);
  expect(log.failing).toBe(true);
});
