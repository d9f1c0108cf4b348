// A child for the storage-synced power-loss test: a Storage on the test's disk, driven over stdin.
//   node storage-synced-child.ts <dir>
// Writes k=v1 and waits until LMDB flushed it, prints READY. On a line: writes k's tombstone and
// prints its outcome (the test made the disk's syncs fail) and what a read of k answers. On the
// next line: prints what storage.synced() did (SYNCED or its error). Then waits to be killed.

import { createInterface } from 'node:readline';
import { Storage } from '../../src/storage/index.ts';

const storage = Storage.open({ path: process.argv[2]!, nodeName: 'child' });
const key = Buffer.from('k');
const lines = createInterface({ input: process.stdin });
const next = () => new Promise((r) => lines.once('line', r));
const say = (what: object) => process.stdout.write(`${JSON.stringify(what)}\n`);

await storage.apply(key, {
  version: storage.clock.now(),
  tombstone: false,
  value: Buffer.from('v1'),
});
await storage.flush();
say({ ready: true });
await next();
const written = await storage
  .apply(key, { version: storage.clock.now(), tombstone: true, value: Buffer.alloc(0) })
  .then(
    () => 'ok',
    (err: unknown) => String(err),
  );
say({ written, tombstone: storage.get(key)?.tombstone === true });
await next();
say({
  synced: await storage.synced().then(
    () => 'SYNCED',
    (err: unknown) => String(err),
  ),
});
setInterval(() => {}, 1000);
