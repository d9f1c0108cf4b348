// Checks the B+trees and the free list of the snapshot LMDB will open, page by page and without
// LMDB: run at start-up after an unclean stop, so that a snapshot a power cut left inconsistent
// is refused with a message instead of tripping one of LMDB's assertions (SIGABRT) or being
// written into. See docs/storage.md (Corruption).
//
// Two passes, so that the disk is read in order: after a power cut the file is not in the page
// cache, and a tree that grew by random inserts lies scattered over it (one page read at a time
// in tree order, 5M such keys took 53 s here; read in order, about the time of reading the file).
// The first pass reads the snapshot's pages in file order, in large reads, jumping over the
// later pages of overflow values, and notes what each page is; the second walks the trees over
// those notes from the roots. A page the first pass did not see (it lay inside what a damaged
// page claimed was an overflow value) is read on its own when the walk reaches it. While the
// first pass notes one read's pages, the next reads are already under way on libuv's thread pool
// (ReadAhead), so the disk does not wait for the main thread nor the main thread for the disk.
// The start's check (lmdbTreeProblemAsync) makes every read of the file on the thread pool: the
// event loop turns while the disk answers, however slowly (PoolFile).

import { close, closeSync, open, openSync, read, readSync } from 'node:fs';
import type { OpenedMeta } from './lmdb-check.ts';
import { countDiskOp } from './stall.ts';
import { runSteps, runStepsInSlices, type Steps, untilAborted } from './steps.ts';

/** LMDB's page header: u64 pgno, u64 txnid, u16 pad, u16 flags, u16 lower | u32 pages, u16 upper. */
export const PAGE_HEADER = 24;
const H = PAGE_HEADER;
export const P_BRANCH = 0x01;
export const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
/** A database without a tree (an empty one) has this root. */
export const NO_PAGE = 0xffff_ffff_ffff_ffffn;
const MAX_DEPTH = 32;
const IN_TREE = 1;
const FREE = 2;
/** Bytes the first pass reads at a time. */
const SCAN_BYTES = 4 << 20;
const U32 = 0x1_0000_0000;

/** What the first pass found a page to be (`Walk.#kind`). */
const Kind = {
  /** Not read yet. */
  Unseen: 0,
  /** Its header names another page, or a transaction after the snapshot. */
  BadHeader: 1,
  /** Neither a branch, a leaf nor an overflow page. */
  Other: 2,
  Branch: 3,
  Leaf: 4,
  Overflow: 5,
  /** A branch or leaf page with a node that does not fit the page. */
  BadNode: 6,
} as const;
type Kind = (typeof Kind)[keyof typeof Kind];

/** How the check reads (lmdbTreeProblem). */
export interface TreeCheckOptions {
  /**
   * The first pass's reads (SCAN_BYTES each) kept under way ahead of the one it notes, on libuv's
   * thread pool (default 2; 0: none, each read waits for the disk).
   */
  readAhead?: number;
  /** The first pass's read size in bytes, whole pages (default SCAN_BYTES, 4 MiB). */
  scanBytes?: number;
}

/**
 * Brings the file's next bytes into the page cache on libuv's thread pool while the first pass
 * notes the bytes it read; the pass then reads them from memory. The pass never waits for these
 * reads (it waits for its own only), so they never report back to it: they are bounded by where
 * they are asked for (at most `readAhead` reads past the pass), their bytes all land in one
 * scratch buffer nobody reads, and the file's descriptor closes once the last of them is done,
 * after the check returned (PoolFile).
 */
class ReadAhead {
  readonly #file: PoolFile;
  readonly #scratch: Buffer;
  /** Reads kept under way past where the pass reads. */
  readonly #depth: number;
  readonly #end: number;
  /** Bytes before this offset were asked for. */
  #asked = 0;

  constructor(file: PoolFile, chunk: number, depth: number, end: number) {
    this.#file = file;
    this.#scratch = Buffer.allocUnsafe(chunk);
    this.#depth = depth;
    this.#end = end;
  }

