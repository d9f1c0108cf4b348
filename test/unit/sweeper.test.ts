// The expiry sweeper on a store that refuses its writes (a full disk) tick after tick: the
// failure is logged once, not every tick, and its end is logged when a sweep works again.

import { Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { ExpirySweeper, type Storage } from '../../src/storage/index.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { until } from '../helpers/write-log.ts';

it('logs a failure that repeats every tick once, and when sweeps work again', async () => {
  const { logger, records } = captureLog();
  const said = (msg: string) => records().filter((l) => l.msg === msg).length;
  let calls = 0;
  let full = true;
  const storage = {
    expireDue: async () => {
      calls++;
      if (full) throw new Error('storage: not writable: disk full');
      return { expired: 0, more: false };
    },
  } as unknown as Storage;
  const sweeper = new ExpirySweeper({
    storage,
    intervalMs: 2,
    batch: 100,
    registry: new Registry(),
    logger,
  });
  sweeper.start();
  try {
    await until(() => calls >= 20, 10_000, '20 sweeps');
    expect(said('expiry sweep failed')).toBe(1);
    full = false;
    await until(() => said('expiry sweeps work again') > 0, 10_000, 'recovery');
    full = true;
    const at = calls;
    await until(() => calls >= at + 5, 10_000, '5 more sweeps');
    // A new run of failures is said again.
    expect(said('expiry sweep failed')).toBe(2);
  } finally {
    await sweeper.stop();
  }
});
