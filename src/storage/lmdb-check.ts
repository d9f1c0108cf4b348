// Checks an LMDB data file before LMDB maps it: a file cut short or meta pages overwritten would
// otherwise end the process with SIGBUS or SIGSEGV, with no log line.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { KvError } from '../errors/index.ts';

// Layout (lmdb-js's LMDB, 64-bit): a page starts with a 24-byte header [u64 pgno][u64 txnid]
// [u16 pad][u16 flags][u16 lower][u16 upper]. Pages 0 and 1 are meta pages; with lmdb-js's
// overlapping sync a third copy (the last flushed meta, without magic) sits at half a page. A
// meta: [u32 magic][u32 version][u64 address][u64 map size][2 x 48-byte db: u32 pad (the page
// size, for the free db), u16 flags, u16 depth, u64 branch, leaf, overflow pages, entries,
// root][u64 last page][u64 txnid].
const PAGE_HEADER = 24;
const MAGIC = 0xbeef_c0de;
const DATA_VERSION = 2;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_META = 0x08;
const DB_SIZE = 48;
const NO_PAGE = 0xffff_ffff_ffff_ffffn;

interface Meta {
  readonly where: string;
  readonly txnid: bigint;
  readonly lastPage: bigint;
  readonly roots: readonly bigint[];
}

/**
 * Throws KV_ERR_CORRUPT naming the file and the problem when `dir/data.mdb` exists but its
 * meta pages are not LMDB's, point past the end of the file, or the newest one's tree roots are
 * not tree pages. A missing or empty file is fine (a new store).
 */
export function checkLmdbFile(dir: string): void {
  const problem = lmdbFileProblem(join(dir, 'data.mdb'));
  if (problem !== null) {
    throw new KvError(
      'KV_ERR_CORRUPT',
      `storage: LMDB file ${join(dir, 'data.mdb')} is damaged (${problem}); restore the data ` +
        'directory from a backup, or empty it and let the node take its data from its replicas',
    );
  }
}

/** The problem with an LMDB data file, or null when its meta pages are sound (or it is new). */
export function lmdbFileProblem(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return null;
    const read = (at: number, length: number): Buffer => {
      const buf = Buffer.alloc(length);
      const n = readSync(fd, buf, 0, length, at);
      return buf.subarray(0, n);
    };
    const first = read(0, 512);
    if (first.length < PAGE_HEADER + 160) return `${size} bytes is too short for a meta page`;
    const pageSize = first.readUInt32LE(PAGE_HEADER + 24);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      return `meta page 0 is not an LMDB meta page (page size ${pageSize})`;
    }
    const pages = BigInt(Math.floor(size / pageSize));
    if (pages < 2n) return `${size} bytes is shorter than the two meta pages`;
    const metas: Meta[] = [];
    for (const page of [0, 1]) {
      const buf = read(page * pageSize, PAGE_HEADER + 160);
      const m = parseMeta(buf, `meta page ${page}`, true);
      if (typeof m === 'string') return m;
      metas.push(m);
    }
    const newest = metas[0]!.txnid >= metas[1]!.txnid ? metas[0]! : metas[1]!;
    const flushed = parseMeta(read(pageSize / 2, PAGE_HEADER + 160), 'flushed meta copy', false);
    if (typeof flushed === 'string') return flushed;
    if (flushed.txnid !== 0n) {
      if (flushed.txnid > newest.txnid) return 'flushed meta copy is newer than both meta pages';
      metas.push(flushed);
    }
    for (const m of metas) {
      if (m.lastPage >= pages) {
        return `${m.where} needs ${m.lastPage + 1n} pages of ${pageSize} bytes, the file has ${pages} (cut short?)`;
      }
      for (const root of m.roots) {
        if (root !== NO_PAGE && (root < 2n || root > m.lastPage)) {
          return `${m.where} names root page ${root} outside pages 2..${m.lastPage}`;
        }
      }
    }
    for (const root of newest.roots) {
      if (root === NO_PAGE) continue;
      const header = read(Number(root) * pageSize, PAGE_HEADER);
      const flags = header.length === PAGE_HEADER ? header.readUInt16LE(18) : 0;
      if (header.length < PAGE_HEADER || header.readBigUInt64LE(0) !== root) {
        return `page ${root} (a tree root in ${newest.where}) does not carry its own number`;
      }
      if ((flags & (P_BRANCH | P_LEAF)) === 0) {
        return `page ${root} (a tree root in ${newest.where}) is not a tree page (flags ${flags})`;
      }
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

function parseMeta(buf: Buffer, where: string, stamped: boolean): Meta | string {
  if (buf.length < PAGE_HEADER + 160) return `${where} is cut short`;
  const m = PAGE_HEADER;
  if (stamped) {
    if ((buf.readUInt16LE(18) & P_META) === 0) return `${where} is not marked as a meta page`;
    if (buf.readUInt32LE(m) !== MAGIC) return `${where} has no LMDB magic number`;
    const version = buf.readUInt32LE(m + 4) & 0xffff;
    if (version !== DATA_VERSION) return `${where} has data format ${version}, not ${DATA_VERSION}`;
  }
  const dbs = m + 24;
  return {
    where,
    roots: [0, 1].map((i) => buf.readBigUInt64LE(dbs + i * DB_SIZE + 40)),
    lastPage: buf.readBigUInt64LE(dbs + 2 * DB_SIZE),
    txnid: buf.readBigUInt64LE(dbs + 2 * DB_SIZE + 8),
  };
}
