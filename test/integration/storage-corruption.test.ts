// Corruption is loud: a damaged log or LMDB file stops start-up with a log line naming the
// damage and exit code 2 (never a signal); --wal-truncate-corrupt cuts the log and starts; a torn
// tail is dropped with a warning that counts its records.

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lmdbFileCheck } from '../../src/storage/lmdb-check.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import {
  cleanup,
  NODE,
  ROOT,
  runNodeToExit,
  startNodeProcess,
  tempDir,
} from '../helpers/node-process.ts';

/** Runs `kvctl verify <dir>`: its exit code and output. */
function verify(dir: string): { code: number | null; out: string } {
  const r = spawnSync(NODE, [join(ROOT, 'src/cli/main.ts'), 'verify', dir], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

afterEach(cleanup);

/**
 * A data directory whose log holds `groups` group commits of 10 PUTs each (keys g<group>-<i>),
 * left by a SIGKILL; returns it and its one log segment.
 */
async function crashedDir(groups: number): Promise<{ dataDir: string; segment: string }> {
  const dataDir = tempDir();
  const node = await startNodeProcess({ dataDir });
  const c = await LineClient.connect(node.port);
  defer(() => c.socket.destroy());
  for (let g = 0; g < groups; g++) {
    // One pipelined batch per group: the node writes what arrives together as one group.
    c.send(Array.from({ length: 10 }, (_, i) => `PUT g${g}-${i} ${'v'.repeat(200)}\r\n`).join(''));
    expect(await c.lines(10)).toEqual(Array(10).fill('OK'));
  }
  expect(await node.stop('SIGKILL')).toBe('SIGKILL');
  const wal = join(dataDir, 'wal');
  const name = readdirSync(wal).find((n) => /^\d{16}\.wal$/.test(n))!;
  return { dataDir, segment: join(wal, name) };
}

const fatal = (logs: Record<string, unknown>[]) => logs.find((l) => l.level === 60);

describe('corrupt data directories', () => {
  it('stops start-up with exit code 2 naming the segment and offset when the log is damaged before its last group', async () => {
    const { dataDir, segment } = await crashedDir(3);
    const bytes = readFileSync(segment);
    bytes[100] = bytes[100]! ^ 0xff; // inside the first group
    writeFileSync(segment, bytes);
    const offline = verify(dataDir);
    expect(offline.code).toBe(1);
    expect(offline.out).toMatch(/^PROBLEM wal: damaged in .*0000000000000001\.wal at offset \d+/m);
    // What LMDB held at the kill (its background flush may or may not have taken the last
    // groups): the cut drops log records only, so this is what the store keeps afterwards.
    const held = Number(
      /^lmdb: .*: (\d+) records \(\1 live, 0 tombstones\)/m.exec(offline.out)?.[1],
    );
    expect(held, offline.out).toBeGreaterThanOrEqual(0);
    expect(held).toBeLessThanOrEqual(30);
    const run = await runNodeToExit(['--data-dir', dataDir]);
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 2, signal: null });
    const line = fatal(run.logs);
    expect(line).toMatchObject({
      msg: 'storage: cannot open the data directory',
      code: 'KV_ERR_CORRUPT',
    });
    const message = (line!.err as { message: string }).message;
    expect(message).toContain(`${segment} at offset `);
    expect(message).toContain('--wal-truncate-corrupt');
    expect(run.stderr).toContain('write-ahead log damaged');
    // With the flag it cuts the log there, logs what it dropped, and starts.
    const node = await startNodeProcess({ dataDir, args: ['--wal-truncate-corrupt', 'true'] });
    const cut = node.logs.find(
      (l) => l.msg === 'storage: damaged write-ahead log cut (--wal-truncate-corrupt)',
    );
    expect(cut).toMatchObject({ segment: 1, droppedRecords: 30, droppedSegments: 0 });
    expect(await node.stop()).toBe(0);
    // The cut is on disk: the next start needs no flag, and verify finds nothing wrong.
    const again = await startNodeProcess({ dataDir });
    expect(await again.stop()).toBe(0);
    const healthy = verify(dataDir);
    expect(healthy.out).toMatch(
      new RegExp(`^lmdb: .*: ${held} records \\(${held} live, 0 tombstones\\)`, 'm'),
    );
    const metadata = /^metadata: \d+ keys \((.*)\)$/m.exec(healthy.out)?.[1]?.split(', ');
    expect(metadata).toContain('x:incarnation');
    // The counters go to LMDB with the data they count (the store batches both): with none of
    // the data in LMDB, neither are they.
    expect(metadata?.includes('state')).toBe(held > 0);
    expect(healthy).toMatchObject({ code: 0, out: expect.stringMatching(/^OK$/m) });
  }, 60_000);

  it('drops a torn last group with a warning that counts its records', async () => {
    const { dataDir, segment } = await crashedDir(2);
    // Cut 300 bytes off the end of the log: its last group.
    const end = readFileSync(segment).indexOf(Buffer.alloc(64));
    truncateSync(segment, end - 300);
    // Nothing acknowledged is lost at SIGKILL: LMDB may hold the torn group's writes already.
    const node = await startNodeProcess({ dataDir });
    const warning = node.logs.find((l) => l.msg === 'storage: torn write-ahead log tail dropped');
    expect(warning).toMatchObject({ level: 40, segment: 1, records: expect.any(Number) });
    expect(warning!.records).toBeGreaterThan(0);
    expect(node.logs.find((l) => l.msg === 'storage: opened')).toMatchObject({
      replayed: 20 - (warning!.records as number),
    });
  }, 60_000);

  it.each([
    [
      'cut in half',
      (file: string) => truncateSync(file, Math.floor(statSync(file).size / 2 / 4096) * 4096),
    ],
    ['meta pages overwritten', (file: string) => overwrite(file, 0, 8192)],
    ['second meta page overwritten', (file: string) => overwrite(file, 4096, 4096)],
  ])(
    'an LMDB file %s ends start-up with a log line and exit code 2, not a signal',
    async (_, damage) => {
      const dataDir = tempDir();
      const node = await startNodeProcess({ dataDir });
      const c = await LineClient.connect(node.port);
      defer(() => c.socket.destroy());
      for (let i = 0; i < 40; i++) c.send(`PUT k${i} ${'x'.repeat(4000)}\r\n`);
      await c.lines(40);
      expect(await node.stop()).toBe(0);
      expect(verify(dataDir).code).toBe(0);
      damage(join(dataDir, 'data.mdb'));
      expect(verify(dataDir)).toEqual({
        code: 1,
        out: expect.stringMatching(/^PROBLEM lmdb: .*data\.mdb is damaged: /m),
      });
      const run = await runNodeToExit(['--data-dir', dataDir]);
      expect({ code: run.code, signal: run.signal }).toEqual({ code: 2, signal: null });
      expect(fatal(run.logs)).toMatchObject({ code: 'KV_ERR_CORRUPT' });
      expect((fatal(run.logs)!.err as { message: string }).message).toMatch(
        /LMDB file .*data\.mdb is damaged/,
      );
    },
    60_000,
  );

  // A power cut that keeps some of LMDB's unflushed page writes and not others (a disk reorders
  // writes) could leave the snapshot LMDB opens with a page a later commit wrote, or a page in two
  // places. LMDB meets that with an assertion (SIGABRT) at its first write, or writes into it: at
  // a start after an unclean stop the trees and the free list are checked first.
  it.each([
    [
      'a tree page written by a commit after the snapshot',
      (file: string, s: Snapshot) => stamp(file, s, s.roots.data!, s.txnid + 1n),
    ],
    [
      'a tree page reached from two databases',
      (file: string, s: Snapshot) => setRoot(file, s, 'tombstones', s.roots.data!),
    ],
  ])(
    'after an unclean stop, an LMDB snapshot with %s ends start-up with exit code 2, not a signal',
    async (_, damage) => {
      const dataDir = tempDir();
      let node = await startNodeProcess({ dataDir });
      let c = await LineClient.connect(node.port);
      for (let i = 0; i < 40; i++) c.send(`PUT k${i} ${'x'.repeat(4000)}\r\n`);
      await c.lines(40);
      c.socket.destroy();
      expect(await node.stop()).toBe(0);
      // Again, then a crash: the log holds writes to replay.
      node = await startNodeProcess({ dataDir });
      c = await LineClient.connect(node.port);
      defer(() => c.socket.destroy());
      c.send('PUT after-crash v\r\n');
      expect(await c.lines(1)).toEqual(['OK']);
      expect(await node.stop('SIGKILL')).toBe('SIGKILL');
      const file = join(dataDir, 'data.mdb');
      damage(file, snapshot(file));
      expect(verify(dataDir)).toEqual({
        code: 1,
        out: expect.stringMatching(/^PROBLEM lmdb: .*data\.mdb is damaged: page \d+ /m),
      });
      const run = await runNodeToExit(['--data-dir', dataDir]);
      expect({ code: run.code, signal: run.signal }).toEqual({ code: 2, signal: null });
      expect(fatal(run.logs)).toMatchObject({ code: 'KV_ERR_CORRUPT' });
      expect((fatal(run.logs)!.err as { message: string }).message).toMatch(
        /LMDB file .*data\.mdb is damaged \(page \d+ .*\); restore the data directory/,
      );
    },
    60_000,
  );
});

