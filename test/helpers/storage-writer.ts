// A child process for the write-ahead log tests: writes keys into a Storage and reports over
// stdout, so the test can copy LMDB's file between phases and SIGKILL it mid-life.
//   node storage-writer.ts <dir> <first> <second>
// Writes keys p1-0..p1-<first-1> (each acknowledged), waits for LMDB to flush, prints FLUSHED
// and waits for a line on stdin; then writes p2-0..p2-<second-1> (acknowledged, and every
// tenth p1 key removed), prints ACKED and waits to be killed.

import { createInterface } from 'node:readline';
import { Storage } from '../../src/storage/index.ts';

const [dir, first, second] = process.argv.slice(2);
const storage = Storage.open({ path: dir!, nodeName: 'writer' });
const value = (k: string) => Buffer.from(`value of ${k}`);
const put = (k: string) =>
  storage.apply(Buffer.from(k), {
    version: storage.clock.now(),
    tombstone: false,
    value: value(k),
  });

await Promise.all(Array.from({ length: Number(first) }, (_, i) => put(`p1-${i}`)));
await storage.root.flushed;
process.stdout.write('FLUSHED\n');
const lines = createInterface({ input: process.stdin });
await new Promise((r) => lines.once('line', r));
const writes: Promise<unknown>[] = [];
for (let i = 0; i < Number(second); i++) writes.push(put(`p2-${i}`));
for (let i = 0; i < Number(first); i += 10) {
  writes.push(storage.removeIfLive(Buffer.from(`p1-${i}`), storage.clock.now()));
}
await Promise.all(writes);
process.stdout.write('ACKED\n');
setInterval(() => {}, 1000);
