// The LMDB file check and the snapshot LMDB opens after a power cut without a reboot: a meta page
// whose commit was never flushed may be on disk while its data pages are not (a disk keeps the
// writes it likes). Real LMDB (lmdb-js) files, damaged the way such a cut leaves them.

import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeRecord, Storage } from '../../src/storage/index.ts';
import {
  LMDB_ENV_OPTIONS,
  LMDB_OVERLAPPING_ENV_OPTIONS,
  lmdbFileCheck,
  lmdbFileProblem,
  rollBackUnflushed,
} from '../../src/storage/lmdb-check.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// Offsets in a meta page (see lmdb-check.ts): the meta follows the 24-byte page header; its
// free db's flags at +28, the main db's root at +24+48+40, its txnid at +24+96+8.
const META = 24;
const FREE_FLAGS = META + 24 + 4;
const MAIN_ROOT = META + 24 + 48 + 40;
const TXNID = META + 24 + 96 + 8;
const UNFLUSHED = 0x1000;

/**
 * Five commits of k = 1..5, one per transaction (txnid n holds k = n), closed cleanly; with
 * lmdb-js's overlapping sync (how stores were opened until 2026-12) unless `classic`.
 */
async function fiveCommits(classic = false): Promise<{ dir: string; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-lmdb-check-'));
  dirs.push(dir);
  const env = open({ path: dir, ...(classic ? LMDB_ENV_OPTIONS : LMDB_OVERLAPPING_ENV_OPTIONS) });
  for (let i = 1; i <= 5; i++) await env.put('k', i);
  await env.close();
  return { dir, file: join(dir, 'data.mdb') };
}

/** Reads, edits and writes back `length` bytes at `at`. */
function patch(file: string, at: number, length: number, edit: (b: Buffer) => void): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, at);
    edit(b);
    writeSync(fd, b, 0, length, at);
  } finally {
    closeSync(fd);
  }
}

function read(file: string, at: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, b, 0, length, at);
  } finally {
    closeSync(fd);
  }
  return b;
}

/**
 * The file as a power cut leaves it when commit 5's meta page reached the disk but its data pages
 * did not: commit 5's main-db root page holds something else (here an overflow page), and the
 * flushed copy still describes commit 4. With `flushedMark`, commit 5 is marked flushed instead.
 */
function cutAfterCommit5(file: string, flushedMark = false): void {
  const pageSize = read(file, 0, 512).readUInt32LE(META + 24);
  const metas = [0, pageSize].map((at) => ({ at, b: read(file, at, 512) }));
  const [older, newest] = metas.sort((x, y) =>
    Number(x.b.readBigUInt64LE(TXNID) - y.b.readBigUInt64LE(TXNID)),
  ) as [(typeof metas)[0], (typeof metas)[0]];
  expect(newest.b.readBigUInt64LE(TXNID)).toBe(5n);
  // Commit 5's root page: its own number, and the flags of an overflow page (4).
  const root = Number(newest.b.readBigUInt64LE(MAIN_ROOT));
  patch(file, root * pageSize, 24, (b) => b.writeUInt16LE(4, 18));
  // The flushed copy (at half a page, without page header flags) describes commit 4 or 5.
  const flushedFrom = flushedMark ? newest : older;
  patch(file, pageSize / 2, 256, (b) => {
    flushedFrom.b.copy(b, 0, 0, 256);
    b.writeUInt16LE(b.readUInt16LE(FREE_FLAGS) & ~UNFLUSHED, FREE_FLAGS);
  });
  if (flushedMark) {
    patch(file, newest.at, 512, (b) => {
      b.writeUInt16LE(b.readUInt16LE(FREE_FLAGS) & ~UNFLUSHED, FREE_FLAGS);
    });
  }
}

/** The free-db flags and txnid of meta pages 0 and 1. */
function metaPages(file: string): { flags: number; txnid: bigint }[] {
  const pageSize = read(file, 0, 512).readUInt32LE(META + 24);
  return [0, pageSize].map((at) => {
    const b = read(file, at, 512);
    return { flags: b.readUInt16LE(FREE_FLAGS), txnid: b.readBigUInt64LE(TXNID) };
  });
}

/** The value of `k` in the snapshot `dir` opens with `options`. */
async function readK(dir: string, options: object): Promise<unknown> {
  const env = open({ path: dir, ...options });
  try {
    return env.get('k');
  } finally {
    await env.close();
  }
}

/** The two meta pages' transaction ids, in order. */
const txnids = (file: string): bigint[] =>
  metaPages(file)
    .map((m) => m.txnid)
    .sort();

/** The snapshot the check says LMDB opens; null for a problem (or no file). */
function openedOf(file: string) {
  const check = lmdbFileCheck(file);
  return check.problem === null ? check.opened : null;
}

