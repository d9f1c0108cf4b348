// old-record-cost: what learning a write's old record costs, each way side by side in one run.
// A durable SET decides against the old record's header (Storage.#applyOne: the counters, the
// tombstone and expiry indexes); today with one LMDB lookup per write on the main thread. For a
// batch of writes (one 4 MiB LMDB batch of ~140 B writes: BATCH_WRITES, keys drawn uniformly from
// the store's), per write:
// - arrival order: getBinaryFast per write, as #applyOne does now;
// - settled at the batch's end: the batch's distinct keys (a Set), sorted, then looked up: the
//   "settle later" design (bench/results/2026-12-07-s32-durable-set-old-record.md);
// - in LMDB's writer: lmdb-js's ifNoExists before each put (the writer tests the key, each result
//   a promise resolved after the commit), against the puts alone (process CPU: both threads);
// - and the store itself, Storage.apply over random keys with the kinds of the keys written last
//   kept (RecentKinds, the default) and none kept (a lookup per write, as before them).
// Run: node bench/old-record-cost.ts [--keys 100000,1000000] [--rounds 5]
//   (a few minutes for both sizes; every store is a temporary directory, removed at the end)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { Storage } from '../src/storage/index.ts';

const { values: o } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000,1000000' },
    rounds: { type: 'string', default: '5' },
  },
});
const ROUNDS = Number(o.rounds);
const SIZES = o.keys.split(',').map(Number);
/** Writes in one 4 MiB LMDB batch (Storage's LMDB_BATCH_BYTES) of 16 B keys and ~124 B records. */
const BATCH_WRITES = 30_000;
const VALUE = Buffer.alloc(124, 1);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** Process CPU (every thread) in µs. */
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const keyOf = (i: number) => `key:${String(i).padStart(12, '0')}`;

async function measure(size: number): Promise<Map<string, number[]>> {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-old-record-'));
  const rows = new Map<string, number[]>();
  const add = (name: string, ns: number) => rows.set(name, [...(rows.get(name) ?? []), ns]);
  const root = open({ path: dir, maxDbs: 2, compression: false, noMetaSync: true });
  try {
    const db = root.openDB<Buffer, Buffer>({
      name: 'data',
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    for (let i = 0; i < size; i += 100_000) {
      root.transactionSync(() => {
        for (let j = i; j < Math.min(size, i + 100_000); j++)
          db.putSync(Buffer.from(keyOf(j), 'latin1'), VALUE);
      });
    }
    const scratch = Buffer.allocUnsafe(64);
    const look = (k: string) => {
      const n = scratch.write(k, 'latin1');
      if (db.getBinaryFast(scratch.subarray(0, n)) === undefined) throw new Error(`${k} missing`);
    };
    for (let r = 0; r < ROUNDS; r++) {
      const batch = Array.from({ length: BATCH_WRITES }, () => keyOf((Math.random() * size) | 0));
      let t = cpuUs();
      for (const k of batch) look(k);
      add('a lookup per write, in arrival order (today)', ((cpuUs() - t) * 1000) / BATCH_WRITES);
      t = cpuUs();
      const distinct = [...new Set(batch)].sort();
      for (const k of distinct) look(k);
      add('distinct keys sorted, then looked up', ((cpuUs() - t) * 1000) / BATCH_WRITES);
      const keys = batch.map((k) => Buffer.from(k, 'latin1'));
      t = cpuUs();
      let last: Promise<unknown> = Promise.resolve();
      for (const k of keys) last = db.put(k, VALUE);
      await last;
      add('put alone, to its commit (both threads)', ((cpuUs() - t) * 1000) / BATCH_WRITES);
      t = cpuUs();
      const tested: Promise<boolean>[] = [];
      for (const k of keys) {
        tested.push(db.ifNoExists(k, () => {}) as Promise<boolean>);
        last = db.put(k, VALUE);
      }
      await Promise.all(tested);
      await last;
      add(
        'ifNoExists + put, to their results (both threads)',
        ((cpuUs() - t) * 1000) / BATCH_WRITES,
      );
    }
    return rows;
  } finally {
    await root.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The store itself: process CPU per write of Storage.apply (a SET as the node makes it, to its
 * log group) over uniformly random keys of a filled store, with the kinds of recent keys kept
 * (the default) and with none kept (every write reads the old record), alternating.
 */
async function measureStore(size: number): Promise<Map<string, number[]>> {
  const rows = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, bytes] of [
      ['Storage.apply, kinds kept (16 MiB)', undefined],
      ['Storage.apply, none kept (a lookup)', 0],
    ] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'kvstore-old-record-'));
      const s = Storage.open({
        path: dir,
        nodeName: 'n1',
        ...(bytes === undefined ? {} : { recentKindsBytes: bytes }),
      });
      try {
        const put = (i: number) =>
          s.apply(Buffer.from(keyOf(i), 'latin1'), {
            version: s.clock.now(),
            tombstone: false,
            value: VALUE,
          });
        for (let i = 0; i < size; i += 1000)
          await Promise.all(Array.from({ length: Math.min(1000, size - i) }, (_, j) => put(i + j)));
        await s.flush();
        // Random writes, LMDB taking them every 30,000 (a 4 MiB batch), as in a node: a first
        // 90,000 to settle, then 90,000 measured.
        let us = 0;
        for (let turn = 0; turn < 180; turn++) {
          const t = cpuUs();
          await Promise.all(Array.from({ length: 1000 }, () => put((Math.random() * size) | 0)));
          if (turn >= 90) us += cpuUs() - t;
          if (turn % 30 === 29) await s.flush();
        }
        rows.set(name, [...(rows.get(name) ?? []), (us * 1000) / 90_000]);
      } finally {
        await s.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return rows;
}

for (const size of SIZES) {
  const rows = await measure(size);
  for (const [name, xs] of await measureStore(size)) rows.set(name, xs);
  console.log(
    `\n${size.toLocaleString('en-US')} keys, batches of ${BATCH_WRITES.toLocaleString('en-US')} writes` +
      `\n| way | ns per write (median of ${ROUNDS}) | rounds |\n|---|--:|---|`,
  );
  for (const [name, xs] of rows)
    console.log(
      `| ${name} | ${median(xs).toFixed(0)} | ${xs.map((x) => x.toFixed(0)).join(' ')} |`,
    );
}
