// A child for the storage-synced power-loss test: a Storage on the test's disk, driven over stdin.
//   node storage-synced-child.ts <dir>
// Writes k=v1 and waits until LMDB flushed it, prints READY. On a line: writes k's tombstone and
// prints its outcome (the test made the disk's syncs fail) and what a read of k answers. On the
// next line: asks storage.synced() until it resolves (it refuses while LMDB is not repaired yet,
// at most 10 s) and prints SYNCED, or its last error. Then waits to be killed.

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
let synced = '';
for (const end = Date.now() + 10_000; synced !== 'SYNCED' && Date.now() < end; ) {
  synced = await storage.synced().then(
    () => 'SYNCED',
    (err: unknown) => String(err),
  );
  if (synced !== 'SYNCED') await new Promise((r) => setTimeout(r, 50));
}
say({ synced });
setInterval(() => {}, 1000);
