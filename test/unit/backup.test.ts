// The backup format (blocks read whole and byte by byte), the tar stream, and snapshot sessions
// against real storage: a session's pages are one point in time whatever is written meanwhile.

import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBlock } from '../../src/backup/format.ts';
import {
  BackupSessions,
  BLOCK_HEADER,
  BLOCK_RECORDS,
  BlockReader,
  decodeRecords,
  encodeRecords,
  SnapshotMerge,
} from '../../src/backup/index.ts';
import { extractTar, writeTar } from '../../src/backup/tar.ts';
import type { KvError } from '../../src/errors/index.ts';
import { decodeRecord, encodeRecord, Storage, type StoredRecord } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
/** This process's open files under `dir` (from /proc/self/fd). */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      // closed between the listing and the read
    }
  }
  return out;
}
const rec = (wall: number, value: string, tombstone = false): StoredRecord => ({
  version: { wall, logical: 0, node: 'n1' },
  tombstone,
  value: tombstone ? Buffer.alloc(0) : b(value),
});
const opened: Storage[] = [];
function openStore(name = 'n1'): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: name });
  opened.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

describe('backup blocks', () => {
  const entries: [Buffer, Buffer][] = [
    [b('a'), encodeRecord(rec(1, 'one'))],
    [b('b'), encodeRecord(rec(2, '', true))],
    [b('c'), encodeRecord(rec(3, 'x'.repeat(1000)))],
  ];
  const stream = Buffer.concat([
    encodeBlock(BLOCK_HEADER, b('{"format":1}')),
    encodeRecords(entries),
    encodeRecords(entries.slice(2)),
  ]);

  function readAll(chunks: Buffer[]): { type: number; payload: Buffer }[] {
    const r = new BlockReader();
    const out: { type: number; payload: Buffer }[] = [];
    for (const c of chunks) {
      r.push(c);
      for (let x = r.next(); x !== null; x = r.next())
        out.push({ type: x.type, payload: x.payload });
    }
    expect(r.pending).toBe(0);
    return out;
  }

  it('reads the same blocks whole and byte by byte', () => {
    const whole = readAll([stream]);
    const bytes = readAll([...stream].map((x) => Buffer.from([x])));
    expect(bytes).toEqual(whole);
    expect(whole.map((x) => x.type)).toEqual([BLOCK_HEADER, BLOCK_RECORDS, BLOCK_RECORDS]);
    expect(decodeRecords(whole[1]!.payload)).toEqual(entries);
  });

  it('refuses a flipped byte, an unknown type and an entry cut short', () => {
    for (let i = 0; i < stream.length; i += 97) {
      const bad = Buffer.from(stream);
      bad[i] = bad[i]! ^ 0x40;
      const r = new BlockReader();
      r.push(bad);
      let err: unknown = null;
      try {
        while (r.next() !== null);
      } catch (e) {
        err = e;
      }
      // A flipped length may only make the reader wait for more: never a wrong block.
      if (err === null) expect(r.pending).toBeGreaterThan(0);
      else expect((err as KvError).code).toBe('KV_ERR_BACKUP');
    }
    expect(() => decodeRecords(Buffer.from([0, 1, 0, 0, 0, 9, 0x61]))).toThrow(/malformed/);
  });
});

