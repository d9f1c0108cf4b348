// A storage open that fails closes what it opened (the LMDB environment, the disk probe, the log
// directory) and says why with a code. The store is on powerlossfs, whose syncs fail with EIO (a
// disk whose writes fail): the open gets as far as its first sync, which must fail it cleanly; a
// node started there exits with the storage failure's code and a line that says what failed.

import { readdirSync, readlinkSync } from 'node:fs';
import { expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { spawnNodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

/** The files under `dir` this process holds open. */
function openUnder(dir: string): string[] {
  const held: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === dir || target.startsWith(`${dir}/`)) held.push(target);
    } catch {
      // Closed meanwhile (the readdir's own descriptor among them).
    }
  }
  return held;
}

it('an open that fails at the log closes LMDB and the disk probe, and says why with a code', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const opts = { path: dataDir, nodeName: 'n1', stallTimeoutMs: 1000 };
  // A store stopped cleanly: no log to replay, so the open's first sync is the new log's.
  const first = await Storage.openAsync(opts, new AbortController().signal);
  await first.apply(Buffer.from('k'), {
    value: Buffer.from('v'),
    version: first.clock.now(),
    tombstone: false,
  });
  await first.close();
  await disk.sync();

  await disk.errors(true);
  const failed = await Storage.openAsync(opts, new AbortController().signal).catch((e) => e);
  expect(failed).toBeInstanceOf(KvError);
  expect((failed as KvError).code).toBe('KV_ERR_STORAGE');
  // Before, the LMDB environment (data.mdb, lock.mdb) and the disk probe stayed open.
  await until(
    () => openUnder(dataDir).length === 0,
    10_000,
    () => `nothing open in the data directory: ${openUnder(dataDir).join(', ')}`,
  );

  // And the store opens again once the disk works.
  await disk.errors(false);
  const again = await Storage.openAsync(opts, new AbortController().signal);
  expect(again.get(Buffer.from('k'))?.value.toString()).toBe('v');
  await again.close();
}, 120_000);

it('a node whose disk fails the sync of the log it replays exits 1 saying which segment and why', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const node = await startNodeProcess({ dataDir });
  const c = await LineClient.connect(node.port);
  defer(() => c.socket.destroy());
  expect(await c.call('PUT k v')).toBe('OK');
  // Killed: the log holds the write, and the next start replays it and syncs its segment first.
  await node.stop('SIGKILL');

  await disk.errors(true);
  const again = spawnNodeProcess({ dataDir });
  expect(await again.exited).toBe(1);
  // Before: 'kvstore: EIO: i/o error, fsync', and a fatal line without a code.
  expect(again.stderr()).toMatch(
    /^kvstore: storage: cannot sync the write-ahead log segment \S+\/wal\/\d{16}\.wal: I\/O error \(EIO\)\n$/,
  );
  const fatal = again.logs.find((l) => l.msg === 'storage: cannot open the data directory');
  expect(fatal).toMatchObject({ code: 'KV_ERR_STORAGE' });

  await disk.errors(false);
  const fine = await startNodeProcess({ dataDir });
  const c2 = await LineClient.connect(fine.port);
  defer(() => c2.socket.destroy());
  expect(await c2.call('GET k')).toBe('v');
}, 120_000);
