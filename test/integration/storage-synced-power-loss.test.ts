// Storage.synced() (what tombstone collection asks every member before it counts their answers)
// resolves only once every write a read could have answered is durable. A write whose log group
// failed (the disk's syncs failing) stays decided (reads answer it) but is dropped from the log:
// before the fix, synced() resolved once the log was repaired, with that write on no disk, and a
// power cut then took it back (a member that answered collection with a tombstone came back
// with the value the tombstone deleted).

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { NODE, ROOT } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';

const binary = usePowerlossfs();
const CHILD = join(ROOT, 'test/helpers/storage-synced-child.ts');

it('a write whose log group failed is durable once synced() resolves: a power cut then keeps it', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const child = spawn(NODE, [CHILD, dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  defer(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  const lines = createInterface({ input: child.stdout! });
  const next = () =>
    new Promise<Record<string, unknown>>((r) => lines.once('line', (l) => r(JSON.parse(l))));
  expect(await next()).toEqual({ ready: true });

  // The tombstone's log group fails; a read answers it all the same (as a replica's get does).
  // Only O_DSYNC writes fail (the log's groups): LMDB's commits, synced by fdatasync, go on. (A
  // failed sync of LMDB's file ends the node instead: disk-errors.test.ts.)
  await disk.errors('dsync');
  child.stdin!.write('remove\n');
  const removed = await next();
  expect(removed.written).toMatch(/KV_ERR_STORAGE|storage:/);
  expect(removed.tombstone).toBe(true);

  // The disk works again; synced() resolves, and the power goes right after.
  await disk.errors(false);
  child.stdin!.write('synced\n');
  expect(await next()).toEqual({ synced: 'SYNCED' });
  await disk.cut(11, 0);
  child.kill('SIGKILL');
  await exited;
  await disk.unmount();
  await disk.mount();

  const storage = Storage.open({ path: dataDir, nodeName: 'child' });
  defer(() => storage.close());
  // Before the fix: the value the tombstone deleted (v1), live again.
  const after = storage.get(Buffer.from('k'));
  expect({ tombstone: after?.tombstone, value: after?.value?.toString() }).toEqual({
    tombstone: true,
    value: '',
  });
}, 120_000);
