import { cpSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

// A write that wins on its version alone takes what it replaces (live, its expiry, or a
// tombstone) from the kinds of the keys written last instead of reading the old record
// (Storage.#applyOne). The counters (DBSIZE, INFO, the storage metrics), the tombstone index
// (garbage collection) and the expiry index (the sweeper, DBSIZE's due keys) must stay what the
// records say, whichever way each write learnt it, through reopen and replay.

const b = (s: string) => Buffer.from(s);
afterEach(cleanup);

function openStore(path: string, recentKindsBytes?: number): Storage {
  const s = Storage.open({
    path,
    nodeName: 'n1',
    ...(recentKindsBytes === undefined ? {} : { recentKindsBytes }),
  });
  defer(() => s.close());
  return s;
}

/** What the records themselves say the counters and indexes are. */
function fromRecords(s: Storage) {
  const now = s.clock.wallNow();
  let liveKeys = 0;
  let expiring = 0;
  let due = 0;
  const tombstones: string[] = [];
  for (const { key, record } of s.scan({ start: b(''), end: null })) {
    if (record.tombstone) {
      tombstones.push(key.toString());
      continue;
    }
    liveKeys++;
    if (record.expiresAt !== undefined) expiring++;
    if (record.expiresAt !== undefined && record.expiresAt <= now) due++;
  }
  return { liveKeys, tombstones: tombstones.length, expiring, due, tombstoneKeys: tombstones };
}

/**
 * What the store keeps: its counters, its tombstone index, its count of due expiry entries. The
 * index writes go to LMDB at once, and its reads see them once committed: waited for first.
 */
async function kept(s: Storage) {
  await s.root.committed;
  const { liveKeys, tombstones, expiring } = s.stats();
  const tombstoneKeys = [...s.tombstoneKeys()].map((k) => k.toString());
  return { liveKeys, tombstones, expiring, due: s.dueCount(s.clock.wallNow()), tombstoneKeys };
}

/** A deterministic sequence of numbers in [0, 1). */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

/**
 * `steps` writes of every kind on 12 keys: values with and without an expiry (two expiry times,
 * one already past), tombstones written as values are, deletes of live values only, discards of
 * the current record, and sweeps of the due ones. Checked against the records every 25 steps.
 */
async function churn(s: Storage, seed: number, steps: number): Promise<void> {
  const next = random(seed);
  const key = () => b(`k${Math.floor(next() * 12)}`);
  const past = Date.now() - 60_000;
  const later = Date.now() + 3_600_000;
  for (let i = 1; i <= steps; i++) {
    const k = key();
    const pick = next();
    if (pick < 0.3) {
      await s.apply(k, { version: s.clock.now(), tombstone: false, value: b(`v${i}`) });
    } else if (pick < 0.5) {
      const expiresAt = next() < 0.5 ? past : later;
      await s.apply(k, { version: s.clock.now(), tombstone: false, value: b(`e${i}`), expiresAt });
    } else if (pick < 0.6) {
      await s.apply(k, { version: s.clock.now(), tombstone: true, value: b('') });
    } else if (pick < 0.75) {
      await s.removeIfLive(k, s.clock.now());
    } else if (pick < 0.85) {
      const current = s.get(k);
      if (current) await s.discard([{ key: k, version: current.version }]);
    } else if (pick < 0.9) {
      await s.expireDue(3);
    } else {
      // Several writes decided in one turn: one log group, one LMDB batch.
      await Promise.all([
        s.apply(k, { version: s.clock.now(), tombstone: false, value: b(`g${i}`) }),
        s.apply(key(), { version: s.clock.now(), tombstone: true, value: b('') }),
        s.apply(k, {
          version: s.clock.now(),
          tombstone: false,
          value: b(`h${i}`),
          expiresAt: later,
        }),
      ]);
    }
    if (i % 25 === 0) expect(await kept(s), `step ${i}`).toEqual(fromRecords(s));
    // Now and then LMDB commits what was written, so that some writes read LMDB's record.
    if (i % 40 === 0) await s.flush();
  }
}

describe('Storage: the kinds of recently written keys', () => {
  // Every key's kind kept (the default), none kept (every write reads the old record), and room
  // for about two keys (each write drops others: kept, dropped and read again in turn).
  for (const [name, bytes] of [
    ['all kept', undefined],
    ['none kept', 0],
    ['room for two', 200],
  ] as const) {
    it(`keeps the counters and indexes what the records say (${name}), through reopen and replay`, async () => {
      const dir = tempDir();
      const s = openStore(dir, bytes);
      await churn(s, 17, 400);
      expect(await kept(s)).toEqual(fromRecords(s));
      // A crash: the files as the process left them (LMDB without the writes of its open batch,
      // the log with every acknowledged one), opened by a new process, which replays the log.
      await churn(s, 29, 60);
      // The index writes LMDB was given at once committed (the batch of the last writes is not
      // LMDB's yet), so that the copy is not taken during a commit.
      await s.root.committed;
      const crashed = tempDir();
      cpSync(dir, crashed, { recursive: true, filter: (from) => !from.endsWith('lock.mdb') });
      const expected = fromRecords(s);
      const replayed = openStore(crashed, bytes);
      expect(replayed.recovery.replayed).toBeGreaterThan(0);
      expect(await kept(replayed)).toEqual(expected);
      expect(fromRecords(replayed)).toEqual(expected);
      // Writes after the replay decide against what it restored.
      await churn(replayed, 31, 200);
      expect(await kept(replayed)).toEqual(fromRecords(replayed));
      await s.close();
      const reopened = openStore(dir, bytes);
      expect(reopened.recovery.replayed).toBe(0);
      expect(await kept(reopened)).toEqual(expected);
    });
  }

  it('still refuses an older version and a base below the stored value for a key whose kind it knows', async () => {
    const s = openStore(tempDir());
    const first = s.clock.now();
    expect(await s.apply(b('k'), { version: first, tombstone: false, value: b('v1') })).toBe(true);
    const second = s.clock.now();
    expect(await s.apply(b('k'), { version: second, tombstone: false, value: b('v2') })).toBe(true);
    // Newer than every version the store holds, but it keeps the value of `first`, which a later
    // write replaced: the stored value wins (compareRecords ranks the base first).
    const expire = { version: s.clock.now(), base: first, tombstone: false, value: b('v1') };
    expect(await s.apply(b('k'), { ...expire, expiresAt: Date.now() + 60_000 })).toBe(false);
    expect(await s.apply(b('k'), { version: first, tombstone: true, value: b('') })).toBe(false);
    expect(s.get(b('k'))?.value.toString()).toBe('v2');
    expect(await kept(s)).toEqual(fromRecords(s));
  });
});

describe('Storage: the recent kinds when the node goes idle', () => {
  const write = (s: Storage, key: string) =>
    s.apply(b(key), { version: s.clock.now(), tombstone: false, value: b('v') });
  const writeAll = async (s: Storage, prefix: string, n: number) => {
    for (let i = 0; i < n; i++) await write(s, `${prefix}:${i}`);
  };
  // Room for about 200 keys of 7 to 9 bytes (each counted as its length + 88 bytes).
  const ROOM = 20_000;

  it('lets them go when full of keys that did not come back, keeps them otherwise', async () => {
    const s = openStore(tempDir(), ROOM);
    // A bulk load of more keys than it holds: full, none answered (the bound went down to a
    // sixteenth, test/unit/recent-kinds.test.ts). All let go.
    await writeAll(s, 'load', 1000);
    const bulk = s.idle();
    expect(bulk.keys).toBeGreaterThan(0);
    expect(bulk.bytes).toBeGreaterThan(bulk.keys * 88);
    expect(s.idle()).toEqual({ keys: 0, bytes: 0 }); // nothing written since: nothing to let go
    // A load of fewer keys than it holds: none answered, but none dropped: kept for the updates
    // that may follow (npm run bench fills its keys, then SETs them).
    await writeAll(s, 'few', 100);
    expect(s.idle()).toEqual({ keys: 0, bytes: 0 });
    // Updates of those 100, all answered, and 150 new keys three times over: full, more answered
    // than learnt. Kept.
    await writeAll(s, 'few', 100);
    for (let round = 0; round < 4; round++) await writeAll(s, 'hot', 150);
    expect(s.idle()).toEqual({ keys: 0, bytes: 0 });
    // 300 new ones: full, none answered. Let go.
    await writeAll(s, 'cold', 300);
    expect(s.idle().keys).toBeGreaterThan(0);
    // Writes after a release read their old records again: the counters stay the records'.
    await writeAll(s, 'hot', 150);
    await s.removeIfLive(b('load:3'), s.clock.now());
    await s.apply(b('cold:7'), { version: s.clock.now(), tombstone: true, value: b('') });
    expect(await kept(s)).toEqual(fromRecords(s));
    expect(s.stats().liveKeys).toBe(1000 + 100 + 150 + 300 - 2);
  });

  it('keeps the counters and indexes what the records say with releases between the writes', async () => {
    const s = openStore(tempDir(), ROOM);
    for (let seed = 3; seed < 8; seed++) {
      // 12 keys and 60 writes: some learnt, some answered; then a burst of new keys, let go.
      await churn(s, seed, 60);
      await writeAll(s, `burst${seed}`, 400);
      expect(s.idle().keys).toBeGreaterThan(0);
      expect(await kept(s)).toEqual(fromRecords(s));
    }
  });
});