  /**
   * The pass reads next from `from`: asks for the bytes of the `depth` chunks after it (up to
   * the end) not asked for yet, a chunk per read.
   */
  ask(from: number): void {
    const chunk = this.#scratch.length;
    let at = Math.max(from, this.#asked);
    const end = Math.min(from + this.#depth * chunk, this.#end);
    for (; at < end; at += chunk) {
      // What it read, or why not, is the pass's own read's to find.
      this.#file.read(this.#scratch, Math.min(chunk, end - at), at).catch(() => {});
    }
    this.#asked = Math.max(this.#asked, at);
  }
}

/**
 * The checked file's descriptor, read on libuv's thread pool: each read is counted as disk work
 * out (countDiskOp: a process that exits while one hangs does not wait for it), and the
 * descriptor closes once no read of it is under way, so that a read a stop left behind (its
 * check rejected meanwhile) never finds another file at that number.
 */
class PoolFile {
  readonly fd: number;
  #pending = 0;
  #closed = false;

  constructor(fd: number) {
    this.fd = fd;
  }

  /** Reads `length` bytes at `position` into `buf` (from its start): the bytes read. */
  read(buf: Buffer, length: number, position: number): Promise<number> {
    this.#pending++;
    const done = new Promise<number>((resolve, reject) => {
      read(this.fd, buf, 0, length, position, (err, n) => {
        this.#settled();
        if (err) reject(err);
        else resolve(n);
      });
    });
    return countDiskOp(done);
  }

  /** No more reads; the descriptor closes when those under way are done. */
  close(): void {
    this.#closed = true;
    if (this.#pending === 0) closeSync(this.fd);
  }

  #settled(): void {
    this.#pending--;
    if (this.#closed && this.#pending === 0) closeSync(this.fd);
  }
}

/** How the walk reads: at once on its thread (the bytes read), or on the pool (a promise of them). */
type ReadAt = (buf: Buffer, length: number, position: number) => number | Promise<number>;

/** A u64 page number or transaction id at `at`, as a number (exact below 2^53). */
function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * U32;
}

/**
 * The first problem found in the snapshot `meta` of the LMDB file `path` (null when none): a tree
 * page that does not carry its own number or a tree page's flags, or that a later transaction
 * wrote (LMDB would take it for one of its own dirty pages), a page reached twice, a free-list
 * page that is also in use or free twice, a page past the snapshot's last page. Reads the
 * snapshot's pages in file order except the later pages of overflow values (about the size of
 * the trees and the free pages, not of large values), then walks the trees over what it noted.
 */
export function lmdbTreeProblem(
  path: string,
  meta: OpenedMeta,
  opts: TreeCheckOptions = {},
): string | null {
  const file = new PoolFile(openSync(path, 'r'));
  const readAt: ReadAt = (buf, length, position) => readSync(file.fd, buf, 0, length, position);
  return withWalk(file, readAt, meta, opts, runSteps);
}

/**
 * lmdbTreeProblem with every read of the file (its open too) on libuv's thread pool, the event
 * loop turning while each is under way and every `sliceMs` or so of the work between them, so
 * that a signal handler runs however slowly the disk answers; rejects with `signal`'s reason once
 * it aborts, at once, even while a read is under way (it goes on; the file closes after it).
 * For the start-up check of a large store: read cold, it took 53 s for 5M keys before it read in
 * file order, and still about the time of reading the file since. Until 2026-12-07 it read on
 * the event loop's thread between its slices: on a disk slow to answer (a cold network volume)
 * one read held a SIGTERM past the watchdog's grace, which then ended the start with SIGKILL.
 */
export async function lmdbTreeProblemAsync(
  path: string,
  meta: OpenedMeta,
  signal: AbortSignal,
  opts: TreeCheckOptions & { sliceMs?: number } = {},
): Promise<string | null> {
  const sliceMs = opts.sliceMs ?? 20;
  // A step waits for at most one read: 1 MiB reads, with as many bytes under way ahead as the
  // synchronous check keeps (2 x 4 MiB), so that the disk is kept busy in small reads.
  const scan = { scanBytes: 1 << 20, readAhead: 8, ...opts };
  const opening = countDiskOp(
    new Promise<number>((resolve, reject) =>
      open(path, 'r', (err, fd) => (err ? reject(err) : resolve(fd))),
    ),
  );
  let fd: number;
  try {
    fd = await untilAborted(opening, signal);
  } catch (err) {
    // A stop while the open was under way: the descriptor it makes is closed once it is made.
    opening.then(
      (late) => close(late, () => {}),
      () => {},
    );
    throw err;
  }
  const file = new PoolFile(fd);
  const readAt: ReadAt = (buf, length, position) => file.read(buf, length, position);
  return withWalk(file, readAt, meta, scan, (steps) => runStepsInSlices(steps, signal, sliceMs));
}

/** Runs `use` over a Walk's steps on `file`, closing it after (also on a throw). */
function withWalk<T>(
  file: PoolFile,
  readAt: ReadAt,
  meta: OpenedMeta,
  opts: TreeCheckOptions,
  use: (steps: Steps<string | null>) => T,
): T {
  const readAhead = opts.readAhead ?? 2;
  const ps = meta.pageSize;
  const scan = opts.scanBytes ?? SCAN_BYTES;
  const chunk = Math.max(ps, scan - (scan % ps));
  const end = (Number(meta.lastPage) + 1) * ps;
  const ahead = readAhead > 0 ? new ReadAhead(file, chunk, readAhead, end) : null;
  const done = () => file.close();
  let result: T;
  try {
    result = use(new Walk(readAt, meta, chunk, ahead).run());
  } catch (err) {
    done();
    throw err;
  }
  if (!(result instanceof Promise)) {
    done();
    return result;
  }
  return result.finally(done) as T;
}

class Problem extends Error {}

/** Called for each value of a tree: its key, its bytes (read when asked) and node flags. */
type Visit = (key: Buffer, data: () => Steps<Buffer>, flags: number) => Steps<void>;

class Walk {
  readonly #readAt: ReadAt;
  readonly #m: OpenedMeta;
  readonly #ps: number;
  readonly #last: number;
  readonly #txnid: number;
  readonly #used: Uint8Array;
  readonly #kind: Uint8Array;
  /** A branch page's children. */
  readonly #children = new Map<number, number[]>();
  /** A leaf page's values on overflow pages: [first page, pages, bytes] each. */
  readonly #big = new Map<number, number[]>();
  /** An overflow page's page count. */
  readonly #pages = new Map<number, number>();
  readonly #page: Buffer;
  /** The first pass's read size. */
  readonly #chunk: number;
  readonly #ahead: ReadAhead | null;

  constructor(readAt: ReadAt, meta: OpenedMeta, chunk: number, ahead: ReadAhead | null) {
    this.#readAt = readAt;
    this.#chunk = chunk;
    this.#ahead = ahead;
    this.#m = meta;
    this.#ps = meta.pageSize;
    this.#last = Number(meta.lastPage);
    this.#txnid = Number(meta.txnid);
    this.#used = new Uint8Array(this.#last + 1);
    this.#kind = new Uint8Array(this.#last + 1);
    this.#page = Buffer.alloc(meta.pageSize);
  }

  /** The check, a step at a time (see lmdbTreeProblemAsync); returns the problem or null. */
  *run(): Steps<string | null> {
    try {
      yield* this.#scanFile();
      const free: Buffer[] = [];
      const snapshot = this.#m.txnid;
      // A free-list record is keyed by the id of the transaction that freed its pages; a key of
      // another size is another tree's record that reached the free list's pages.
      yield* this.#tree(this.#m.roots[0]!, 'the free list', function* (key, data) {
        if (key.length !== 8) {
          throw new Problem(
            `the free list holds a record that is not a list of free pages (a ${key.length}-byte key)`,
          );
        }
        const txnid = key.readBigUInt64LE(0);
        if (txnid > snapshot) {
          throw new Problem(
            `the free list holds pages freed by transaction ${txnid}, after the snapshot (${snapshot})`,
          );
        }
        free.push(yield* data());
      });
      const subs: { name: string; root: bigint }[] = [];
      yield* this.#tree(this.#m.roots[1]!, 'the main database', function* (key, value, flags) {
        const data = yield* value();
        if (flags & F_SUBDATA && data.length >= 48) {
          subs.push({
            name: key.toString('latin1').replace(/\0$/, ''),
            root: data.readBigUInt64LE(40),
          });
        }
      });
      for (const s of subs) yield* this.#tree(s.root, `database ${s.name}`, null);
      for (const record of free) this.#free(record);
      return null;
    } catch (err) {
      if (err instanceof Problem) return err.message;
      throw err;
    }
  }

  /**
   * `length` bytes at `position` into `buf`: the bytes read. A read on the thread pool is a step
   * of its own, which the runner waits for (runStepsInSlices).
   */
  *#pread(buf: Buffer, length: number, position: number): Steps<number> {
    return yield* this.#bytesRead(this.#readAt(buf, length, position));
  }

  /** What a read (#readAt) read, once it is done. */
  *#bytesRead(n: number | Promise<number>): Steps<number> {
    if (typeof n === 'number') return n;
    const got = { n: 0, failed: false, err: undefined as unknown };
    yield n.then(
      (bytes) => {
        got.n = bytes;
      },
      (err: unknown) => {
        got.failed = true;
        got.err = err;
      },
    );
    if (got.failed) throw got.err;
    return got.n;
  }

  /** The first pass: pages 2..last in file order, a chunk at a time (a step each). */
  *#scanFile(): Steps<void> {
    const ps = this.#ps;
    const buf = Buffer.alloc(this.#chunk);
    let next = 2;
    while (next <= this.#last) {
      const count = Math.min(buf.length / ps, this.#last + 1 - next);
      // The read first, then those ahead of it: on the thread pool, it is not queued behind them.
      const reading = this.#readAt(buf, count * ps, next * ps);
      this.#ahead?.ask((next + count) * ps);
      const n = yield* this.#bytesRead(reading);
      const whole = Math.floor(n / ps);
      if (whole === 0) return; // the file ends early: the walk names the page it misses
      const first = next;
      next = first + whole;
      for (let i = 0; i < whole; ) {
        const skip = this.#scan(buf, i * ps, first + i);
        i += skip;
        if (i > whole) next = first + i;
      }
      yield;
    }
  }

  /**
   * Notes what page `pgno`, at `at` of `b`, is; returns how many pages on the next one starts
   * (an overflow value's pages, or 1).
   */
  #scan(b: Buffer, at: number, pgno: number): number {
    if (u64(b, at) !== pgno || u64(b, at + 8) > this.#txnid) {
      this.#kind[pgno] = Kind.BadHeader;
      return 1;
    }
    const flags = b.readUInt16LE(at + 18);
    if (flags & P_OVERFLOW) {
      const pages = b.readUInt32LE(at + 20);
      this.#kind[pgno] = Kind.Overflow;
      this.#pages.set(pgno, pages);
      return Math.max(1, pages);
    }
    const branch = flags & P_BRANCH;
    if ((flags & (P_BRANCH | P_LEAF)) === 0 || (branch && flags & P_LEAF)) {
      this.#kind[pgno] = Kind.Other;
      return 1;
    }
    const end = at + this.#ps;
    const count = b.readUInt16LE(at + 20) >> 1;
    const children: number[] = [];
    let big: number[] | null = null;
    this.#kind[pgno] = branch ? Kind.Branch : Kind.Leaf;
    for (let i = 0; i < count; i++) {
      const node = at + H + b.readUInt16LE(at + H + 2 * i);
      if (node + 8 > end) {
        this.#kind[pgno] = Kind.BadNode;
        return 1;
      }
      const lo = b.readUInt16LE(node);
      const hi = b.readUInt16LE(node + 2);
      const nflags = b.readUInt16LE(node + 4);
      if (branch) {
        children.push(lo + hi * 0x1_0000 + nflags * U32);
        continue;
      }
      const size = lo + hi * 0x1_0000;
      const vat = node + 8 + b.readUInt16LE(node + 6);
      // A value on overflow pages is named by {u64 page, u64 txnid, u64 pages}.
      const onOverflow = nflags & F_BIGDATA;
      if (vat + (onOverflow ? 24 : size) > end) {
        this.#kind[pgno] = Kind.BadNode;
        return 1;
      }
      if (onOverflow) {
        big ??= [];
        big.push(u64(b, vat), u64(b, vat + 16), size);
      }
    }
    if (branch) this.#children.set(pgno, children);
    else if (big) this.#big.set(pgno, big);
    return 1;
  }

  /** Throws unless `pgno` is a page of the snapshot. */
  #inFile(pgno: number, what: string): void {
    if (pgno < 2 || pgno > this.#last) {
      throw new Problem(`${what} names page ${pgno}, outside pages 2..${this.#m.lastPage}`);
    }
  }

  /**
   * Reads page `pgno` of `what` into the shared buffer (valid until the next read), throwing what
   * is wrong with its header: its own number, a transaction after the snapshot.
   */
  *#read(pgno: number, what: string): Steps<Buffer> {
    this.#inFile(pgno, what);
    const n = yield* this.#pread(this.#page, this.#ps, pgno * this.#ps);
    if (n < this.#ps) throw new Problem(`${what} names page ${pgno}, past the end of the file`);
    const own = u64(this.#page, 0);
    if (own !== pgno) throw new Problem(`page ${pgno} of ${what} carries number ${own}`);
    const txnid = u64(this.#page, 8);
    if (txnid > this.#txnid) {
      throw new Problem(
        `page ${pgno} of ${what} was written by transaction ${txnid}, after the snapshot (${this.#m.txnid}) it belongs to`,
      );
    }
    return this.#page;
  }

  /** What page `pgno` is; one the first pass did not see is read now. */
  *#kindOf(pgno: number, what: string): Steps<Kind> {
    if (this.#kind[pgno] === Kind.Unseen) this.#scan(yield* this.#read(pgno, what), 0, pgno);
    const kind = this.#kind[pgno] as Kind;
    if (kind === Kind.BadHeader) yield* this.#read(pgno, what); // throws what is wrong
    return kind;
  }

  /**
   * Marks pages as in use by a tree (1) or free (2). A page listed free twice is let pass: lmdb-js
   * drops such duplicates when it reads the free list.
   */
  #claim(pgno: number, count: number, what: string, mark: 1 | 2 = IN_TREE): void {
    for (let i = 0; i < count; i++) {
      const p = pgno + i;
      if (p < 2 || p >= this.#used.length)
        throw new Problem(`${what} names page ${p}, outside pages 2..${this.#used.length - 1}`);
      const was = this.#used[p];
      if (was === IN_TREE) {
        throw new Problem(
          `page ${p} is in use in a tree and also ${mark === FREE ? 'listed free' : `reached again from ${what}`}`,
        );
      }
      if (was === FREE && mark === IN_TREE)
        throw new Problem(`page ${p} is both free and in ${what}`);
      this.#used[p] = mark;
    }
  }

  /**
   * Walks the tree at `root` over the first pass's notes, calling `leaf` for every value (null:
   * the values are not needed, only their overflow pages are claimed; the trees that need them,
   * the free list and the main database, are small, and their leaves are read again).
   */
  *#tree(root: bigint, what: string, leaf: Visit | null): Steps<void> {
    if (root === NO_PAGE) return;
    const self = this;
    // A step per branch page.
    function* descend(children: readonly number[], depth: number): Steps<void> {
      if (depth > MAX_DEPTH) throw new Problem(`${what} is deeper than ${MAX_DEPTH} levels`);
      for (const c of children) {
        self.#inFile(c, what);
        self.#claim(c, 1, what);
      }
      for (const c of children) {
        const kind = yield* self.#kindOf(c, what);
        if (kind === Kind.Branch) yield* descend(self.#children.get(c)!, depth + 1);
        else if (kind === Kind.Leaf) yield* self.#leaf(c, what, leaf);
        else if (kind === Kind.BadNode) throw new Problem(`page ${c} of ${what} has a bad node`);
        else {
          const flags = (yield* self.#read(c, what)).readUInt16LE(18);
          throw new Problem(`page ${c} of ${what} is not a branch or leaf page (flags ${flags})`);
        }
      }
      yield;
    }
    yield* descend([Number(root)], 0);
  }

  /** Claims leaf `pgno`'s overflow values; with `leaf`, reads it again and calls it for each value. */
  *#leaf(pgno: number, what: string, leaf: Visit | null): Steps<void> {
    if (!leaf) {
      const big = this.#big.get(pgno) ?? [];
      for (let i = 0; i < big.length; i += 3) {
        yield* this.#overflow(big[i]!, big[i + 1]!, big[i + 2]!, what, false);
      }
      return;
    }
    const self = this;
    const page = Buffer.from(yield* this.#read(pgno, what));
    for (let i = 0; i < page.readUInt16LE(20) >> 1; i++) {
      const node = H + page.readUInt16LE(H + 2 * i);
      const size = page.readUInt16LE(node) + page.readUInt16LE(node + 2) * 0x1_0000;
      const nflags = page.readUInt16LE(node + 4);
      const vat = node + 8 + page.readUInt16LE(node + 6);
      const key = page.subarray(node + 8, vat);
      // The free list's callback judges the key before its value's pages are followed.
      const data = function* (): Steps<Buffer> {
        if (nflags & F_BIGDATA)
          return yield* self.#overflow(u64(page, vat), u64(page, vat + 16), size, what, true);
        return page.subarray(vat, vat + size);
      };
      yield* leaf(key, data, nflags);
    }
  }

  /** Claims an overflow value's pages and returns its bytes when `bytes` (the free list's). */
  *#overflow(
    pgno: number,
    pages: number,
    size: number,
    what: string,
    bytes: boolean,
  ): Steps<Buffer> {
    const ps = this.#ps;
    // At least the pages the value needs; more when a larger value's pages were overwritten.
    const least = Math.floor((H - 1 + size) / ps) + 1;
    this.#inFile(pgno, what);
    if (
      (yield* this.#kindOf(pgno, what)) !== Kind.Overflow ||
      this.#pages.get(pgno) !== pages ||
      pages < least
    ) {
      throw new Problem(`page ${pgno} of ${what} is not the overflow page of a ${size}-byte value`);
    }
    this.#claim(pgno, pages, what);
    if (!bytes) return Buffer.alloc(0);
    const out = Buffer.alloc(pages * ps);
    yield* this.#pread(out, out.length, pgno * ps);
    return out.subarray(H, H + size);
  }

  /** A free-list record: a count, then page numbers, or a negative run length and its start. */
  #free(record: Buffer): void {
    if (record.length < 8) return;
    const count = Number(record.readBigUInt64LE(0));
    for (let i = 1; i <= count && 8 * (i + 1) <= record.length; i++) {
      const e = record.readBigInt64LE(8 * i);
      if (e === 0n) continue;
      let start = e;
      let n = 1;
      if (e < 0n) {
        n = Number(-e);
        i++;
        if (8 * (i + 1) > record.length) break;
        start = record.readBigInt64LE(8 * i);
      }
      this.#claim(Number(start), n, 'the free list', FREE);
    }
  }
}
