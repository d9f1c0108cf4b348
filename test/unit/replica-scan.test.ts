// A member's side of a scan (localScan) on a real store: bounded by entries and by bytes.

import { afterEach, describe, expect, it } from 'vitest';
import {
  localScan,
  SCAN_PIECE_RECORDS,
  SCAN_REPLY_BYTES,
  ScanWork,
} from '../../src/replica/index.ts';
import { decodeRecord, Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

const MiB = 1024 * 1024;

async function storeWith(sizes: readonly number[]): Promise<Storage> {
  const storage = Storage.open({ path: tempDir(), nodeName: 'peer' });
  opened.push(storage);
  for (const [i, size] of sizes.entries()) {
    const value = Buffer.alloc(size, 0x61 + (i % 26));
    await storage.apply(Buffer.from(`k${String(i).padStart(3, '0')}`), {
      version: storage.clock.now(),
      tombstone: false,
      value,
    });
  }
  return storage;
}

const all = { s: Buffer.alloc(0), e: null, ie: false, xs: false };

describe('localScan', () => {
  it('ends a reply of whole records once it holds SCAN_REPLY_BYTES, with more', async () => {
    const storage = await storeWith(Array(12).fill(MiB));
    const reply = await localScan(storage, { ...all, l: 100 });
    const bytes = reply.e.reduce((n, [k, r]) => n + k.length + r.length, 0);
    expect(reply.more).toBe(true);
    expect(bytes).toBeGreaterThanOrEqual(SCAN_REPLY_BYTES);
    expect(bytes).toBeLessThan(SCAN_REPLY_BYTES + 2 * MiB);
    // Paging on from the last key reads every record once.
    const keys = reply.e.map(([k]) => k.toString());
    for (let page = reply; page.more; ) {
      page = await localScan(storage, { ...all, s: page.e.at(-1)![0], xs: true, l: 100 });
      keys.push(...page.e.map(([k]) => k.toString()));
    }
    expect(keys).toEqual(Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(3, '0')}`));
  });

  it('sends at least one record, however large', async () => {
    const storage = await storeWith([SCAN_REPLY_BYTES + MiB, 10]);
    const reply = await localScan(storage, { ...all, l: 100 });
    expect(reply.e).toHaveLength(1);
    expect(reply.e[0]![1].length).toBeGreaterThan(SCAN_REPLY_BYTES);
    expect(reply.more).toBe(true);
  });

  it('with h, sends each record without its value, all in one reply, as copies', async () => {
    const storage = await storeWith(Array(12).fill(MiB));
    const reply = await localScan(storage, { ...all, l: 100, h: true });
    expect(reply.more).toBe(false);
    expect(reply.e).toHaveLength(12);
    for (const [key, header] of reply.e) {
      expect(header.length).toBeLessThan(64);
      // Not a view into the whole record: that would keep every value alive.
      expect(header.buffer.byteLength).toBeLessThan(MiB);
      const whole = decodeRecord(storage.getRaw(key)!);
      expect(decodeRecord(header)).toEqual({ ...whole, value: Buffer.alloc(0) });
    }
  });

  it('ends a reply, with more, once it has read for its time (at least one entry): paging on reads the rest', async () => {
    // 80 values of 1 MiB read for their headers took longer than the peer timeout on a loaded
    // node, and PREFIX answered UNAVAILABLE: a member answers what it read in its time instead.
    const storage = await storeWith(Array(6).fill(MiB));
    let reply = await localScan(storage, { ...all, l: 100, h: true }, undefined, 0);
    expect(reply.e).toHaveLength(1);
    expect(reply.more).toBe(true);
    const seen = [...reply.e];
    while (reply.more) {
      const from = { ...all, s: seen.at(-1)![0], xs: true, l: 100, h: true };
      reply = await localScan(storage, from, undefined, 0);
      seen.push(...reply.e);
    }
    expect(seen.map(([k]) => k.toString())).toEqual([
      'k000',
      'k001',
      'k002',
      'k003',
      'k004',
      'k005',
    ]);
    // With time to read them, one reply.
    reply = await localScan(storage, { ...all, l: 100, h: true }, undefined, 60_000);
    expect(reply.e).toHaveLength(6);
    expect(reply.more).toBe(false);
  });

  it('still stops at l entries', async () => {
    const storage = await storeWith(Array(5).fill(10));
    const reply = await localScan(storage, { ...all, l: 3, h: true });
    expect(reply.e).toHaveLength(3);
    expect(reply.more).toBe(true);
  });
});

describe('localScan in pieces', () => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${String(i).padStart(3, '0')}`);
  const names = (e: readonly [Buffer, Buffer][]) => e.map(([k]) => k.toString());

  it('reads a turn of records at most, and answers as one read of the range would, over turns', async () => {
    const n = 3 * SCAN_PIECE_RECORDS + 10;
    const storage = await storeWith(Array(n).fill(10));
    const work = new ScanWork({ limit: SCAN_PIECE_RECORDS });
    const scans = [localScan(storage, { ...all, l: 1000, h: true }, work)];
    // The first scan used up this turn: the second waits, having read nothing.
    expect(work.records).toBe(SCAN_PIECE_RECORDS);
    scans.push(localScan(storage, { ...all, l: 1000, h: true }, work));
    expect(work.records).toBe(SCAN_PIECE_RECORDS);
    const [first, second] = await Promise.all(scans);
    expect(names(first!.e)).toEqual(keys(n));
    expect(first!.more).toBe(false);
    expect(second).toEqual(first);
    expect(work.records).toBe(2 * n);
  });

  it('sees what was written and deleted ahead of it between pieces, and every key present throughout once', async () => {
    const n = 2 * SCAN_PIECE_RECORDS;
    const storage = await storeWith(Array(n).fill(10));
    const work = new ScanWork({ limit: 1 });
    const scan = localScan(storage, { ...all, l: 1000 }, work);
    expect(work.records).toBe(SCAN_PIECE_RECORDS);
    // Behind the first piece (not seen again) and ahead of it, before the next piece: a write
    // is read (and scanned) as soon as it is applied, durable or not.
    const put = (key: string, tombstone = false) =>
      storage.apply(Buffer.from(key), {
        version: storage.clock.now(),
        tombstone,
        value: Buffer.from(tombstone ? '' : 'x'),
      });
    const writes = [put('k000a'), put('k999'), put(keys(n).at(-1)!, true)];
    const reply = await scan;
    await Promise.all(writes);
    const got = names(reply.e);
    expect(got).toEqual([...keys(n), 'k999']);
    // The deleted key is there as its tombstone (a coordinator drops it).
    expect(decodeRecord(reply.e[n - 1]![1]).tombstone).toBe(true);
  });

  it('ends scans past their first piece in the order they began, a few at a time', async () => {
    const storage = await storeWith(Array(3 * SCAN_PIECE_RECORDS).fill(10));
    const work = new ScanWork({ limit: SCAN_PIECE_RECORDS, slots: 1 });
    const ended: string[] = [];
    const scan = (name: string, l: number) =>
      localScan(storage, { ...all, l, h: true }, work).then(() => ended.push(name));
    await Promise.all([scan('a', 1000), scan('b', 1000), scan('small', 5)]);
    // One slot: b goes on once a is done; the small scan, done in its first piece, first.
    expect(ended).toEqual(['small', 'a', 'b']);
  });
});
