// The start-up tree check (src/storage/lmdb-tree.ts) on a real LMDB file with trees three levels
// deep, values on overflow pages and a free list: clean, it finds nothing; each kind of damage it
// names is made by hand deep in a tree (noted by the pass in file order, judged by the walk) and
// found; pages the first pass jumped over are read when the walk reaches them.

import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { LMDB_ENV_OPTIONS, lmdbFileCheck, type OpenedMeta } from '../../src/storage/lmdb-check.ts';
import {
  lmdbTreeProblem,
  lmdbTreeProblemAsync,
  P_BRANCH,
  P_LEAF,
  type TreeCheckOptions,
} from '../../src/storage/lmdb-tree.ts';
import { until } from '../helpers/write-log.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A store of 20,000 keys in `data` (three levels), 6 overflow values, freed pages. */
async function build(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'kv-lmdb-tree-'));
  dirs.push(dir);
  const root = open({ path: dir, ...LMDB_ENV_OPTIONS });
  const data = root.openDB({ name: 'data', encoding: 'binary', keyEncoding: 'binary' });
  const other = root.openDB({ name: 'other', encoding: 'binary', keyEncoding: 'binary' });
  const key = (i: number) => Buffer.from(`key:${String(i).padStart(8, '0')}`);
  for (let t = 0; t < 4; t++) {
    await data.transaction(() => {
      for (let i = t * 5000; i < (t + 1) * 5000; i++) data.put(key(i), Buffer.alloc(200, i));
    });
  }
  await other.transaction(() => {
    for (let i = 0; i < 6; i++) other.put(key(i), Buffer.alloc(3 * 4096 + 7, i));
  });
  // Deletes and rewrites: pages of earlier commits go to the free list.
  await data.transaction(() => {
    for (let i = 0; i < 20000; i += 7) data.remove(key(i));
  });
  await data.transaction(() => {
    for (let i = 1; i < 20000; i += 11) data.put(key(i), Buffer.alloc(150, 1));
  });
  await root.close();
  return dir;
}

let template: string;
let file: string;
let meta: OpenedMeta;

/** Page `pgno` of the file. */
function page(pgno: number): Buffer {
  const b = Buffer.alloc(meta.pageSize);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, b, 0, b.length, pgno * meta.pageSize);
  } finally {
    closeSync(fd);
  }
  return b;
}

/** Writes `bytes` at `offset` of page `pgno`. */
function poke(pgno: number, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, pgno * meta.pageSize + offset);
  } finally {
    closeSync(fd);
  }
}

/** A leaf node's or branch node's place in page `p`: node i starts at 24 + its u16 offset. */
function node(p: Buffer, i: number): number {
  return 24 + p.readUInt16LE(24 + 2 * i);
}

const count = (p: Buffer) => p.readUInt16LE(20) >> 1;
const u48 = (p: Buffer, at: number) =>
  p.readUInt16LE(at) + p.readUInt16LE(at + 2) * 0x1_0000 + p.readUInt16LE(at + 4) * 0x1_0000_0000;

/** Database `name`'s root page (the main database is one leaf here). */
function rootOf(name: string): number {
  const main = page(Number(meta.roots[1]));
  for (let i = 0; i < count(main); i++) {
    const at = node(main, i);
    const ksize = main.readUInt16LE(at + 6);
    if (main.toString('latin1', at + 8, at + 8 + ksize).replace(/\0$/, '') === name) {
      return Number(main.readBigUInt64LE(at + 8 + ksize + 40));
    }
  }
  throw new Error(`no database ${name}`);
}

/** A branch page below `data`'s root, and where its children's page numbers sit. */
function innerBranch(): { pgno: number; children: { pgno: number; at: number }[] } {
  const root = page(rootOf('data'));
  expect(root.readUInt16LE(18) & P_BRANCH).toBe(P_BRANCH);
  const mid = u48(root, node(root, count(root) >> 1));
  const p = page(mid);
  expect(p.readUInt16LE(18) & P_BRANCH).toBe(P_BRANCH);
  const children = Array.from({ length: count(p) }, (_, i) => ({
    pgno: u48(p, node(p, i)),
    at: node(p, i),
  }));
  return { pgno: mid, children };
}

