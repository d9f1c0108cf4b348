// Checks an LMDB data file before LMDB maps it: a file cut short or meta pages overwritten would
// otherwise end the process with SIGBUS or SIGSEGV, with no log line. Also the options every
// LMDB environment here is opened with: the check reads the snapshot those options make LMDB open.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { KvError } from '../errors/index.ts';
import { lmdbTreeProblem, NO_PAGE, P_BRANCH, P_LEAF, PAGE_HEADER } from './lmdb-tree.ts';

// Layout (lmdb-js's LMDB, 64-bit): a page starts with a 24-byte header [u64 pgno][u64 txnid]
// [u16 pad][u16 flags][u16 lower][u16 upper]. Pages 0 and 1 are meta pages; with lmdb-js's
// overlapping sync a third copy (the last flushed meta, without magic) sits at half a page. A
// meta: [u32 magic][u32 version][u64 address][u64 map size][2 x 48-byte db: u32 pad (the page
// size, for the free db), u16 flags, u16 depth, u64 branch, leaf, overflow pages, entries,
// root][u64 last page][u64 txnid].
const MAGIC = 0xbeef_c0de;
const DATA_VERSION = 2;
const P_META = 0x08;
const DB_SIZE = 48;
/** Set in a meta's free-db flags by a commit whose pages may not be on disk yet. */
const MDB_OVERLAPPINGSYNC = 0x1000;

/**
 * How every LMDB environment of a store is opened (lmdb-js options).
 *
 * With overlapping sync (lmdb-js's default on Linux) a commit writes its meta page before its
 * data pages are flushed, and marks it unflushed; after the flush a copy of the meta without the
 * mark is written at half a page. On open lmdb-js trusts an unflushed meta when the machine has
 * not rebooted since (same /proc boot id), which a process crash allows but a power cut without a
 * reboot does not: a VM restored or paused, storage failing over, a FUSE or network disk. Its
 * data pages may never have reached the disk. `safeRestore` makes LMDB always open the newest
 * flushed snapshot instead; the store loses nothing by it, because a write-ahead log segment is
 * dropped only after LMDB flushed past it, and writes outside the log wait for the flush.
 */
export const LMDB_ENV_OPTIONS = {
  noSubdir: false,
  maxDbs: 8,
  compression: false,
  overlappingSync: true,
  safeRestore: true,
  // No mapSize: lmdb-js's own map (grown as the file grows) is kept. A fixed 1 TiB map (66ebb19,
  // to stop outgrown maps counting in RSS) was reverted: with it a read-only open of a directory
  // left by SIGKILL answered MDB_PANIC, and a node starting after a power cut aborted in LMDB
  // (`Assertion 'IS_LEAF(mp)' failed in mdb_cursor_next`), while the same tests pass without it.
} as const;

interface Meta {
  readonly where: string;
  readonly txnid: bigint;
  readonly unflushed: boolean;
  readonly lastPage: bigint;
  /** The free list's root, then the main database's. */
  readonly roots: readonly bigint[];
}

/** The snapshot LMDB opens: its meta, the file's page size, and whether a later commit exists. */
export interface OpenedMeta extends Meta {
  readonly pageSize: number;
  /** A commit newer than this snapshot reached the file (it was not flushed before a stop). */
  readonly superseded: boolean;
}

/** What checking a data file found: a problem, or the snapshot LMDB will open (null: no file). */
export type LmdbFileCheck = { problem: string } | { problem: null; opened: OpenedMeta | null };

/**
 * The meta LMDB opens with LMDB_ENV_OPTIONS: mdb_pick_meta with MDB_PREVSNAPSHOT and
 * MDB_SAFE_RESTORE, applied to the two meta pages and then to the flushed copy (lmdb-js's
 * mdb_env_pick_meta). An unflushed newest meta gives way to the older candidate.
 */
function pick(a: Meta, b: Meta): Meta {
  if (b.txnid === 0n) return a;
  const latest = a.txnid >= b.txnid ? a : b;
  if (!latest.unflushed) return latest;
  return a.txnid > b.txnid ? b : a;
}

/**
 * Throws KV_ERR_CORRUPT naming the file and the problem when `dir/data.mdb` exists but its
 * meta pages are not LMDB's, or the snapshot LMDB would open points past the end of the file or
 * names tree roots that are not tree pages. A missing or empty file is fine (a new store).
 */
export function checkLmdbFile(dir: string): OpenedMeta | null {
  const check = lmdbFileCheck(join(dir, 'data.mdb'));
  if (check.problem !== null) throw damaged(dir, check.problem);
  return check.opened;
}