describe('LMDB with its own (classic) sync', () => {
  it("a store's commits mark no meta unflushed and open the newest meta page", async () => {
    const { dir, file } = await fiveCommits(true);
    const metas = metaPages(file);
    expect(metas.map((m) => m.flags & UNFLUSHED)).toEqual([0, 0]);
    expect(txnids(file)).toEqual([4n, 5n]);
    expect(lmdbFileProblem(file)).toBeNull();
    expect(openedOf(file)).toMatchObject({ txnid: 5n, superseded: false, rollback: false });
    expect(await readK(dir, LMDB_ENV_OPTIONS)).toBe(5);
  });

  it('a file overlapping sync left unflushed is rolled back to its flushed snapshot before the classic open', async () => {
    const { dir, file } = await fiveCommits();
    cutAfterCommit5(file);
    // The classic open alone takes the newer meta page: commit 5, whose root page is not a tree.
    expect(txnids(file)).toEqual([4n, 5n]);
    expect(openedOf(file)).toMatchObject({
      txnid: 4n,
      superseded: true,
      rollback: true,
    });
    rollBackUnflushed(dir);
    // Both meta pages now describe the flushed snapshot (commit 4, and its copy as txnid 3).
    expect(txnids(file)).toEqual([3n, 4n]);
    expect(openedOf(file)).toMatchObject({ txnid: 4n, rollback: false });
    const env = open({ path: dir, ...LMDB_ENV_OPTIONS });
    try {
      expect(env.get('k')).toBe(4);
      await env.put('k', 6);
    } finally {
      await env.close();
    }
    // The commit after it is a classic one: its meta is not marked unflushed.
    const metas = metaPages(file);
    const newest = metas[0]!.txnid > metas[1]!.txnid ? metas[0]! : metas[1]!;
    expect(newest.flags & UNFLUSHED).toBe(0);
    expect(await readK(dir, { ...LMDB_ENV_OPTIONS, readOnly: true })).toBe(6);
    expect(lmdbFileProblem(file)).toBeNull();
  });

  it('Storage.open rolls such a file back and opens the flushed snapshot', async () => {
    const { dir, file } = await fiveCommits();
    cutAfterCommit5(file);
    const store = Storage.open({ path: dir, nodeName: 'n' });
    const version = { wall: 1000, logical: 0, node: 'n' };
    await store.apply(Buffer.from('x'), { version, tombstone: false, value: Buffer.from('v') });
    await store.flush();
    await store.close();
    expect(await readK(dir, { ...LMDB_ENV_OPTIONS, readOnly: true })).toBe(4);
    expect(openedOf(file)?.rollback).toBe(false);
    // The store's own commits after it are classic ones: no meta page is marked unflushed.
    expect(metaPages(file).map((m) => m.flags & UNFLUSHED)).toEqual([0, 0]);
  });
});

describe('LMDB after a power cut without a reboot (files written with overlapping sync)', () => {
  it('every commit of the store marks its meta unflushed, and the flushed copy follows', async () => {
    const { file } = await fiveCommits();
    const pageSize = read(file, 0, 512).readUInt32LE(META + 24);
    const flags = [0, pageSize].map((at) => read(file, at, 512).readUInt16LE(FREE_FLAGS));
    expect(flags.map((f) => f & UNFLUSHED)).toEqual([UNFLUSHED, UNFLUSHED]);
    const copy = read(file, pageSize / 2, 256);
    expect(copy.readBigUInt64LE(TXNID)).toBe(5n);
    expect(copy.readUInt16LE(FREE_FLAGS) & UNFLUSHED).toBe(0);
  });

  it('opens the newest flushed snapshot, and the check finds nothing wrong with it', async () => {
    const { dir, file } = await fiveCommits();
    cutAfterCommit5(file);
    expect(lmdbFileProblem(file)).toBeNull();
    expect(await readK(dir, LMDB_OVERLAPPING_ENV_OPTIONS)).toBe(4);
    // Read-only, as `kvctl verify` opens it: the same snapshot.
    expect(await readK(dir, { ...LMDB_OVERLAPPING_ENV_OPTIONS, readOnly: true })).toBe(4);
  });

  it('a file that ends before its last page, after keys were deleted, is sound and opens', async () => {
    // Deleting many keys in one commit frees pages it allocated without writing them: LMDB's
    // last page then lies past the end of the file (seen after a node dropped the records it
    // handed off, which then refused to start). The store no longer gives LMDB a key's writes
    // that a later one in the same batch replaces, so the commit is made on its file directly:
    // 400 records put and deleted in one transaction of the store's own environment.
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-lmdb-check-'));
    dirs.push(dir);
    const file = join(dir, 'data.mdb');
    await Storage.open({ path: dir, nodeName: 'n' }).close();
    const record = (i: number) => ({
      version: { wall: 1000 + i, logical: 0, node: 'n' },
      tombstone: false,
      value: Buffer.from(`v${i}`),
    });
    const env = open({ path: dir, ...LMDB_ENV_OPTIONS });
    const data = env.openDB<Buffer, Buffer>({
      name: 'data',
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    await env.transaction(() => {
      for (let i = 0; i < 400; i++) data.putSync(Buffer.from(`r:${i}`), encodeRecord(record(i)));
      for (let i = 0; i < 400; i++) data.removeSync(Buffer.from(`r:${i}`));
    });
    await env.close();
    const pages = BigInt(statSync(file).size / 4096);
    let lastPage = 0n; // the highest any meta names
    for (const at of [0, 4096, 2048]) {
      const last = read(file, at + META + 24 + 96, 8).readBigUInt64LE(0);
      if (last > lastPage) lastPage = last;
    }
    expect(lastPage).toBeGreaterThanOrEqual(pages); // the case at hand
    expect(lmdbFileProblem(file)).toBeNull();
    const again = Storage.open({ path: dir, nodeName: 'n' });
    try {
      expect(again.stats().liveKeys).toBe(0);
      await again.apply(Buffer.from('after'), record(0));
      expect(again.get(Buffer.from('after'))?.value.toString()).toBe('v0');
    } finally {
      await again.close();
    }
    expect(lmdbFileProblem(file)).toBeNull();
  });

  it('reports damage in the snapshot LMDB would open', async () => {
    const { file } = await fiveCommits();
    cutAfterCommit5(file, true);
    expect(lmdbFileProblem(file)).toMatch(
      /^page \d+ \(a tree root in meta page [01]\) is not a tree page \(flags 4\)$/,
    );
  });
});
