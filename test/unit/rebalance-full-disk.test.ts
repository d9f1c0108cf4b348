// The rebalancer on a store that refuses writes (its disk full: below --min-free-disk-bytes):
// a ring change that moves nothing resets the stored stream cursor, a write; refused, it must be
// logged, not left as an unhandled rejection, which ends a Node process (found by reading, after
// chaos seed 25005 showed the same for delivered hints: test/integration/hints-full-disk.test.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import type { Topology } from '../../src/membership/index.ts';
import { Rebalancer, registerRebalanceMetrics } from '../../src/rebalance/index.ts';
import type { Replicas } from '../../src/replica/index.ts';
import { Storage, writeStateDoc } from '../../src/storage/index.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { until } from '../helpers/write-log.ts';

const dirs: string[] = [];
const stores: Storage[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it('logs a cursor reset the full store refused (kept for when there is room), and keeps running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-rebalance-full-'));
  dirs.push(dir);
  // More free bytes than any disk has: every write is refused as a full disk's.
  const storage = Storage.open({
    path: dir,
    nodeName: 'n1',
    minFreeBytes: Number.MAX_SAFE_INTEGER,
  });
  stores.push(storage);
  await expect(writeStateDoc(storage, 'stream:rebalance', null)).rejects.toThrow(/disk full/);

  const { logger, records } = captureLog();
  // vitest fails the run on an unhandled rejection (before the fix: "Unhandled Errors").
  const rebalancer = new Rebalancer({
    self: 'n1',
    storage,
    // A ring change that moves nothing: no stream, only the cursor reset.
    topology: { moving: false, transferId: 't1', target: null } as unknown as Topology,
    replicas: {} as Replicas,
    rateBytes: 1 << 20,
    timeoutMs: 1000,
    metrics: registerRebalanceMetrics(new Registry(), { count: 0, bytes: 0 }),
    logger,
  });
  rebalancer.onRingsChanged();
  expect(rebalancer.rebalanced).toBe('t1');
  // Kept and tried again as soon as there is room (CursorSaves), said once.
  const notReset = () =>
    records().find((l) => typeof l.msg === 'string' && l.msg.startsWith('stream cursor not saved'));
  await until(() => notReset() !== undefined, 5_000, 'the refused reset to be logged');
  expect(notReset()).toMatchObject({
    kind: 'rebalance',
    reason: expect.stringMatching(/disk full/),
  });
});
