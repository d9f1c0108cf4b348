// Checks the B+trees and the free list of the snapshot LMDB will open, page by page and without
// LMDB: run at start-up after an unclean stop, so that a snapshot a power cut left inconsistent
// is refused with a message instead of tripping one of LMDB's assertions (SIGABRT) or being
// written into. See docs/storage.md (Corruption).

import { closeSync, openSync, readSync } from 'node:fs';
import type { OpenedMeta } from './lmdb-check.ts';

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

/**
 * The first problem found in the snapshot `meta` of the LMDB file `path` (null when none): a tree
 * page that does not carry its own number or a tree page's flags, or that a later transaction
 * wrote (LMDB would take it for one of its own dirty pages), a page reached twice, a free-list
 * page that is also in use or free twice, a page past the snapshot's last page. Reads every
 * branch and leaf page of every database and the free list, and the first page of each overflow
 * value: about the size of the trees, not of the values.
 */
export function lmdbTreeProblem(path: string, meta: OpenedMeta): string | null {
  const fd = openSync(path, 'r');
  try {
    return new Walk(fd, meta).run();
  } finally {
    closeSync(fd);
  }
}

class Problem extends Error {}

/** Pages read with one `pread` when a branch's children lie next to each other in the file. */
const RUN_PAGES = 64;
const U32 = 0x1_0000_0000;

/** A u64 page number or transaction id at `at`, as a number (exact below 2^53). */
function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * U32;
}

class Walk {
  readonly #fd: number;
  readonly #m: OpenedMeta;
  readonly #txnid: number;
  readonly #used: Uint8Array;
  readonly #page: Buffer;
  /** One buffer of RUN_PAGES pages per tree level: a level's pages stay put while its children are read. */
  readonly #runs: Buffer[] = [];

  constructor(fd: number, meta: OpenedMeta) {
    this.#fd = fd;
    this.#m = meta;
    this.#txnid = Number(meta.txnid);
    this.#used = new Uint8Array(Number(meta.lastPage) + 1);
    this.#page = Buffer.alloc(meta.pageSize);
  }

