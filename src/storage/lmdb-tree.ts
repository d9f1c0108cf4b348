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

class Walk {
  readonly #fd: number;
  readonly #m: OpenedMeta;
  readonly #used: Uint8Array;
  readonly #page: Buffer;

  constructor(fd: number, meta: OpenedMeta) {
    this.#fd = fd;
    this.#m = meta;
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
      for (const s of subs) this.#tree(s.root, `database ${s.name}`, () => {});
      for (const record of free) this.#free(record);
      return null;
    } catch (err) {
      if (err instanceof Problem) return err.message;
      throw err;
    }
  }

  /** Reads page `pgno` into the shared buffer (valid until the next read). */
  #read(pgno: bigint, what: string): Buffer {
    const { pageSize, lastPage } = this.#m;
    if (pgno < 2n || pgno > lastPage) {
      throw new Problem(`${what} names page ${pgno}, outside pages 2..${lastPage}`);
    }
    const n = readSync(this.#fd, this.#page, 0, pageSize, Number(pgno) * pageSize);
    if (n < pageSize) throw new Problem(`${what} names page ${pgno}, past the end of the file`);
    if (this.#page.readBigUInt64LE(0) !== pgno) {
      throw new Problem(`page ${pgno} of ${what} carries number ${this.#page.readBigUInt64LE(0)}`);
    }
    const txnid = this.#page.readBigUInt64LE(8);
    if (txnid > this.#m.txnid) {
      throw new Problem(
        `page ${pgno} of ${what} was written by transaction ${txnid}, after the snapshot (${this.#m.txnid}) it belongs to`,
      );
    }
    return this.#page;
  }

  /**
   * Marks pages as in use by a tree (1) or free (2). A page listed free twice is let pass: lmdb-js
   * drops such duplicates when it reads the free list.
   */
  #claim(pgno: bigint, count: number, what: string, mark: 1 | 2 = IN_TREE): void {
    for (let i = 0; i < count; i++) {
      const p = Number(pgno) + i;
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

  #tree(root: bigint, what: string, leaf: (key: Buffer, data: Buffer, flags: number) => void) {
    if (root === NO_PAGE) return;
    const walk = (pgno: bigint, depth: number): void => {
      if (depth > MAX_DEPTH) throw new Problem(`${what} is deeper than ${MAX_DEPTH} levels`);
      this.#claim(pgno, 1, what);
      const page = Buffer.from(this.#read(pgno, what));
      const flags = page.readUInt16LE(18);
      if ((flags & (P_BRANCH | P_LEAF)) === 0 || (flags & P_BRANCH && flags & P_LEAF)) {
        throw new Problem(`page ${pgno} of ${what} is not a branch or leaf page (flags ${flags})`);
      }
      const count = page.readUInt16LE(20) >> 1;
      for (let i = 0; i < count; i++) {
        const node = H + page.readUInt16LE(H + 2 * i);
        if (node + 8 > page.length) throw new Problem(`page ${pgno} of ${what} has a bad node`);
        const lo = page.readUInt16LE(node);
        const hi = page.readUInt16LE(node + 2);
        const nflags = page.readUInt16LE(node + 4);
        const ksize = page.readUInt16LE(node + 6);
        if (flags & P_BRANCH) {
          walk(BigInt(lo) | (BigInt(hi) << 16n) | (BigInt(nflags) << 32n), depth + 1);
          continue;
        }
        const size = lo | (hi << 16);
        const at = node + 8 + ksize;
        // A value on overflow pages is named by {u64 page, u64 txnid, u64 pages}.
        const inline = nflags & F_BIGDATA ? 24 : size;
        if (at + inline > page.length) throw new Problem(`page ${pgno} of ${what} has a bad node`);
        const key = page.subarray(node + 8, at);
        const data =
          nflags & F_BIGDATA
            ? this.#overflow(
                page.readBigUInt64LE(at),
                Number(page.readBigUInt64LE(at + 16)),
                size,
                what,
              )
            : page.subarray(at, at + size);
        leaf(key, data, nflags);
      }
    };
    walk(root, 0);
  }

  /** Claims an overflow value's pages and returns its bytes (read only for the free list). */
  #overflow(pgno: bigint, pages: number, size: number, what: string): Buffer {
    const ps = this.#m.pageSize;
    // At least the pages the value needs; more when a larger value's pages were overwritten.
    const least = Math.floor((H - 1 + size) / ps) + 1;
    const first = this.#read(pgno, what);
    const flags = first.readUInt16LE(18);
    if ((flags & P_OVERFLOW) === 0 || first.readUInt32LE(20) !== pages || pages < least) {
      throw new Problem(`page ${pgno} of ${what} is not the overflow page of a ${size}-byte value`);
    }
    this.#claim(pgno, pages, what);
    if (what !== 'the free list') return Buffer.alloc(0);
    const out = Buffer.alloc(pages * ps);
    readSync(this.#fd, out, 0, out.length, Number(pgno) * ps);
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
      this.#claim(BigInt(start), n, 'the free list', FREE);
    }
  }
}
