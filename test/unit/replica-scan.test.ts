// A member's side of a scan (localScan) on a real store: bounded by entries and by bytes.

import { afterEach, describe, expect, it } from 'vitest';
import { localScan, SCAN_REPLY_BYTES } from '../../src/replica/index.ts';
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
    const reply = localScan(storage, { ...all, l: 100 });
    const bytes = reply.e.reduce((n, [k, r]) => n + k.length + r.length, 0);
    expect(reply.more).toBe(true);
    expect(bytes).toBeGreaterThanOrEqual(SCAN_REPLY_BYTES);
    expect(bytes).toBeLessThan(SCAN_REPLY_BYTES + 2 * MiB);
    // Paging on from the last key reads every record once.
    const keys = reply.e.map(([k]) => k.toString());
    for (let page = reply; page.more; ) {
      page = localScan(storage, { ...all, s: page.e.at(-1)![0], xs: true, l: 100 });
      keys.push(...page.e.map(([k]) => k.toString()));
    }
    expect(keys).toEqual(Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(3, '0')}`));
  });

  it('sends at least one record, however large', async () => {
    const storage = await storeWith([SCAN_REPLY_BYTES + MiB, 10]);
    const reply = localScan(storage, { ...all, l: 100 });
    expect(reply.e).toHaveLength(1);
    expect(reply.e[0]![1].length).toBeGreaterThan(SCAN_REPLY_BYTES);
    expect(reply.more).toBe(true);
  });

  it('with h, sends each record without its value, all in one reply, as copies', async () => {
    const storage = await storeWith(Array(12).fill(MiB));
    const reply = localScan(storage, { ...all, l: 100, h: true });
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

  it('still stops at l entries', async () => {
    const storage = await storeWith(Array(5).fill(10));
    const reply = localScan(storage, { ...all, l: 3, h: true });
    expect(reply.e).toHaveLength(3);
    expect(reply.more).toBe(true);
  });
});
