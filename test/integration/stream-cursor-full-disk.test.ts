// Stream cursors on a full disk (a real store on a small tmpfs): the cursors a store refused are
// kept, and the newest is saved as soon as there is room, with no further save asked for; an
// older one never lands after it. Otherwise a restart after the disk freed would resume an earlier
// stream's cursor of the same transfer (r1 -> r2 -> r1), past records written meanwhile.

import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { CursorSaves } from '../../src/rebalance/stream-hold.ts';
import { readStateDoc, Storage, type StreamCursor } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(async () => {
  await cleanup();
  unmountAll();
});

const OPTS = { nodeName: 'n1', minFreeBytes: 8 << 20, walSegmentBytes: 1 << 20 };
const cursor = (after: string): StreamCursor => ({
  ringId: 'r1',
  after: Buffer.from(after).toString('base64'),
  done: false,
});

it('the newest refused cursor is saved once there is room, without another save, and survives a reopen', async () => {
  const fs = mountTmpfs(48 << 20);
  const path = join(fs, 'data');
  const storage = Storage.open({ path, ...OPTS });
  const { logger, records } = captureLog('info');
  const cursors = new CursorSaves(storage, logger);
  defer(() => cursors.stop());
  const stale = cursor('k0299');
  expect(await cursors.save('rebalance', stale)).toBe(true);

  // Something else fills the disk to 4 MiB free, below the store's guard.
  const filler = join(fs, 'filler');
  const s = statfsSync(fs);
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (4 << 20)));
  await until(() => storage.writeFailure() !== null, 10_000, 'the store refuses writes');
  // A later stream of the same transfer: its reset and its first cursor are refused.
  expect(await cursors.save('rebalance', null)).toBe(false);
  const newest = cursor('k0010');
  expect(await cursors.save('rebalance', newest)).toBe(false);
  expect(readStateDoc(storage, 'stream:rebalance')).toEqual(stale);

  unlinkSync(filler);
  const said = () => records().map((l) => String(l.msg));
  // Durable once said (a read sees the write as soon as it is decided).
  await until(
    () => said().includes('stream cursor saved again'),
    20_000,
    'the newest cursor saved',
  );
  expect(readStateDoc(storage, 'stream:rebalance')).toEqual(newest);
  expect(said().filter((m) => m.startsWith('stream cursor'))).toEqual([
    expect.stringMatching(/^stream cursor not saved/),
    'stream cursor saved again',
  ]);
  cursors.stop();
  await storage.close();
  const again = Storage.open({ path, ...OPTS });
  defer(() => again.close());
  expect(readStateDoc(again, 'stream:rebalance')).toEqual(newest);
}, 60_000);