/** Overwrites `length` bytes at `at` with a pattern that is not LMDB's. */
function overwrite(file: string, at: number, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(length, 0xa7), 0, length, at);
  } finally {
    closeSync(fd);
  }
}

interface Snapshot {
  readonly pageSize: number;
  readonly txnid: bigint;
  /** Each named database's root page, and where its record (MDB_db) sits in the file. */
  readonly roots: Record<string, bigint>;
  readonly records: Record<string, number>;
}

/** The named databases of the snapshot LMDB opens (its main database is one leaf page here). */
function snapshot(file: string): Snapshot {
  const check = lmdbFileCheck(file);
  if (check.problem !== null || !check.opened) throw new Error(`no snapshot: ${check.problem}`);
  const { pageSize, txnid } = check.opened;
  const at = Number(check.opened.roots[1]) * pageSize;
  const page = readFileSync(file).subarray(at, at + pageSize);
  const roots: Record<string, bigint> = {};
  const records: Record<string, number> = {};
  for (let i = 0; i < page.readUInt16LE(20) >> 1; i++) {
    // A leaf node: u16 size lo, hi, flags, key size; the key; the MDB_db (its root at +40).
    const node = 24 + page.readUInt16LE(24 + 2 * i);
    const name = page.toString('latin1', node + 8, node + 8 + page.readUInt16LE(node + 6));
    const record = node + 8 + page.readUInt16LE(node + 6);
    roots[name.replace(/\0$/, '')] = page.readBigUInt64LE(record + 40);
    records[name.replace(/\0$/, '')] = at + record;
  }
  return { pageSize, txnid, roots, records };
}

/** Page `pgno` now says transaction `txnid` wrote it. */
function stamp(file: string, s: Snapshot, pgno: bigint, txnid: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(txnid);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, b, 0, 8, Number(pgno) * s.pageSize + 8);
  } finally {
    closeSync(fd);
  }
}

/** Database `name`'s root is now page `pgno`. */
function setRoot(file: string, s: Snapshot, name: string, pgno: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(pgno);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, b, 0, 8, s.records[name]! + 40);
  } finally {
    closeSync(fd);
  }
}