/**
 * Throws KV_ERR_CORRUPT when the trees or the free list of `opened` (checkLmdbFile's snapshot of
 * `dir`) are not a consistent snapshot (lmdbTreeProblem): for a start after an unclean stop.
 */
export function checkLmdbTrees(dir: string, opened: OpenedMeta): void {
  const problem = lmdbTreeProblem(join(dir, 'data.mdb'), opened);
  if (problem !== null) throw damaged(dir, problem);
}

function damaged(dir: string, problem: string): KvError {
  return new KvError(
    'KV_ERR_CORRUPT',
    `storage: LMDB file ${join(dir, 'data.mdb')} is damaged (${problem}); restore the data ` +
      'directory from a backup, or empty it and let the node take its data from its replicas',
  );
}

/** The problem with an LMDB data file, or null when its meta pages are sound (or it is new). */
export function lmdbFileProblem(path: string): string | null {
  return lmdbFileCheck(path).problem;
}

/** lmdbFileProblem, and when there is none the snapshot LMDB will open. */
export function lmdbFileCheck(path: string): LmdbFileCheck {
  const ok = (opened: OpenedMeta | null) => ({ problem: null, opened });
  const bad = (problem: string) => ({ problem });
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ok(null);
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return ok(null);
    const read = (at: number, length: number): Buffer => {
      const buf = Buffer.alloc(length);
      const n = readSync(fd, buf, 0, length, at);
      return buf.subarray(0, n);
    };
    const first = read(0, 512);
    if (first.length < PAGE_HEADER + 160) return bad(`${size} bytes is too short for a meta page`);
    const pageSize = first.readUInt32LE(PAGE_HEADER + 24);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      return bad(`meta page 0 is not an LMDB meta page (page size ${pageSize})`);
    }
    const pages = BigInt(Math.floor(size / pageSize));
    if (pages < 2n) return bad(`${size} bytes is shorter than the two meta pages`);
    const metas: Meta[] = [];
    for (const page of [0, 1]) {
      const buf = read(page * pageSize, PAGE_HEADER + 160);
      const m = parseMeta(buf, `meta page ${page}`, true);
      if (typeof m === 'string') return bad(m);
      metas.push(m);
    }
    const newest = metas[0]!.txnid >= metas[1]!.txnid ? metas[0]! : metas[1]!;
    const flushed = parseMeta(read(pageSize / 2, PAGE_HEADER + 160), 'flushed meta copy', false);
    if (typeof flushed === 'string') return bad(flushed);
    if (flushed.txnid > newest.txnid) return bad('flushed meta copy is newer than both meta pages');
    // Only the snapshot LMDB opens is read: an unflushed meta it passes over may name pages that
    // never reached the disk, and that is no damage.
    const opened = pick(pick(metas[0]!, metas[1]!), flushed);
    // The last page may lie past the end of the file: pages a commit allocated and freed again
    // (LMDB's loose pages) go to the free list unwritten, so the file can end before them; they
    // are written when reused. The roots must be in the file.
    for (const root of opened.roots) {
      if (root === NO_PAGE) continue;
      if (root < 2n || root > opened.lastPage) {
        return bad(`${opened.where} names root page ${root} outside pages 2..${opened.lastPage}`);
      }
      if (root >= pages) {
        return bad(
          `${opened.where} names root page ${root}, past the file's ${pages} pages of ${pageSize} bytes (cut short?)`,
        );
      }
      const header = read(Number(root) * pageSize, PAGE_HEADER);
      const flags = header.length === PAGE_HEADER ? header.readUInt16LE(18) : 0;
      if (header.length < PAGE_HEADER || header.readBigUInt64LE(0) !== root) {
        return bad(`page ${root} (a tree root in ${opened.where}) does not carry its own number`);
      }
      if ((flags & (P_BRANCH | P_LEAF)) === 0) {
        return bad(
          `page ${root} (a tree root in ${opened.where}) is not a tree page (flags ${flags})`,
        );
      }
    }
    return ok({ ...opened, pageSize, superseded: newest.txnid > opened.txnid });
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
    unflushed: (buf.readUInt16LE(dbs + 4) & MDB_OVERLAPPINGSYNC) !== 0,
    roots: [0, 1].map((i) => buf.readBigUInt64LE(dbs + i * DB_SIZE + 40)),
    lastPage: buf.readBigUInt64LE(dbs + 2 * DB_SIZE),
    txnid: buf.readBigUInt64LE(dbs + 2 * DB_SIZE + 8),
  };
}
