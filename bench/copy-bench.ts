// copy-bench: what a record's copy costs on the read paths, each way side by side in one run.
// - LMDB: lmdb-js's getBinary (Uint8Array slice: an ArrayBuffer per record) against getBinaryFast
//   copied into Buffer.allocUnsafe (Node's pool), as Storage.getRaw does, and no copy at all.
// - Peer frames: msgpackr with copyBuffers (an ArrayBuffer per `bin`) against one copy of the
//   frame (src/peer/codec.ts), for a getMany reply of 9 records of 123 bytes.
// Run: node bench/copy-bench.ts   (about 15 s; a temporary LMDB of 100,000 records is removed)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Packr } from 'msgpackr';

const ROUNDS = 5;
const KEYS = 100_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(rows: Map<string, number[]>, name: string, n: number, run: () => void): void {
  const t = performance.now();
  run();
  const us = ((performance.now() - t) * 1000) / n;
  rows.set(name, [...(rows.get(name) ?? []), us]);
}

function print(title: string, rows: Map<string, number[]>, base: string): void {
  console.log(`\n${title}\n| way | µs (median of ${ROUNDS}) | of ${base} |\n|---|--:|--:|`);
  const b = median(rows.get(base)!);
  for (const [name, xs] of rows) {
    console.log(`| ${name} | ${median(xs).toFixed(3)} | ${(median(xs) / b).toFixed(2)}x |`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'kvstore-copy-bench-'));
try {
  const db = open({ path: dir, encoding: 'binary' });
  const key = (i: number) => Buffer.from(`key:${String(i).padStart(12, '0')}`);
  await db.transaction(() => {
    for (let i = 0; i < KEYS; i++) db.put(key(i), Buffer.alloc(123, i & 0xff));
  });
  const keys = Array.from({ length: KEYS }, (_, i) => key((i * 7919) % KEYS));
  let sink = 0;
  const lmdb = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    time(lmdb, 'getBinary (lmdb-js copy)', KEYS, () => {
      for (const k of keys) sink += db.getBinary(k)!.length;
    });
    time(lmdb, 'getBinaryFast + allocUnsafe copy (Storage.getRaw)', KEYS, () => {
      for (const k of keys) {
        const lent = db.getBinaryFast(k)!;
        const copy = Buffer.allocUnsafe(lent.length);
        copy.set(new Uint8Array(lent.buffer, lent.byteOffset, lent.length));
        sink += copy.length;
      }
    });
    time(lmdb, 'getBinaryFast, no copy', KEYS, () => {
      for (const k of keys) sink += db.getBinaryFast(k)!.length;
    });
  }
  await db.close();
  print(
    'One record read from LMDB (100,000 keys, 123-byte records)',
    lmdb,
    'getBinary (lmdb-js copy)',
  );

  const copying = new Packr({ useRecords: false, copyBuffers: true });
  const viewing = new Packr({ useRecords: false });
  const rs = Array.from({ length: 9 }, (_, i) => Buffer.alloc(123, i));
  const frame = viewing.pack({ i: 1, r: { rs } });
  const N = 200_000;
  const peer = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    time(peer, 'copyBuffers (an ArrayBuffer per bin)', N, () => {
      for (let i = 0; i < N; i++) sink += (copying.unpack(frame) as { i: number }).i;
    });
    time(peer, 'one copy of the frame (src/peer/codec.ts)', N, () => {
      for (let i = 0; i < N; i++) {
        const own = Buffer.allocUnsafe(frame.length);
        own.set(frame);
        sink += (viewing.unpack(own) as { i: number }).i;
      }
    });
  }
  print(
    'Decoding a getMany reply of 9 records (per frame)',
    peer,
    'copyBuffers (an ArrayBuffer per bin)',
  );
  if (sink === 0) console.log('');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
