import { describe, expect, it } from 'vitest';
import { successorOfPrefix } from '../../src/coordinator/index.ts';
import {
  compareVersions,
  decodeRecord,
  decodeRecordHeader,
  encodeRecord,
  HybridClock,
  isLive,
  liveValueStart,
  MAX_EXPIRES_AT,
  MAX_VALID_WALL,
  microsPast,
  readingAt,
  type StoredRecord,
  SUB_MS_STEP,
  withoutValue,
} from '../../src/storage/index.ts';

describe('record codec', () => {
  it('round-trips values, tombstones and versions', () => {
    const version = { wall: 1_764_000_000_123, logical: 65535, node: 'kvstore-2' };
    for (const rec of [
      { version, tombstone: false, value: Buffer.from('hello world') },
      { version, tombstone: true, value: Buffer.alloc(0) },
      {
        version: { wall: 0, logical: 0, node: 'n' },
        tombstone: false,
        value: Buffer.from([0, 255]),
      },
    ]) {
      expect(decodeRecord(encodeRecord(rec))).toEqual(rec);
    }
  });

  it('encodes each record with its own node names, however they alternate', () => {
    // The encoder keeps the last node name's bytes: a record of another node, or whose base is
    // another node's, must not take them.
    const names = ['kvstore-0', 'kvstore-1', 'k', 'kvstore-10', 'nœud-ü', 'kvstore-0'];
    const value = Buffer.from('v');
    for (let i = 0; i < names.length; i++) {
      const node = names[i]!;
      const other = names[(i + 1) % names.length]!;
      const plain = { version: { wall: 1000 + i, logical: 1, node }, tombstone: false, value };
      const based = {
        version: { wall: 2000 + i, logical: 1, node },
        tombstone: false,
        value,
        base: { wall: 1000 + i, logical: 0, node: other },
      };
      expect(decodeRecord(encodeRecord(plain))).toEqual(plain);
      expect(decodeRecord(encodeRecord(based))).toEqual(based);
    }
  });

  it('rejects an unknown format', () => {
    expect(() => decodeRecord(Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]))).toThrow(
      /unknown format 9/,
    );
  });
});

describe('withoutValue (what a member sends for RANGE and PREFIX)', () => {
  const version = { wall: 1_764_000_000_123, logical: 7, node: 'kvstore-2' };
  const base = { wall: 1_764_000_000_100, logical: 0, node: 'kvstore-10' };
  const value = Buffer.from('the value');

  it('keeps every field but the value, for every kind of record', () => {
    const records: StoredRecord[] = [
      { version, tombstone: false, value },
      { version, tombstone: false, value: Buffer.alloc(0) },
      { version, tombstone: true, value: Buffer.alloc(0) },
      { version, tombstone: false, value, expiresAt: 1_764_000_050_000 },
      { version, tombstone: true, value: Buffer.alloc(0), expiresAt: 1_764_000_050_000 },
      { version, tombstone: false, value, base },
      { version, tombstone: false, value, base, expiresAt: 2 ** 40 },
    ];
    for (const rec of records) {
      const header = withoutValue(encodeRecord(rec));
      expect(decodeRecord(header)).toEqual({ ...rec, value: Buffer.alloc(0) });
    }
  });

  it('returns a record cut short whole, for the receiver to refuse', () => {
    const cut = encodeRecord({ version, tombstone: false, value, base }).subarray(0, 22);
    expect(withoutValue(cut)).toBe(cut);
    const short = Buffer.from([1, 0, 0]);
    expect(withoutValue(short)).toBe(short);
  });
});

describe('decodeRecordHeader (the store reading the record a write replaces)', () => {
  const version = { wall: 1_764_000_000_123, logical: 7, node: 'kvstore-2' };
  const base = { wall: 1_764_000_000_100, logical: 0, node: 'kvstore-1' };
  const value = Buffer.from('the value');

  it('decodes what decodeRecord does but the value, without a view of the bytes', () => {
    const records: StoredRecord[] = [
      { version, tombstone: false, value },
      { version, tombstone: true, value: Buffer.alloc(0) },
      { version, tombstone: false, value, expiresAt: 1_764_000_050_000 },
      { version, tombstone: false, value, base, expiresAt: 2 ** 40 },
    ];
    for (const rec of records) {
      const raw = encodeRecord(rec);
      const header = decodeRecordHeader(raw);
      expect(header).toEqual({ ...decodeRecord(raw), value: Buffer.alloc(0) });
      expect(header.value.buffer).not.toBe(raw.buffer);
    }
  });

  it('throws what decodeRecord throws for a malformed record', () => {
    const good = encodeRecord({ version, tombstone: false, value });
    const bad = [
      Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]), // unknown format
      good.subarray(0, 12), // node name past the end
      Buffer.concat([encodeRecord({ version, tombstone: true, value: Buffer.alloc(0) }), value]),
      encodeRecord({ version: base, tombstone: false, value, base: version }), // base not below
    ];
    for (const raw of bad) {
      expect(() => decodeRecord(raw)).toThrow(/storage: record/);
      expect(() => decodeRecordHeader(raw)).toThrow(/storage: record/);
    }
  });
});