describe('tar', () => {
  it('round-trips a backup directory and refuses other entries', async () => {
    const src = tempDir();
    writeFileSync(join(src, 'records.kvb'), Buffer.alloc(1000, 7));
    writeFileSync(join(src, 'MANIFEST.json'), '{}');
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await writeTar(out, [join(src, 'records.kvb'), join(src, 'MANIFEST.json')]);
    const tar = Buffer.concat(chunks);
    const dst = tempDir();
    const allowed = new Set(['records.kvb', 'MANIFEST.json']);
    const names = await extractTar(
      Readable.from([...tar].map((x) => Buffer.from([x]))),
      dst,
      allowed,
    );
    expect(names).toEqual(['records.kvb', 'MANIFEST.json']);
    expect(readFileSync(join(dst, 'records.kvb'))).toEqual(Buffer.alloc(1000, 7));
    await expect(extractTar(Readable.from([tar]), tempDir(), new Set(['x']))).rejects.toThrow(
      /unexpected entry 'records.kvb'/,
    );
    // A stream cut inside an entry: refused, and no file of the target is still open when the
    // promise settles (the caller removes the directory next; a write still in flight would
    // then fail with nobody listening).
    const cut = tempDir();
    await expect(extractTar(Readable.from([tar.subarray(0, 1200)]), cut, allowed)).rejects.toThrow(
      /cut short/,
    );
    expect(openFilesUnder(cut)).toEqual([]);
    // A name already taken: the caller hears EEXIST, nothing is left open.
    const taken = tempDir();
    writeFileSync(join(taken, 'records.kvb'), 'mine');
    await expect(extractTar(Readable.from([tar]), taken, allowed)).rejects.toThrow(/EEXIST/);
    expect(readFileSync(join(taken, 'records.kvb'), 'utf8')).toBe('mine');
    expect(openFilesUnder(taken)).toEqual([]);
  });
});

describe('snapshot sessions', () => {
  it('a session reads one point in time while writes go on', async () => {
    const s = openStore();
    for (let i = 0; i < 10; i++) await s.apply(b(`k${i}`), rec(10 + i, `v${i}`));
    const sessions = new BackupSessions(s, 'inc-1');
    const first = sessions.page(undefined, 1); // one entry per page
    expect(first.e.map(([k]) => k.toString())).toEqual(['k0']);
    // After the snapshot: a new key, an overwrite and a delete, all durable.
    await s.apply(b('k05'), rec(100, 'new'));
    await s.apply(b('k7'), rec(100, 'overwritten'));
    await s.apply(b('k8'), rec(100, '', true));
    const seen = first.e.map(([k, r]) => [k.toString(), r]);
    let page = first;
    while (page.more) {
      page = sessions.page(first.sid, 1);
      seen.push(...page.e.map(([k, r]) => [k.toString(), r] as [string, Buffer]));
    }
    expect(seen.map(([k]) => k)).toEqual([
      'k0',
      'k1',
      'k2',
      'k3',
      'k4',
      'k5',
      'k6',
      'k7',
      'k8',
      'k9',
    ]);
    expect(seen[7]![1]).toEqual(encodeRecord(rec(17, 'v7')));
    expect(seen[8]![1]).toEqual(encodeRecord(rec(18, 'v8')));
    // The session ended with its last page.
    expect(() => sessions.page(first.sid, 1)).toThrow(/unknown/);
  });

  it('merges members by key, keeping the newest record', async () => {
    const x = openStore('x');
    const y = openStore('y');
    await x.apply(b('a'), rec(1, 'old'));
    await y.apply(b('a'), rec(2, 'new'));
    await x.apply(b('b'), rec(5, '', true));
    await y.apply(b('b'), rec(4, 'deleted later'));
    await y.apply(b('c'), rec(1, 'only y'));
    // An EXPIRE made at 9 on the value written at 1 loses to the value written at 3 (its base is
    // older), though its own version is higher.
    const expireChange = { ...rec(9, 'expiring'), expiresAt: 2 ** 40, base: rec(1, '').version };
    await x.apply(b('d'), expireChange);
    await y.apply(b('d'), rec(3, 'newer value'));
    const members = { x: new BackupSessions(x, 'ix'), y: new BackupSessions(y, 'iy') };
    const merge = new SnapshotMerge(['x', 'y'], async (m, method, body) =>
      members[m as 'x' | 'y'].methods()[method]!(body),
    );
    await merge.open();
    const out = [];
    const kept = new Map<string, Buffer>();
    for await (const r of merge.records()) {
      out.push([r.entry[0].toString(), r.tombstone]);
      kept.set(r.entry[0].toString(), r.entry[1]);
    }
    expect(out).toEqual([
      ['a', false],
      ['b', true],
      ['c', false],
      ['d', false],
    ]);
    expect(decodeRecord(kept.get('d')!).value.toString()).toBe('newer value');
    expect(merge.snapshots().map((s) => s.incarnation)).toEqual(['ix', 'iy']);
  });
});
