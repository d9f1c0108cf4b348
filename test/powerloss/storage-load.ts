// A child process for the power-cut stress run (test/powerloss/stress.ts): opens a Storage (so a
// log left by the last cut is replayed into LMDB, as at a node's start), prints one JSON line
// `{"open":ms,"replayed":n}`, then writes until it is killed: puts of 400..4400-byte values over a
// few thousand keys (so B+tree pages are copied and freed, and the free list reused), removes,
// discards and state documents (flushed LMDB writes outside the log), 64 in flight.
// With `overlapping` it writes as stores did until 2026-12 instead: lmdb-js's overlapping sync,
// batched puts and removes in a table of its own (so that the next cycle's Storage.open meets a
// file whose newest commit may not be flushed, and must roll it back first).
//   node storage-load.ts <data-dir> <seed> [overlapping]

import { open } from 'lmdb';
import { HintStore, Storage } from '../../src/storage/index.ts';
import { LMDB_OVERLAPPING_ENV_OPTIONS } from '../../src/storage/lmdb-check.ts';

const [dir, seedArg, mode] = process.argv.slice(2);
if (!dir) throw new Error('usage: storage-load.ts <data-dir> <seed>');
let seed = Number(seedArg ?? 1) >>> 0 || 1;
/** xorshift32: the run's writes follow from the seed. */
const rand = (n: number): number => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
};

if (mode === 'overlapping') {
  const root = open({ path: dir, ...LMDB_OVERLAPPING_ENV_OPTIONS });
  const table = root.openDB<Buffer, Buffer>({
    name: 'overlapping-stress',
    keyEncoding: 'binary',
    encoding: 'binary',
  });
  process.stdout.write(`${JSON.stringify({ open: 0, replayed: 0 })}\n`);
  const one = (): Promise<unknown> => {
    const k = Buffer.from(`o:${String(rand(4000)).padStart(5, '0')}`);
    return rand(10) < 8 ? table.put(k, Buffer.alloc(400 + rand(4000), 111)) : table.remove(k);
  };
  for (;;) await Promise.all(Array.from({ length: 64 }, one));
}

const started = performance.now();
const storage = Storage.open({ path: dir, nodeName: 'stress' });
process.stdout.write(
  `${JSON.stringify({ open: Math.round(performance.now() - started), replayed: storage.recovery.replayed })}\n`,
);

// As a node does right after opening its store (src/node/cluster.ts), while the replayed writes
// are still being committed: the hint store opens its database (a synchronous LMDB transaction).
const hints = new HintStore(storage, 100_000);

const KEYS = 4000;
const key = (i: number) => Buffer.from(`stress:${String(i).padStart(5, '0')}`);

async function one(): Promise<void> {
  const r = rand(100);
  const k = key(rand(KEYS));
  if (r < 85) {
    const value = Buffer.alloc(400 + rand(4000), 97 + rand(26));
    await storage.apply(k, { version: storage.clock.now(), tombstone: false, value });
  } else if (r < 95) {
    await storage.removeIfLive(k, storage.clock.now());
  } else if (r < 97) {
    const rec = storage.get(k);
    if (rec) await storage.discard([{ key: k, version: rec.version }]);
  } else if (r < 98) {
    const raw = Buffer.alloc(200 + rand(2000), 104);
    const added = hints.list('peer', 50);
    await hints.add([{ target: 'peer', key: k, raw }]);
    if (added.length > 20) await hints.remove(added);
  } else {
    await storage.writeState(`stress:${rand(8)}`, { at: Date.now(), pad: 'x'.repeat(rand(3000)) });
  }
}

async function writer(): Promise<void> {
  for (;;) await one();
}

await Promise.all(Array.from({ length: 64 }, () => writer()));