  run(): string | null {
    try {
      const free: Buffer[] = [];
      this.#tree(this.#m.roots[0]!, 'the free list', (_key, data) => free.push(data));
      const subs: { name: string; root: bigint }[] = [];
      this.#tree(this.#m.roots[1]!, 'the main database', (key, data, flags) => {
        if (flags & F_SUBDATA && data.length >= 48) {
          subs.push({
            name: key.toString('latin1').replace(/\0$/, ''),
            root: data.readBigUInt64LE(40),
          });
        }
      });
      for (const s of subs) this.#tree(s.root, `database ${s.name}`, null);
      for (const record of free) this.#free(record);
      return null;
    } catch (err) {
      if (err instanceof Problem) return err.message;
      throw err;
    }
  }

  /** Throws unless `pgno` is a page of the snapshot. */
  #inFile(pgno: number, what: string): void {
    const { lastPage } = this.#m;
    if (pgno < 2 || pgno > Number(lastPage)) {
      throw new Problem(`${what} names page ${pgno}, outside pages 2..${lastPage}`);
    }
  }

  /** Reads `count` pages from `pgno` into `into`, whole or a Problem naming the first page. */
  #pread(into: Buffer, pgno: number, count: number, what: string): void {
    const bytes = count * this.#m.pageSize;
    const n = readSync(this.#fd, into, 0, bytes, pgno * this.#m.pageSize);
    if (n < bytes) throw new Problem(`${what} names page ${pgno}, past the end of the file`);
  }

  /** Checks the header of page `pgno`, read at `at` of `b`: its own number, not newer than the snapshot. */
  #header(b: Buffer, at: number, pgno: number, what: string): void {
    const own = u64(b, at);
    if (own !== pgno) throw new Problem(`page ${pgno} of ${what} carries number ${own}`);
    const txnid = u64(b, at + 8);
    if (txnid > this.#txnid) {
      throw new Problem(
        `page ${pgno} of ${what} was written by transaction ${txnid}, after the snapshot (${this.#m.txnid}) it belongs to`,
      );
    }
  }

  /** Reads page `pgno` into the shared buffer (valid until the next read). */
  #read(pgno: number, what: string): Buffer {
    this.#inFile(pgno, what);
    this.#pread(this.#page, pgno, 1, what);
    this.#header(this.#page, 0, pgno, what);
    return this.#page;
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

  /** The run buffer of tree level `depth`. */
  #run(depth: number): Buffer {
    this.#runs[depth] ??= Buffer.alloc(RUN_PAGES * this.#m.pageSize);
    return this.#runs[depth];
  }

  /**
   * Walks the tree at `root`, calling `leaf` for every value (null: the values are not needed,
   * only their overflow pages are claimed). A branch's children are read in page order, a run
   * of neighbouring pages with one read: a tree LMDB grew by appends lies mostly in order.
   */
  #tree(
    root: bigint,
    what: string,
    leaf: ((key: Buffer, data: Buffer, flags: number) => void) | null,
  ): void {
    if (root === NO_PAGE) return;
    const ps = this.#m.pageSize;
    const visit = (page: Buffer, at: number, pgno: number, depth: number): void => {
      const flags = page.readUInt16LE(at + 18);
      if ((flags & (P_BRANCH | P_LEAF)) === 0 || (flags & P_BRANCH && flags & P_LEAF)) {
        throw new Problem(`page ${pgno} of ${what} is not a branch or leaf page (flags ${flags})`);
      }
      const count = page.readUInt16LE(at + 20) >> 1;
      const end = at + ps;
      const children: number[] = [];
      for (let i = 0; i < count; i++) {
        const node = at + H + page.readUInt16LE(at + H + 2 * i);
        if (node + 8 > end) throw new Problem(`page ${pgno} of ${what} has a bad node`);
        const lo = page.readUInt16LE(node);
        const hi = page.readUInt16LE(node + 2);
        const nflags = page.readUInt16LE(node + 4);
        if (flags & P_BRANCH) {
          children.push(lo + hi * 0x1_0000 + nflags * U32);
          continue;
        }
        const size = lo + hi * 0x1_0000;
        const ksize = page.readUInt16LE(node + 6);
        const kat = node + 8;
        const vat = kat + ksize;
        // A value on overflow pages is named by {u64 page, u64 txnid, u64 pages}.
        const big = nflags & F_BIGDATA;
        if (vat + (big ? 24 : size) > end)
          throw new Problem(`page ${pgno} of ${what} has a bad node`);
        if (big) {
          const data = this.#overflow(
            u64(page, vat),
            u64(page, vat + 16),
            size,
            what,
            leaf !== null,
          );
          leaf?.(Buffer.from(page.subarray(kat, vat)), data, nflags);
        } else if (leaf) {
          // Copies: the page's buffer is read over by the next run.
          leaf(
            Buffer.from(page.subarray(kat, vat)),
            Buffer.from(page.subarray(vat, vat + size)),
            nflags,
          );
        }
      }
      if (children.length > 0) descend(children, depth + 1);
    };
    const descend = (children: number[], depth: number): void => {
      if (depth > MAX_DEPTH) throw new Problem(`${what} is deeper than ${MAX_DEPTH} levels`);
      for (const c of children) {
        this.#inFile(c, what);
        this.#claim(c, 1, what);
      }
      children.sort((a, b) => a - b);
      const buf = this.#run(depth);
      for (let i = 0; i < children.length; ) {
        let n = 1;
        while (n < RUN_PAGES && i + n < children.length && children[i + n] === children[i]! + n)
          n++;
        this.#pread(buf, children[i]!, n, what);
        for (let j = 0; j < n; j++) {
          this.#header(buf, j * ps, children[i + j]!, what);
          visit(buf, j * ps, children[i + j]!, depth);
        }
        i += n;
      }
    };
    descend([Number(root)], 0);
  }

  /** Claims an overflow value's pages and returns its bytes when `bytes` (the free list's). */
  #overflow(pgno: number, pages: number, size: number, what: string, bytes: boolean): Buffer {
    const ps = this.#m.pageSize;
    // At least the pages the value needs; more when a larger value's pages were overwritten.
    const least = Math.floor((H - 1 + size) / ps) + 1;
    const first = this.#read(pgno, what);
    const flags = first.readUInt16LE(18);
    if ((flags & P_OVERFLOW) === 0 || first.readUInt32LE(20) !== pages || pages < least) {
      throw new Problem(`page ${pgno} of ${what} is not the overflow page of a ${size}-byte value`);
    }
    this.#claim(pgno, pages, what);
    if (!bytes) return Buffer.alloc(0);
    const out = Buffer.alloc(pages * ps);
    readSync(this.#fd, out, 0, out.length, pgno * ps);
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