/** Page numbers the free list names (single entries; a long record sits on overflow pages). */
function freePages(): number[] {
  const p = page(Number(meta.roots[0]));
  expect(p.readUInt16LE(18) & P_LEAF).toBe(P_LEAF);
  const out: number[] = [];
  for (let i = 0; i < count(p); i++) {
    const at = node(p, i);
    const size = p.readUInt16LE(at) + p.readUInt16LE(at + 2) * 0x1_0000;
    const v = at + 8 + p.readUInt16LE(at + 6);
    let record = p.subarray(v, v + size);
    if (p.readUInt16LE(at + 4) & 1) {
      const first = Number(p.readBigUInt64LE(v));
      const pages = Array.from({ length: Math.ceil((24 + size) / meta.pageSize) }, (_, j) =>
        page(first + j),
      );
      record = Buffer.concat(pages).subarray(24, 24 + size);
    }
    const n = Number(record.readBigUInt64LE(0));
    for (let j = 1; j <= n; j++) {
      const e = record.readBigInt64LE(8 * j);
      if (e > 0n) out.push(Number(e));
    }
  }
  return out;
}

/**
 * The check as a node runs it (4 MiB reads: the whole file at once here), and in 16 KiB reads with
 * reads under way ahead: the first pass's chunk boundaries, jumps over overflow values across them;
 * each at once (lmdbTreeProblem) and on the thread pool, as a start runs it (lmdbTreeProblemAsync).
 */
const layouts: { name: string; opts: TreeCheckOptions; pool: boolean }[] = [
  { name: 'as a node reads', opts: {}, pool: false },
  { name: 'in 16 KiB reads, two ahead', opts: { scanBytes: 16 << 10, readAhead: 2 }, pool: false },
  { name: 'as a start reads, on the thread pool', opts: {}, pool: true },
  {
    name: 'in 16 KiB reads, two ahead, on the thread pool',
    opts: { scanBytes: 16 << 10, readAhead: 2 },
    pool: true,
  },
];

