// Checks an LMDB data file before LMDB maps it: a file cut short or meta pages overwritten would
// otherwise end the process with SIGBUS or SIGSEGV, with no log line. Also the options every
// LMDB environment here is opened with: the check reads the snapshot those options make LMDB open.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { KvError } from '../errors/index.ts';
import {
  lmdbTreeProblem,
  lmdbTreeProblemAsync,
  NO_PAGE,
  P_BRANCH,
  P_LEAF,
  PAGE_HEADER,
} from './lmdb-tree.ts';

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
 * How every LMDB environment of a store is opened (lmdb-js options): LMDB's own sync. A commit
 * writes its data pages and syncs them, then writes its meta page through a synchronous file
 * descriptor, so the newest meta page on disk always names pages that are on disk, and a commit
 * reuses only pages that no meta page on disk can still name (LMDB keeps two meta pages for
 * that). A power cut opens the last commit that returned; nothing is trusted on faith.
 *
 * lmdb-js's overlapping sync (its default on Linux, used here until 2026-12) wrote the meta page
 * before the data pages were flushed and opened the last flushed snapshot after a cut
 * (`safeRestore`); but its commits reused pages that snapshot still named (mdb.c:
 * mdb_find_oldest takes the last synchronous commit as the oldest snapshot, not the flushed
 * one), so a cut could leave the snapshot it opens inconsistent (docs/storage.md, power-loss
 * testing). A store behind the write-ahead log gains little from it: LMDB commits once a second.
 *
 * noMetaSync (MDB_NOMETASYNC): a commit still writes its data pages and syncs them (fdatasync)
 * before it writes its meta page, but writes the meta page without a sync of its own; the next
 * commit's fdatasync, or the store's explicit sync (LmdbSync, before the log drops a segment or
 * a write outside the log is acknowledged), makes it durable. Crash consistency holds as
 * before: a meta page on disk still names only synced pages, and a commit reuses only pages
 * freed before the previous commit (mdb_find_oldest: txnid - 1), so the older of the two meta
 * pages, durable since the last commit's sync, still names intact pages if the newest meta is
 * lost. Why: LMDB's synchronous meta write is the one write whose failure LMDB cannot undo; it
 * marks the environment failed for good (MDB_FATAL_ERROR, then MDB_PANIC for every transaction,
 * read or write), and lmdb-js 3.5.6 does not survive that state (its writer returns holding its
 * lock, its reads renew transactions that failed: SIGSEGV or glibc's "corrupted double-linked
 * list" within a second; chaos seed 26008). With noMetaSync a failing disk fails the fdatasync,
 * which LMDB reports as an ordinary failed commit, and the store then stops giving LMDB anything
 * and the node exits (LmdbHealth.fatal; docs/storage.md, "When the disk fails").
 */
export const LMDB_ENV_OPTIONS = {
  noSubdir: false,
  maxDbs: 8,
  compression: false,
  overlappingSync: false,
  safeRestore: false,
  noMetaSync: true,
  // No mapSize: lmdb-js's own map (grown as the file grows) is kept. A fixed 1 TiB map (66ebb19,
  // to stop outgrown maps counting in RSS) was reverted: with it a read-only open of a directory
  // left by SIGKILL answered MDB_PANIC, and a node starting after a power cut aborted in LMDB
  // (`Assertion 'IS_LEAF(mp)' failed in mdb_cursor_next`), while the same tests pass without it.
} as const;

/**
 * The options a data file last written with overlapping sync is opened with once, when its
 * newest commit was never flushed (OpenedMeta.rollback): lmdb-js then opens the newest flushed
 * snapshot and, as the only process with the file open, writes that snapshot's meta over both
 * meta pages (mdb_env_open, <lmdb-js> rollback), so the classic open after it cannot trust the
 * unflushed meta. Opening such a file with LMDB_ENV_OPTIONS directly would open that meta.
 */
export const LMDB_OVERLAPPING_ENV_OPTIONS = {
  ...LMDB_ENV_OPTIONS,
  noMetaSync: false,
  overlappingSync: true,
  safeRestore: true,
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
  /**
   * The file was last written with overlapping sync and its newest commit was not flushed: it
   * must be opened once with LMDB_OVERLAPPING_ENV_OPTIONS (which rolls it back to this snapshot)
   * before LMDB_ENV_OPTIONS, which would open the unflushed commit.
   */
  readonly rollback: boolean;
}

/** What checking a data file found: a problem, or the snapshot LMDB will open (null: no file). */
export type LmdbFileCheck = { problem: string } | { problem: null; opened: OpenedMeta | null };

/**
 * The meta LMDB_OVERLAPPING_ENV_OPTIONS open: mdb_pick_meta with MDB_PREVSNAPSHOT and
 * MDB_SAFE_RESTORE, applied to the two meta pages and then to the flushed copy (lmdb-js's
 * mdb_env_pick_meta). An unflushed newest meta gives way to the older candidate. The classic
 * open (LMDB_ENV_OPTIONS) takes the newer of the two meta pages, whatever its flags.
 */
function pickFlushed(a: Meta, b: Meta): Meta {
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

/** checkLmdbTrees that `signal` ends (lmdbTreeProblemAsync): rejects with its reason. */
export async function checkLmdbTreesAsync(
  dir: string,
  opened: OpenedMeta,
  signal: AbortSignal,
): Promise<void> {
  const problem = await lmdbTreeProblemAsync(join(dir, 'data.mdb'), opened, signal);
  if (problem !== null) throw damaged(dir, problem);
}

/**
 * Opens `dir` once the way it was last written (overlapping sync, safe restore) and closes it:
 * lmdb-js rolls the file back to its newest flushed snapshot, writing that snapshot's meta over
 * both meta pages, so that LMDB_ENV_OPTIONS open that snapshot too. For a file whose
 * checkLmdbFile snapshot says `rollback`; the caller must be the only process with it open (the
 * data directory's lock), as lmdb-js rolls back only then. Throws if the file still needs it.
 */
export function rollBackUnflushed(dir: string): void {
  const env = open({ path: dir, ...LMDB_OVERLAPPING_ENV_OPTIONS });
  // Nothing written or read: the close ends the environment at once (no commit to wait for), so
  // the next open makes a new one with the caller's options, not this one shared.
  void env.close();
  const closed = (env as unknown as { status?: string }).status === 'closed';
  const after = checkLmdbFile(dir);
  if (!closed || after?.rollback) {
    throw new Error(`LMDB did not roll ${join(dir, 'data.mdb')} back to its flushed snapshot`);
  }
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
    // The flushed copy at half a page is written by overlapping sync only: after a change to the
    // classic sync it stays behind, older than both meta pages, and names nothing opened.
    const flushed = parseMeta(read(pageSize / 2, PAGE_HEADER + 160), 'flushed meta copy', false);
    if (typeof flushed === 'string') return bad(flushed);
    if (flushed.txnid > newest.txnid) return bad('flushed meta copy is newer than both meta pages');
    // A newest meta an overlapping-sync commit left unflushed (its flushed copy is older) is
    // rolled back by the first open (`rollback`), and the snapshot opened is the flushed one;
    // any other newest meta is what the classic open takes. Only that snapshot is read: an
    // unflushed meta passed over may name pages that never reached the disk, and that is no
    // damage.
    const safe = pickFlushed(pickFlushed(metas[0]!, metas[1]!), flushed);
    const rollback = safe.txnid < newest.txnid;
    const opened = rollback ? safe : newest;
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
    return ok({ ...opened, pageSize, superseded: rollback, rollback });
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
