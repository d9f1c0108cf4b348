import { open } from '/work/main/node_modules/lmdb/dist/index.cjs';
import { rmSync } from 'node:fs';
const path = '/tmp/h3s36/lmdbm'; rmSync(path, { recursive: true, force: true });
const root = open({ path, noSubdir: false, maxDbs: 8, compression: false, overlappingSync: false, noMetaSync: true });
const db = root.openDB({ name: 'data', encoding: 'binary', keyEncoding: 'binary' });
const N = 100000; const val = Buffer.alloc(123, 7);
await db.transaction(() => { for (let i = 0; i < N; i++) db.put(Buffer.from(`key:${String(i).padStart(12, '0')}`), val); });
const keys = Array.from({ length: 400000 }, () => Buffer.from(`key:${String((Math.random() * N) | 0).padStart(12, '0')}`));
const junk = new Uint8Array(Number(process.env.JUNK ?? 0));
for (let rep = 0; rep < 4; rep++) {
  let t = process.hrtime.bigint(); let s = 0;
  for (const k of keys) { const b = db.getBinaryFast(k); s += b.length; if (junk.length) for (let j = 0; j < junk.length; j += 64) junk[j]++; }
  const dt = Number(process.hrtime.bigint() - t) / keys.length;
  const sorted = [...keys].sort(Buffer.compare);
  t = process.hrtime.bigint();
  for (const k of sorted) { const b = db.getBinaryFast(k); s += b.length; if (junk.length) for (let j = 0; j < junk.length; j += 64) junk[j]++; }
  console.log('ns/lookup random', dt.toFixed(0), 'sorted', (Number(process.hrtime.bigint() - t) / keys.length).toFixed(0), 'stat', root.getStats?.().treeDepth ?? '', db.getStats().treeDepth, db.getStats().leafPages, db.getStats().treeBranchPageCount);
}
