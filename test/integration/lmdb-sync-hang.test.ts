// A sync of LMDB's file (LmdbSync: the log's checkpoint, a state document, synced()) on a disk
// that hangs is disk work out like the log's syncs and LMDB's commits: a process exiting then
// must not wait for libuv's thread blocked in it (exitProcess). No stall timeout: no disk probe.

import { expect, it } from 'vitest';
import { diskWorkOut, Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

it("a sync of LMDB's file hung on the disk is disk work out", async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const storage = Storage.open({ path: dataDir, nodeName: 'n1', stallTimeoutMs: 0 });
  defer(async () => {
    await disk.resume();
    await storage.close();
  });
  await storage.flush();
  expect(diskWorkOut()).toBe(false);
  await disk.hang();
  // Nothing to commit: LMDB's flush resolves at once, and only the store's sync of its file runs.
  const flushing = storage.flush().catch((err: unknown) => err);
  // Before: never (the sync was not counted), so a node exiting now would wait for it forever.
  await until(() => diskWorkOut(), 5_000, "the hung sync of LMDB's file to count as disk work");
  await disk.resume();
  await flushing;
  await until(() => !diskWorkOut(), 5_000, 'the sync to end');
}, 60_000);