describe.each(layouts)('lmdbTreeProblem, $name', ({ opts, pool }) => {
  const check = async () =>
    pool
      ? await lmdbTreeProblemAsync(file, meta, new AbortController().signal, opts)
      : lmdbTreeProblem(file, meta, opts);

  beforeEach(async () => {
    template ??= await build();
    const dir = mkdtempSync(join(tmpdir(), 'kv-lmdb-tree-case-'));
    dirs.push(dir);
    file = join(dir, 'data.mdb');
    copyFileSync(join(template, 'data.mdb'), file);
    const c = lmdbFileCheck(file);
    if (c.problem !== null || !c.opened) throw new Error(`no snapshot: ${c.problem}`);
    meta = c.opened;
  });

  it('finds nothing in a sound file with three levels, overflow values and a free list', async () => {
    expect(innerBranch().children.length).toBeGreaterThan(3);
    expect(freePages().length).toBeGreaterThan(0);
    expect(await check()).toBeNull();
  });

  it('names a leaf deep in the tree that a later commit wrote', async () => {
    const leaf = innerBranch().children[2]!.pgno;
    const t = Buffer.alloc(8);
    t.writeBigUInt64LE(meta.txnid + 1n);
    poke(leaf, 8, t);
    expect(await check()).toBe(
      `page ${leaf} of database data was written by transaction ${meta.txnid + 1n}, after the snapshot (${meta.txnid}) it belongs to`,
    );
  });

  it('names a leaf that carries another page number', async () => {
    const leaf = innerBranch().children[1]!.pgno;
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(leaf + 1));
    poke(leaf, 0, n);
    expect(await check()).toBe(`page ${leaf} of database data carries number ${leaf + 1}`);
  });

  it('names a page two branches reach', async () => {
    const b = innerBranch();
    const twice = b.children[0]!.pgno;
    const w = Buffer.alloc(6);
    w.writeUInt16LE(twice & 0xffff, 0);
    w.writeUInt16LE(Math.floor(twice / 0x1_0000) & 0xffff, 2);
    w.writeUInt16LE(0, 4);
    poke(b.pgno, b.children[3]!.at, w);
    expect(await check()).toBe(
      `page ${twice} is in use in a tree and also reached again from database data`,
    );
  });

  it('names a page that is in a tree and also listed free', async () => {
    const b = innerBranch();
    // A freed leaf of an earlier commit: it passes a tree page's own checks.
    const free = freePages().find((f) => {
      const p = page(f);
      return Number(p.readBigUInt64LE(0)) === f && p.readUInt16LE(18) === P_LEAF;
    })!;
    expect(free).toBeDefined();
    const w = Buffer.alloc(6);
    w.writeUInt16LE(free & 0xffff, 0);
    w.writeUInt16LE(Math.floor(free / 0x1_0000) & 0xffff, 2);
    poke(b.pgno, b.children[2]!.at, w);
    expect(await check()).toBe(`page ${free} is in use in a tree and also listed free`);
  });

  it('reads a tree page on its own when a stale page claimed it as part of an overflow value', async () => {
    // The first pass jumps over an overflow value's later pages; a free page that now says it
    // begins a long overflow value must not hide the tree pages after it.
    const root = page(rootOf('data'));
    const leaves = Array.from({ length: count(root) }, (_, i) =>
      page(u48(root, node(root, i))),
    ).flatMap((b) => Array.from({ length: count(b) }, (_, i) => u48(b, node(b, i))));
    const free = freePages()
      .sort((a, b) => a - b)
      .find((f) => leaves.some((l) => l > f && l < f + 500))!;
    expect(free).toBeDefined();
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0x04, 0); // P_OVERFLOW at offset 18
    header.writeUInt32LE(600, 2); // 600 pages at offset 20
    poke(free, 18, header.subarray(0, 6));
    expect(await check()).toBeNull();
    // And a damaged page among those is still found.
    const hidden = leaves.find((l) => l > free && l < free + 600)!;
    const t = Buffer.alloc(8);
    t.writeBigUInt64LE(meta.txnid + 5n);
    poke(hidden, 8, t);
    expect(await check()).toMatch(
      new RegExp(`^page ${hidden} of database data was written by transaction`),
    );
  });

  it('names an overflow value whose first page is not an overflow page', async () => {
    const leaf = page(rootOf('other'));
    expect(leaf.readUInt16LE(18) & P_LEAF).toBe(P_LEAF);
    const at = node(leaf, 0);
    const first = Number(leaf.readBigUInt64LE(at + 8 + leaf.readUInt16LE(at + 6)));
    poke(first, 18, Buffer.from([P_LEAF, 0]));
    expect(await check()).toBe(
      `page ${first} of database other is not the overflow page of a ${3 * 4096 + 7}-byte value`,
    );
  });
});

describe('lmdbTreeProblem reading ahead', () => {
  beforeEach(async () => {
    template ??= await build();
    file = join(template, 'data.mdb');
    const check = lmdbFileCheck(file);
    if (check.problem !== null || check.opened === null) throw new Error('not a sound file');
    meta = check.opened;
  });

  /** Descriptors this process has open on `file`. */
  const onFile = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false; // the directory's own descriptor, closed by now
      }
    }).length;

  it('closes the read-ahead descriptor once the reads under way are done', async () => {
    expect(onFile()).toBe(0);
    expect(lmdbTreeProblem(file, meta, { scanBytes: 16 << 10, readAhead: 2 })).toBeNull();
    // The reads ahead report back only once the event loop turns, after the check returned.
    expect(onFile()).toBe(1);
    await until(() => onFile() === 0, 5_000, 'the read-ahead descriptor to close');
    expect(lmdbTreeProblem(file, meta, { scanBytes: 16 << 10, readAhead: 0 })).toBeNull();
    expect(onFile()).toBe(0);
  });
});
