// Expiring keys below the network: the record codec and its order, the storage index and sweep,
// the coordinator's expiry commands on one node, and Redis's argument checks.

import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterCoordinator } from '../../src/coordinator/index.ts';
import {
  type CommandLimits,
  parseRespRequest,
  parseTextLine,
  type Reply,
  type RespContext,
} from '../../src/protocol/index.ts';
import { int64Arg } from '../../src/protocol/resp-expiry.ts';
import {
  compareRecords,
  decodeRecord,
  encodeRecord,
  expiredForm,
  isLive,
  Storage,
  type StoredRecord,
  type Version,
} from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { respContext } from '../helpers/resp-context.ts';
import { standalone } from '../helpers/standalone.ts';

const b = (s: string) => Buffer.from(s);
const v = (wall: number, node = 'n1', logical = 0): Version => ({ wall, logical, node });
const opened: Storage[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

describe('record codec with expiry', () => {
  it('round-trips an expiry and a base version, alone and together', () => {
    const cases: StoredRecord[] = [
      { version: v(2000), tombstone: false, value: b('x'), expiresAt: 5000 },
      { version: v(2000), tombstone: false, value: b('x y'), base: v(1000, 'other', 7) },
      {
        version: v(2000, 'kvstore-2', 65535),
        tombstone: false,
        value: b(''),
        expiresAt: 2 ** 63 - 1024,
        base: v(1999, 'kvstore-10', 3),
      },
      expiredForm({
        version: v(2000),
        tombstone: false,
        value: b('v'),
        expiresAt: 3000,
        base: v(1),
      }),
    ];
    for (const rec of cases) expect(decodeRecord(encodeRecord(rec))).toEqual(rec);
  });

  it('decodes records written before expiry existed, byte for byte as they were', () => {
    // format 1, no flags, wall 1000, logical 2, node "n1", value "hello": the old layout.
    const old = Buffer.from([1, 0, 0, 0, 0, 0, 3, 0xe8, 0, 2, 2, 0x6e, 0x31, ...b('hello')]);
    const rec = decodeRecord(old);
    expect(rec).toEqual({ version: v(1000, 'n1', 2), tombstone: false, value: b('hello') });
    expect(encodeRecord(rec).equals(old)).toBe(true);
  });

  it('refuses a base not below the version, an expiry past the end or out of range', () => {
    const withBase = encodeRecord({
      version: v(2000),
      tombstone: false,
      value: b(''),
      base: v(1000),
    });
    // Base wall raised to the version's: not below it.
    const same = Buffer.from(withBase);
    same.writeUIntBE(2000, 13, 6);
    expect(() => decodeRecord(same)).toThrow(/base not below/);
    const expiring = encodeRecord({ version: v(1), tombstone: false, value: b(''), expiresAt: 9 });
    expect(() => decodeRecord(expiring.subarray(0, expiring.length - 3))).toThrow(/past its end/);
    const huge = Buffer.from(expiring);
    huge.writeBigUInt64BE(2n ** 63n, 13);
    expect(() => decodeRecord(huge)).toThrow(/out of range/);
    const unknown = Buffer.from(expiring);
    unknown[1] = 8;
    expect(() => decodeRecord(unknown)).toThrow(/unknown flags 8/);
  });
});

describe('compareRecords', () => {
  const put = (wall: number): StoredRecord => ({
    version: v(wall),
    tombstone: false,
    value: b(''),
  });
  const change = (base: number, wall: number): StoredRecord => ({
    version: v(wall),
    tombstone: false,
    value: b(''),
    expiresAt: wall + 1000,
    base: v(base),
  });

  it('orders an expiry change below a later write of another value, whatever its own version', () => {
    // EXPIRE read the value written at 100 and wrote at 300; a PUT at 200 overwrote the value.
    expect(compareRecords(change(100, 300), put(200))).toBeLessThan(0);
    expect(compareRecords(put(200), change(100, 300))).toBeGreaterThan(0);
    const remove = { version: v(200), tombstone: true, value: b('') };
    expect(compareRecords(change(100, 300), remove)).toBeLessThan(0);
  });

  it('orders expiry changes of the same value by their own versions, above the value', () => {
    expect(compareRecords(change(100, 300), change(100, 250))).toBeGreaterThan(0);
    expect(compareRecords(change(100, 250), put(100))).toBeGreaterThan(0);
  });

  it('puts an expired record turned tombstone right above the record, below anything later', () => {
    const rec = change(100, 300);
    const tomb = expiredForm(rec);
    expect(compareRecords(tomb, rec)).toBeGreaterThan(0);
    expect(compareRecords(change(100, 301), tomb)).toBeGreaterThan(0);
    expect(compareRecords(put(101), tomb)).toBeGreaterThan(0);
    expect(compareRecords(tomb, tomb)).toBe(0);
  });

  it('judges liveness by the expiry: live strictly before it', () => {
    const rec = { version: v(1), tombstone: false, value: b(''), expiresAt: 1000 };
    expect(isLive(rec, 999)).toBe(true);
    expect(isLive(rec, 1000)).toBe(false);
    expect(isLive(expiredForm(rec), 0)).toBe(false);
  });
});

function openStore(): Storage {
  const s = Storage.open({ path: tempDir(), nodeName: 'n1' });
  opened.push(s);
  return s;
}

describe('Storage expiry index and sweep', () => {
  it('turns only due records into tombstones, in bounded batches, and counts them', async () => {
    const s = openStore();
    const now = s.clock.wallNow();
    for (let i = 0; i < 5; i++) {
      const rec = {
        version: s.clock.now(),
        tombstone: false,
        value: b(`v${i}`),
        expiresAt: now - 1,
      };
      await s.apply(b(`due-${i}`), rec);
    }
    const later = { version: s.clock.now(), tombstone: false, value: b('l'), expiresAt: now + 1e9 };
    await s.apply(b('later'), later);
    await s.apply(b('plain'), { version: s.clock.now(), tombstone: false, value: b('p') });
    await s.transact(() => {}); // the index is written behind the data: let LMDB commit it
    expect(s.stats()).toMatchObject({ liveKeys: 7, tombstones: 0, expiring: 6 });
    expect(s.dueCount(s.clock.wallNow())).toBe(5);

    expect(await s.expireDue(3)).toEqual({ expired: 3, more: true });
    await s.transact(() => {});
    expect(await s.expireDue(3)).toEqual({ expired: 2, more: false });
    await s.transact(() => {});
    expect(s.stats()).toMatchObject({ liveKeys: 2, tombstones: 5, expiring: 1 });
    expect(s.dueCount(s.clock.wallNow())).toBe(0);
    const swept = s.get(b('due-0'))!;
    expect(swept.tombstone).toBe(true);
    expect(swept.expiresAt).toBe(now - 1);
    expect(s.get(b('later'))!.tombstone).toBe(false);
  });

  it('counts due keys the same before LMDB commits the index as after (DBSIZE and INFO between batches)', async () => {
    // The index is written behind the data, in LMDB's ~1 s batches; lmdb-js reads do not see a
    // batch before it commits. The counters move when a write is decided: dueCount must too.
    const s = openStore();
    const now = s.clock.wallNow();
    for (let i = 0; i < 3; i++) {
      const rec = { version: s.clock.now(), tombstone: false, value: b('v'), expiresAt: now - 1 };
      await s.apply(b(`due-${i}`), rec);
    }
    const live = () => s.stats().expiring - s.dueCount(s.clock.wallNow());
    expect(s.stats().expiring).toBe(3);
    expect(s.dueCount(s.clock.wallNow())).toBe(3);
    expect(live()).toBe(0);
    await s.transact(() => {});
    expect(s.dueCount(s.clock.wallNow())).toBe(3);
    // Swept: the index entries' removal waits for the next batch; a second sweep before it
    // finds nothing to do and removes nothing twice.
    expect(await s.expireDue(10)).toEqual({ expired: 3, more: false });
    expect(s.dueCount(s.clock.wallNow())).toBe(0);
    expect(await s.expireDue(10)).toEqual({ expired: 0, more: false });
    expect(s.dueCount(s.clock.wallNow())).toBe(0);
    await s.transact(() => {});
    expect(s.dueCount(s.clock.wallNow())).toBe(0);
    expect(s.stats()).toMatchObject({ liveKeys: 0, tombstones: 3, expiring: 0 });
  });

  it('moves the index entry when an expiry changes and drops it when the key is overwritten', async () => {
    const s = openStore();
    const now = s.clock.wallNow();
    const first = { version: s.clock.now(), tombstone: false, value: b('a'), expiresAt: now + 1e9 };
    await s.apply(b('k'), first);
    const moved = { ...first, version: s.clock.now(), base: first.version, expiresAt: now - 5 };
    await s.apply(b('k'), moved);
    await s.transact(() => {});
    expect(s.stats().expiring).toBe(1);
    expect(s.dueCount(s.clock.wallNow())).toBe(1);
    await s.apply(b('k'), { version: s.clock.now(), tombstone: false, value: b('b') });
    await s.transact(() => {});
    expect(s.stats().expiring).toBe(0);
    expect(s.dueCount(s.clock.wallNow())).toBe(0);
    expect(await s.expireDue(10)).toEqual({ expired: 0, more: false });
    expect(s.get(b('k'))!.value.toString()).toBe('b');
  });

  it('converges in either arrival order when an EXPIRE races a PUT and a DEL', async () => {
    // EXPIRE read the value written at 100 and wrote at 300; a PUT wrote another value at 200,
    // and (on the other key) a DEL at 200.
    const base = v(100);
    const value = { version: base, tombstone: false, value: b('v1') };
    const change = { ...value, version: v(300, 'n2'), base, expiresAt: 10 ** 13 };
    const put = { version: v(200, 'n3'), tombstone: false, value: b('v2') };
    const del = { version: v(200, 'n3'), tombstone: true, value: b('') };
    for (const [later, want] of [
      [put, 'v2'],
      [del, null],
    ] as const) {
      const x = openStore();
      const y = openStore();
      for (const s of [x, y]) await s.apply(b('k'), value);
      await x.apply(b('k'), change);
      await x.apply(b('k'), later);
      await y.apply(b('k'), later);
      await y.apply(b('k'), change);
      for (const s of [x, y]) {
        const got = s.get(b('k'))!;
        expect(got.tombstone ? null : got.value.toString()).toBe(want);
        expect(got.expiresAt).toBeUndefined();
      }
    }
  });

  it('does not remove an expired value: REMOVE finds nothing live', async () => {
    const s = openStore();
    const rec = { version: s.clock.now(), tombstone: false, value: b('a'), expiresAt: 1 };
    await s.apply(b('k'), rec);
    expect(await s.removeIfLive(b('k'), s.clock.now())).toBe(false);
  });

  it('keeps the index across a restart (replayed from the log)', async () => {
    const path = tempDir();
    const s = Storage.open({ path, nodeName: 'n1' });
    await s.apply(b('k'), {
      version: s.clock.now(),
      tombstone: false,
      value: b('a'),
      expiresAt: 5,
    });
    await s.close();
    const again = Storage.open({ path, nodeName: 'n1' });
    opened.push(again);
    expect(again.stats().expiring).toBe(1);
    expect(await again.expireDue(10)).toEqual({ expired: 1, more: false });
  });
});

const LIMITS: CommandLimits = { maxKeyBytes: 64, maxValueBytes: 64, maxScanKeys: 100 };
const CTX: RespContext = respContext(LIMITS);

/** Runs a RESP command on `c` and shapes its reply as the RESP framing does. */
async function resp(c: ClusterCoordinator, ...args: string[]): Promise<Reply> {
  const req = parseRespRequest(args.map(b), CTX);
  if (req.kind === 'reply') return req.reply;
  if (req.kind !== 'command') throw new Error(`not a data command: ${args[0]}`);
  const r = await c.execute(req.cmd);
  return req.shape && r.type !== 'error' ? req.shape(r) : r;
}

describe('expiry commands on one node', () => {
  it('hides an expired key from GET, EXISTS, MGET, scans and DBSIZE before any sweep', async () => {
    const s = openStore();
    const c = standalone(s);
    await resp(c, 'SET', 'a', '1');
    await resp(c, 'SET', 'b', '2', 'PXAT', String(s.clock.wallNow() + 60_000));
    // An expiry written directly in the past, as a replica would hold it once the time passed.
    const version = s.clock.now();
    await s.apply(b('c'), { version, tombstone: false, value: b('3'), expiresAt: version.wall });
    await s.transact(() => {});
    expect(await resp(c, 'GET', 'c')).toEqual({ type: 'not_found' });
    expect(await resp(c, 'EXISTS', 'a', 'b', 'c')).toEqual({ type: 'integer', value: 2 });
    const keys = await resp(c, 'KEYS', '*');
    expect(keys.type === 'keys' && keys.keys.map(String)).toEqual(['a', 'b']);
    expect(await resp(c, 'DBSIZE')).toEqual({ type: 'integer', value: 2 });
    expect(await resp(c, 'TTL', 'c')).toEqual({ type: 'integer', value: -2 });
    expect(await resp(c, 'EXPIRE', 'c', '100')).toEqual({ type: 'integer', value: 0 });
    expect(await resp(c, 'PERSIST', 'c')).toEqual({ type: 'integer', value: 0 });
    expect(await resp(c, 'DEL', 'c')).toEqual({ type: 'integer', value: 0 });
    expect(await c.execute({ type: 'remove', key: b('c') })).toEqual({ type: 'not_found' });
  });

  it('EXPIRE keeps the value it read as the base, so the write never beats a later PUT', async () => {
    const s = openStore();
    const c = standalone(s);
    await resp(c, 'SET', 'k', 'v1');
    const v1 = s.get(b('k'))!;
    expect(await resp(c, 'EXPIRE', 'k', '100')).toEqual({ type: 'integer', value: 1 });
    const changed = s.get(b('k'))!;
    expect(changed.base).toEqual(v1.version);
    expect(changed.value.toString()).toBe('v1');
    expect(await resp(c, 'PERSIST', 'k')).toEqual({ type: 'integer', value: 1 });
    const persisted = s.get(b('k'))!;
    expect(persisted.base).toEqual(v1.version);
    expect(persisted.expiresAt).toBeUndefined();
    // A PUT whose version lies between v1 and the expiry change still wins over both.
    const between = { wall: v1.version.wall, logical: v1.version.logical + 1, node: 'n0' };
    expect(compareRecords({ version: between, tombstone: false, value: b('v2') }, persisted)).toBe(
      1,
    );
  });

  it('writes a delete for an expiry already past, and nothing for bad input', async () => {
    const s = openStore();
    const c = standalone(s);
    await resp(c, 'SET', 'k', 'v');
    const before = encodeRecord(s.get(b('k'))!);
    for (const args of [
      ['SET', 'k', 'w', 'EX', '0'],
      ['SET', 'k', 'w', 'EX', '-1'],
      ['SET', 'k', 'w', 'PX', 'soon'],
      ['SET', 'k', 'w', 'EX', '9223372036854775'],
      ['SET', 'k', 'w', 'PX', '9223372036854775807'],
      ['SET', 'k', 'w', 'EX', '10', 'PX', '10'],
      ['SET', 'k', 'w', 'KEEPTTL', 'EX', '10'],
      ['EXPIRE', 'k', '1.5'],
      ['EXPIRE', 'k', '9223372036854775'],
      ['PEXPIRE', 'k', '9223372036854775807'],
      ['GETEX', 'k', 'EX', '0'],
      ['GETEX', 'k', 'PERSIST', 'EX', '1'],
    ]) {
      await expect(resp(c, ...args).catch((e: Error) => e.message)).resolves.toMatch(/ERR/);
      expect(encodeRecord(s.get(b('k'))!).equals(before)).toBe(true);
    }
    expect(await resp(c, 'SET', 'k', 'w', 'EXAT', '1')).toEqual({ type: 'ok' });
    expect(s.get(b('k'))!.tombstone).toBe(true);
    await resp(c, 'SET', 'k', 'v');
    expect(await resp(c, 'EXPIRE', 'k', '-5')).toEqual({ type: 'integer', value: 1 });
    expect(s.get(b('k'))!.tombstone).toBe(true);
  });
});

describe('argument checks', () => {
  it('reads integers as Redis does (string2ll)', () => {
    expect(int64Arg(b('0'))).toBe(0n);
    expect(int64Arg(b('-9223372036854775808'))).toBe(-(2n ** 63n));
    expect(int64Arg(b('9223372036854775807'))).toBe(2n ** 63n - 1n);
    for (const bad of ['9223372036854775808', '-0', '01', '+1', ' 1', '1 ', '1.0', '', '-', '1e3'])
      expect(int64Arg(b(bad))).toBeNull();
  });

  it('text EXPIRE and SETEX take whole seconds from 1 to 2^53 ms; PUT keeps its value', () => {
    const put = parseTextLine(b('PUT k value with EX 10 spaces'), LIMITS);
    expect(put).toEqual({ type: 'put', key: b('k'), value: b('value with EX 10 spaces') });
    const setex = parseTextLine(b('SETEX k 10 hello world'), LIMITS);
    expect(setex).toEqual({
      type: 'put',
      key: b('k'),
      value: b('hello world'),
      expiry: { relative: true, ms: 10_000 },
    });
    for (const bad of ['0', '-1', 'x', '1.5', '9007199254741', '99999999999999999'])
      expect(() => parseTextLine(b(`EXPIRE k ${bad}`), LIMITS)).toThrow(/seconds must be/);
    expect(() => parseTextLine(b('GET k EX 10'), LIMITS)).toThrow(/takes no expiry option/);
    expect(() => parseTextLine(b('RANGE a b PX 10'), LIMITS)).toThrow(/takes no expiry option/);
    // A key may be named like an option: only what follows it is one.
    for (const key of ['ex', 'PX', 'persist', 'keepttl', 'exat']) {
      expect(parseTextLine(b(`GET ${key}`), LIMITS)).toEqual({ type: 'get', key: b(key) });
      expect(parseTextLine(b(`REMOVE ${key}`), LIMITS)).toEqual({ type: 'remove', key: b(key) });
    }
  });
});