describe('liveValueStart (GET read from the header)', () => {
  const version = { wall: 1_764_000_000_123, logical: 7, node: 'kvstore-2' };
  const base = { wall: 1_764_000_000_100, logical: 0, node: 'kvstore-1' };
  const value = Buffer.from('the value');
  const now = 1_764_000_050_000;

  it('agrees with decodeRecord and isLive for every kind of record', () => {
    const records: StoredRecord[] = [
      { version, tombstone: false, value },
      { version, tombstone: false, value: Buffer.alloc(0) },
      { version, tombstone: true, value: Buffer.alloc(0) },
      { version, tombstone: false, value, expiresAt: now + 1 },
      { version, tombstone: false, value, expiresAt: now },
      { version, tombstone: false, value, expiresAt: now - 1 },
      { version, tombstone: false, value, expiresAt: 2 ** 32 + 5 },
      { version, tombstone: false, value, expiresAt: MAX_EXPIRES_AT },
      { version, tombstone: true, value: Buffer.alloc(0), expiresAt: now - 1 },
      { version, tombstone: false, value, base },
      { version, tombstone: false, value, base, expiresAt: now - 1 },
    ];
    for (const rec of records) {
      const raw = encodeRecord(rec);
      let reads = 0;
      const start = liveValueStart(raw, () => {
        reads++;
        return now;
      });
      if (isLive(rec, now)) expect(raw.subarray(start)).toEqual(rec.value);
      else expect(start).toBe(-1);
      // The clock is read for a record that expires (or one read the long way), never for
      // a plain value or tombstone: a GET of such a key does not pay for it.
      if (rec.expiresAt === undefined && rec.base === undefined) expect(reads).toBe(0);
      else expect(reads).toBeLessThanOrEqual(1);
    }
  });

  it('throws what decodeRecord throws for a malformed record', () => {
    const good = encodeRecord({ version, tombstone: false, value });
    const bad = [
      Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]), // unknown format
      Buffer.from([1, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]), // unknown flag
      good.subarray(0, 12), // node name past the end
      Buffer.concat([encodeRecord({ version, tombstone: true, value: Buffer.alloc(0) }), value]),
      Buffer.from([1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0]), // expiry past the end
    ];
    for (const raw of bad) {
      expect(() => decodeRecord(raw)).toThrow(/storage: record/);
      expect(() => liveValueStart(raw, () => now)).toThrow(/storage: record/);
    }
  });
});

