import { afterEach, describe, expect, it } from 'vitest';
import { ProgressCounter } from '../../src/rebalance/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

async function storeWith(n: number, path = tempDir()): Promise<Storage> {
  const s = Storage.open({ path, nodeName: 'n1' });
  opened.push(s);
  await put(s, 0, n);
  return s;
}

async function put(s: Storage, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const value = Buffer.from(`v${i}`);
    await s.apply(Buffer.from(`k${i}`), { version: s.clock.now(), tombstone: false, value });
  }
}

const job = { kind: 'decommission' as const, ringId: 'r1' };

describe('stream progress', () => {
  it('knows the total before the first batch: every local record, tombstones included', async () => {
    const s = await storeWith(40);
    await s.apply(Buffer.from('k0'), {
      version: s.clock.now(),
      tombstone: true,
      value: Buffer.alloc(0),
    });
    const c = new ProgressCounter(job, s, null);
    const p = c.now();
    expect(p).toMatchObject({ scanned: 0, total: 40, percent: 0, etaSeconds: null, done: false });
    expect(c.add(10, 20, 100)).toMatchObject({ scanned: 10, total: 40, percent: 25, sent: 20 });
  });

  it('grows the total with records written while it runs, and reaches 100% only when done', async () => {
    const s = await storeWith(10);
    const c = new ProgressCounter(job, s, null);
    expect(c.add(10, 10, 50)).toMatchObject({ total: 10, percent: 99.9 });
    await put(s, 10, 10);
    const p = c.add(0, 0, 0);
    expect(p).toMatchObject({ total: 20, percent: 50, done: false });
    expect(c.add(10, 10, 50).percent).toBe(99.9);
    expect(c.finish()).toMatchObject({ scanned: 20, total: 20, percent: 100, done: true });
    expect(c.finish().etaSeconds).toBe(0);
  });

  it('goes on from the counts a resumed cursor saved', async () => {
    const s = await storeWith(30);
    const first = new ProgressCounter(job, s, null);
    first.add(12, 12, 60);
    const saved = { ringId: 'r1', after: null, done: false, ...first.counts() };
    const again = new ProgressCounter(job, s, saved);
    expect(again.now()).toMatchObject({ scanned: 12, sent: 12, bytes: 60, total: 30, percent: 40 });
    // A cursor of an older version has no counts: the stored records are the total.
    const old = new ProgressCounter(job, s, { ringId: 'r1', after: 'eA==', done: false });
    expect(old.now()).toMatchObject({ scanned: 0, total: 30 });
  });

  it('estimates the time left from the rate of this run', async () => {
    const s = await storeWith(100);
    const c = new ProgressCounter(job, s, null);
    await new Promise((r) => setTimeout(r, 20));
    const p = c.add(50, 50, 500);
    expect(p.rate).toBeGreaterThan(0);
    expect(Number.isInteger(p.etaSeconds)).toBe(true);
    expect(p.etaSeconds).toBeGreaterThan(0);
  });
});