describe('HybridClock', () => {
  it('is strictly increasing even when the wall clock stands still or goes back', () => {
    let t = 1000;
    const clock = new HybridClock('a', () => t);
    const seen = [clock.now()];
    for (const next of [1000, 1000, 999, 500, 1001, 1001]) {
      t = next;
      seen.push(clock.now());
    }
    for (let i = 1; i < seen.length; i++) {
      expect(compareVersions(seen[i]!, seen[i - 1]!)).toBeGreaterThan(0);
    }
  });

  it('moves past observed versions from a faster clock', () => {
    const clock = new HybridClock('a', () => 10);
    const remote = { wall: 5000, logical: 7, node: 'b' };
    expect(clock.observe(remote)).toBe(true);
    expect(compareVersions(clock.now(), remote)).toBeGreaterThan(0);
    expect(clock.aheadMs(remote)).toBe(4990);
  });

  it('never adopts a version out of range, so its arithmetic cannot overflow', () => {
    const clock = new HybridClock('a', () => 10);
    for (const wall of [2 ** 48 - 1, MAX_VALID_WALL + 1, -1, 1.5, Number.NaN]) {
      expect(clock.observe({ wall, logical: 0, node: 'b' })).toBe(false);
    }
    expect(clock.observe({ wall: 20, logical: 0x10000, node: 'b' })).toBe(false);
    expect(clock.now()).toEqual({ wall: 10, logical: 0, node: 'a' });
    // The largest valid version still leaves room for every carry.
    expect(clock.observe({ wall: MAX_VALID_WALL, logical: 0xffff, node: 'b' })).toBe(true);
    const next = clock.now();
    expect(next).toEqual({ wall: MAX_VALID_WALL + 1, logical: 0, node: 'a' });
    expect(() =>
      encodeRecord({ version: next, tombstone: false, value: Buffer.alloc(0) }),
    ).not.toThrow();
  });

  it('carries the logical counter over into the wall clock', () => {
    const clock = new HybridClock('a', () => 10);
    clock.observe({ wall: 10, logical: 0xffff, node: 'b' });
    expect(clock.now()).toEqual({ wall: 11, logical: 0, node: 'a' });
  });

  it('orders versions two clocks make in one millisecond by their microseconds', () => {
    let us = 0;
    const a = new HybridClock(
      'a',
      () => 10,
      500,
      () => us,
    );
    const z = new HybridClock(
      'z',
      () => 10,
      500,
      () => us,
    );
    us = 300;
    const first = z.now();
    us = 301;
    const second = a.now();
    // The same millisecond, and 'z' > 'a': only the microseconds put the later write above.
    expect(first).toEqual({ wall: 10, logical: 300 * SUB_MS_STEP, node: 'z' });
    expect(compareVersions(second, first)).toBeGreaterThan(0);
    // Within one microsecond, or with the microseconds going back, it still only increases.
    const again = a.now();
    us = 5;
    const later = a.now();
    expect(compareVersions(again, second)).toBeGreaterThan(0);
    expect(compareVersions(later, again)).toBeGreaterThan(0);
  });

  it('reads the microseconds within the millisecond Date.now() gave, never outside it', () => {
    for (let i = 0; i < 1000; i++) {
      const us = microsPast(Date.now());
      expect(us).toBeGreaterThanOrEqual(0);
      expect(us).toBeLessThanOrEqual(999);
    }
    expect(microsPast(Date.now() + 5)).toBe(0);
    expect(microsPast(Date.now() - 5)).toBe(999);
    // The default clock uses them.
    const d = new HybridClock('d');
    expect(d.now().logical % SUB_MS_STEP).toBe(0);
  });

  // The writes of one job share one reading of the clocks (ClockCheck.checkOncePerJob): their
  // versions count up from it, past versions observed between them, and a later job's reading
  // behind them (a step back the next check refuses for, or a job that ran long) goes below none.
  it('makes versions from one reading that increase strictly past all it made or observed', () => {
    const clock = new HybridClock('a', () => 10);
    const at = 1_000.25; // 1000 ms and 250 µs
    const seen = [clock.nowAt(at), clock.nowAt(at)];
    expect(seen[0]).toEqual({ wall: 1_000, logical: 250 * SUB_MS_STEP, node: 'a' });
    const remote = { wall: 1_000, logical: 250 * SUB_MS_STEP + 5, node: 'b' };
    clock.observe(remote);
    seen.push(clock.nowAt(at));
    expect(compareVersions(seen[2]!, remote)).toBeGreaterThan(0);
    seen.push(clock.nowAt(at - 400), clock.nowAt(at + 0.5));
    for (let i = 1; i < seen.length; i++) {
      expect(compareVersions(seen[i]!, seen[i - 1]!)).toBeGreaterThan(0);
    }
    // A reading is within the millisecond of the wall clock it read, whatever the monotonic one.
    for (const mono of [-1e9, 0, performance.now(), 1e12]) {
      const r = readingAt(1_000, mono);
      expect(r).toBeGreaterThanOrEqual(1_000);
      expect(r).toBeLessThan(1_001);
    }
  });

  it('breaks ties by node name', () => {
    expect(
      compareVersions({ wall: 1, logical: 1, node: 'a' }, { wall: 1, logical: 1, node: 'b' }),
    ).toBeLessThan(0);
  });
});

describe('successorOfPrefix', () => {
  it('is the smallest key after every key with the prefix', () => {
    expect(successorOfPrefix(Buffer.from('ab'))).toEqual(Buffer.from('ac'));
    expect(successorOfPrefix(Buffer.from([0x61, 0xff, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(successorOfPrefix(Buffer.from([0xff]))).toBeNull();
  });
});
