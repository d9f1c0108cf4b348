import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import type { Command, Reply } from '../../src/protocol/index.ts';
import { decodeRecord, encodeRecord, HintStore, Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { standalone } from '../helpers/standalone.ts';
import { killedStorageWriter } from '../helpers/storage-writer-run.ts';

const b = (s: string) => Buffer.from(s);

function openStore(path = tempDir()): Storage {
  const s = Storage.open({ path, nodeName: 'n1' });
  defer(() => s.close());
  return s;
}

afterEach(cleanup);

function keysOf(reply: Reply): string[] {
  if (reply.type !== 'keys') throw new Error(`expected keys, got ${reply.type}`);
  return reply.keys.map((k) => k.toString());
}

describe('Storage', () => {
  it('keeps the newest version: older writes are ignored', async () => {
    const s = openStore();
    const newer = { wall: 200, logical: 0, node: 'b' };
    const older = { wall: 100, logical: 5, node: 'z' };
    expect(await s.apply(b('k'), { version: newer, tombstone: false, value: b('new') })).toBe(true);
    expect(await s.apply(b('k'), { version: older, tombstone: false, value: b('old') })).toBe(
      false,
    );
    expect(s.get(b('k'))?.value.toString()).toBe('new');
    expect(s.stats().liveKeys).toBe(1);
  });

  it('counts live keys and tombstones exactly and keeps them across reopen', async () => {
    const dir = tempDir();
    const s = openStore(dir);
    for (const k of ['a', 'b', 'c']) {
      await s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b('v') });
    }
    expect(await s.removeIfLive(b('b'), s.clock.now())).toBe(true);
    expect(await s.removeIfLive(b('b'), s.clock.now())).toBe(false);
    expect(await s.removeIfLive(b('zz'), s.clock.now())).toBe(false);
    expect(s.stats()).toMatchObject({ liveKeys: 2, tombstones: 1 });
    const last = s.clock.now();
    await s.close();
    const again = openStore(dir);
    expect(again.stats()).toMatchObject({ liveKeys: 2, tombstones: 1 });
    expect(again.get(b('b'))?.tombstone).toBe(true);
    // The clock resumes above every version written before the restart.
    expect(again.clock.now().wall).toBeGreaterThanOrEqual(last.wall);
  });

  it('answers each write of a log group with its own decision, and times every one', async () => {
    // The writes that wait for one log group share its reaction: applied ones and ones an
    // older version lost must still each get their own answer, and each counts its commit time.
    const registry = new Registry();
    const s = Storage.open({ path: tempDir(), nodeName: 'n1', registry });
    defer(() => s.close());
    const v = (wall: number) => ({ wall, logical: 0, node: 'n1' });
    const put = (k: string, wall: number) =>
      s.apply(b(k), { version: v(wall), tombstone: false, value: b(`${k}${wall}`) });
    const first = [put('a', 200), put('b', 200), put('c', 200)];
    // Same turn, so the same group: older than what was just decided, newer, older, gone.
    const second = [put('a', 100), put('b', 300), put('c', 150), s.removeIfLive(b('zz'), v(400))];
    const applied = await Promise.all([...first, ...second]);
    expect(applied.map((x) => (x ? 'y' : 'n')).join('')).toBe('yyynynn');
    expect(['a', 'b', 'c'].map((k) => s.get(b(k))?.value.toString())).toEqual([
      'a200',
      'b300',
      'c200',
    ]);
    const metric = await registry.getSingleMetric('kvstore_storage_commit_duration_seconds')?.get();
    const values = (metric?.values ?? []) as { metricName?: string; value: number }[];
    const count = values.find((x) => x.metricName?.endsWith('_count'))?.value;
    expect(count).toBe(7);
  });

  it('gives LMDB the last write of each key in a batch, puts and deletes alike', async () => {
    // A batch goes to LMDB as one transaction of its writes in the order they were decided:
    // what LMDB itself holds after a clean stop (no log to replay) is what the last write of
    // each key left, a physical delete included.
    const dir = tempDir();
    const s = openStore(dir);
    const put = (k: string, v: string) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b(v) });
    const writes: Promise<unknown>[] = [];
    for (const v of ['a1', 'a2', 'a3']) writes.push(put('a', v));
    writes.push(put('b', 'b1'), put('c', 'c1'), put('d', 'd1'));
    await Promise.all(writes);
    const version = (k: string) => s.get(b(k))!.version;
    // Still one batch: b deleted after its put, c deleted then put again, d put again.
    expect(await s.discard([{ key: b('b'), version: version('b') }])).toBe(1);
    expect(await s.discard([{ key: b('c'), version: version('c') }])).toBe(1);
    await put('c', 'c2');
    await put('d', 'd2');
    await s.close();
    const again = openStore(dir);
    expect(again.recovery.replayed).toBe(0);
    expect(again.get(b('a'))?.value.toString()).toBe('a3');
    expect(again.get(b('b'))).toBeUndefined();
    expect(again.get(b('c'))?.value.toString()).toBe('c2');
    expect(again.get(b('d'))?.value.toString()).toBe('d2');
    expect(again.stats()).toMatchObject({ liveKeys: 3, tombstones: 0 });
    expect([...again.scan({ start: b(''), end: null })].map((r) => r.key.toString())).toEqual([
      'a',
      'c',
      'd',
    ]);
  });

  it('counts the write that fills an LMDB batch in the counters stored with it', async () => {
    // A write that brings the batch to 4 MiB (LMDB_BATCH_BYTES, key and record) gives it to LMDB
    // at once, with the counters: those once missed that very write, until the next write, so
    // after a stop (or a crash) the node reported one key fewer than it stored, for good.
    const BATCH = 4 * 1024 * 1024;
    const dir = tempDir();
    const s = openStore(dir);
    await s.apply(b('a'), { version: s.clock.now(), tombstone: false, value: b('v') });
    await s.apply(b('c'), { version: s.clock.now(), tombstone: false, value: b('v') });
    await s.flush();
    // One value that fills a batch by itself.
    await s.apply(b('big1'), {
      version: s.clock.now(),
      tombstone: false,
      value: Buffer.alloc(BATCH),
    });
    await s.close();
    const again = openStore(dir);
    expect(again.stats()).toMatchObject({ liveKeys: 3, tombstones: 0 });
    // A discard (the drop pass, tombstone collection) that fills the batch: the value before it
    // leaves room for the discarded key alone.
    const version = again.get(b('a'))!.version;
    const head = encodeRecord({
      version: again.clock.now(),
      tombstone: false,
      value: Buffer.alloc(0),
    });
    const fill = BATCH - 'big2'.length - head.length - 'a'.length;
    await again.apply(b('big2'), {
      version: again.clock.now(),
      tombstone: false,
      value: Buffer.alloc(fill),
    });
    expect(await again.discard([{ key: b('a'), version }])).toBe(1);
    await again.close();
    expect(openStore(dir).stats()).toMatchObject({ liveKeys: 3, tombstones: 0 });
  });

  it('a scan begun before its writes were committed answers their keys after LMDB took them and later writes came', async () => {
    const s = openStore();
    const put = (k: string) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b(`v-${k}`) });
    await Promise.all(['k1', 'k2', 'k3'].map(put));
    const scan = s.scan({ start: b('k'), end: b('l') });
    expect(scan.next().value?.key.toString()).toBe('k1'); // the overlay is read here
    // The batch goes to LMDB, then two more batches of other keys of the same length.
    await s.flush();
    await Promise.all(['x1', 'x2', 'x3'].map(put));
    await s.flush();
    await Promise.all(['y1', 'y2', 'y3'].map(put));
    const rest = [...scan].map((r) => `${r.key}=${r.record.value}`);
    expect(rest).toEqual(['k2=v-k2', 'k3=v-k3']);
  });

  it('lets the table a burst of writes filled go once LMDB committed them: an idle store holds no table sized for the burst', async () => {
    const s = openStore();
    const empty = s.overlayTableBytes();
    const put = (k: string) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b('v') });
    // One batch of 20,000 keys: the table the next batch starts with was made this size.
    await Promise.all(Array.from({ length: 20_000 }, (_, i) => put(`key:${i}`)));
    await s.flush();
    await new Promise((r) => setImmediate(r));
    expect(s.overlayTableBytes()).toBe(empty);
    // Later writes still find their way to the table and LMDB.
    await Promise.all(Array.from({ length: 3 }, (_, i) => put(`later:${i}`)));
    expect(s.get(b('later:2'))?.value.toString()).toBe('v');
    await s.flush();
    expect(s.stats().liveKeys).toBe(20_003);
  });

  it("stores and logs an entry's encoded bytes as given, and scans hand them back undecoded", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    const record = { version: s.clock.now(), tombstone: false, value: b('v1'), expiresAt: 4e12 };
    const raw = encodeRecord(record);
    expect(await s.applyBatch([{ key: b('k'), record, raw }])).toBe(1);
    expect(s.getRaw(b('k'))).toBe(raw); // the same buffer while LMDB has not committed it
    await s.close();
    const again = openStore(dir); // replayed from the log, or read from LMDB
    expect(again.getRaw(b('k'))?.equals(raw)).toBe(true);
    expect(again.stats()).toMatchObject({ liveKeys: 1, expiring: 1 });
    // The scan decodes the record only when asked.
    const [scanned] = [...again.scan({ start: b('k'), end: null })];
    expect(scanned!.raw.equals(raw)).toBe(true);
    expect(scanned!.record).toEqual(decodeRecord(raw));
  });

  it("hands out LMDB's records as copies of their own length that later reads leave alone", async () => {
    const dir = tempDir();
    const s = openStore(dir);
    // Around the limit of Node's buffer pool (32 KiB), and past lmdb-js's read buffer (16 MiB).
    const sizes = [0, 1, 100, 32_700, 32_768, 70_000, 17 * 1024 * 1024];
    const raws = sizes.map((n, i) =>
      encodeRecord({ version: s.clock.now(), tombstone: false, value: Buffer.alloc(n, i + 1) }),
    );
    for (const [i, raw] of raws.entries()) {
      expect(await s.apply(b(`k${i}`), decodeRecord(raw))).toBe(true);
    }
    await s.close();
    const again = openStore(dir); // LMDB's bytes now, not the queued ones
    await again.flush();
    const read = sizes.map((_, i) => again.getRaw(b(`k${i}`))!);
    for (const [i, raw] of raws.entries()) {
      expect(read[i]!.length).toBe(raw.length);
      expect(read[i]!.equals(raw)).toBe(true);
      expect(again.get(b(`k${i}`))!.value.equals(decodeRecord(raw).value)).toBe(true);
    }
  });

  it('scans in byte order, not string or locale order', async () => {
    const s = openStore();
    const keys = [b('a'), b('B'), b('aa'), Buffer.from([0xc3, 0xa9]), b('a~'), b('a0')];
    for (const k of keys)
      await s.apply(k, { version: s.clock.now(), tombstone: false, value: b('') });
    const scanned = [...s.scan({ start: Buffer.from([0]), end: null })].map((r) => r.key);
    expect(scanned).toEqual([...keys].sort(Buffer.compare));
  });
});

describe('Storage write-ahead log', () => {
  it('reads and scans see acknowledged writes before LMDB has committed them', async () => {
    const s = openStore();
    await s.apply(b('k-050'), { version: s.clock.now(), tombstone: false, value: b('old') });
    await s.apply(b('k-060'), { version: s.clock.now(), tombstone: false, value: b('gone') });
    // Queued in one synchronous turn: LMDB's writer thread cannot have committed any of them.
    const acks = [];
    for (let i = 0; i < 100; i += 2) {
      const k = b(`k-${String(i).padStart(3, '0')}`);
      acks.push(s.apply(k, { version: s.clock.now(), tombstone: false, value: b(`v${i}`) }));
    }
    acks.push(s.removeIfLive(b('k-060'), s.clock.now()));
    expect(s.get(b('k-050'))?.value.toString()).toBe('v50');
    expect(s.get(b('k-060'))?.tombstone).toBe(true);
    const live = (bounds: Parameters<Storage['scan']>[0]) =>
      [...s.scan(bounds)].filter((r) => !r.record.tombstone).map((r) => r.key.toString());
    const all = live({ start: b('k-'), end: null });
    expect(all).toHaveLength(49);
    expect(all).toEqual([...all].sort());
    expect(all).not.toContain('k-060');
    expect(live({ start: b('k-010'), end: b('k-020'), exclusiveStart: true })).toEqual([
      'k-012',
      'k-014',
      'k-016',
      'k-018',
    ]);
    expect(live({ start: b('k-010'), end: b('k-014'), inclusiveEnd: true })).toEqual([
      'k-010',
      'k-012',
      'k-014',
    ]);
    await Promise.all(acks);
    await s.flush();
    expect(live({ start: b('k-'), end: null })).toEqual(all);
  });

  it('a scan whose end is the empty key finds nothing, before and after LMDB committed the writes', async () => {
    const s = openStore();
    const keys = (bounds: Parameters<Storage['scan']>[0]) =>
      [...s.scan(bounds)].map((r) => r.key.toString());
    const ends = [
      { start: b(''), end: b('') },
      { start: b(''), end: b(''), inclusiveEnd: true },
    ];
    // Queued in one synchronous turn: the overlay answers (an empty end is the empty key).
    const acks = ['a', 'b'].map((k) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b(k) }),
    );
    for (const bounds of ends) expect(keys(bounds)).toEqual([]);
    await Promise.all(acks);
    await s.flush();
    // Committed: LMDB answers. Before, it took an empty end as none: ['a', 'b'].
    for (const bounds of ends) expect(keys(bounds), JSON.stringify(bounds)).toEqual([]);
    // No end is said with null.
    expect(keys({ start: b(''), end: null })).toEqual(['a', 'b']);
  });

  it('reads and scans see the newest write of a key while older batches of it are on their way to LMDB', async () => {
    const s = openStore();
    const put = (k: string, v: string) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b(v) });
    const value = (k: string) => {
      const r = s.get(b(k));
      return r === undefined || r.tombstone ? null : r.value.toString();
    };
    const scanned = () =>
      [...s.scan({ start: b('k'), end: null })]
        .filter((r) => !r.record.tombstone)
        .map((r) => `${r.key}=${r.record.value}`);
    await Promise.all([put('k1', 'a1'), put('k2', 'a2'), put('k3', 'a3')]);
    // Three batches, each given to LMDB before the next is queued (flush() issues at once):
    // none of them can have committed before the reads below, made in the same synchronous run.
    const acks: Promise<unknown>[] = [put('k1', 'b1'), put('k2', 'b2')];
    const flushes = [s.flush()];
    acks.push(put('k1', 'c1'), s.removeIfLive(b('k3'), s.clock.now()), put('k4', 'c4'));
    flushes.push(s.flush());
    acks.push(put('k2', 'd2'));
    const expected = ['k1=c1', 'k2=d2', 'k4=c4'];
    expect([value('k1'), value('k2'), value('k3'), value('k4')]).toEqual(['c1', 'd2', null, 'c4']);
    expect(scanned()).toEqual(expected);
    await Promise.all(acks);
    await Promise.all(flushes);
    expect(scanned()).toEqual(expected);
    await s.flush();
    expect([value('k1'), value('k2'), value('k3'), value('k4')]).toEqual(['c1', 'd2', null, 'c4']);
    expect(scanned()).toEqual(expected);
    expect(s.stats()).toMatchObject({ liveKeys: 3, tombstones: 1 });
  });

  it('keeps a batch readable until LMDB committed it, also when it shares a transaction with the batch before it', async () => {
    // Batches given to LMDB in one event-loop turn go into lmdb-js's one transaction and share its
    // promise. The second batch waited on no promise at all and was dropped a few microtasks
    // later, long before the commit: reads went to LMDB and answered the older value (a GET after
    // its SET was acknowledged, client-isolation.test.ts, about 1 run in 4).
    const s = openStore();
    const put = (k: string, v: string) =>
      s.apply(b(k), { version: s.clock.now(), tombstone: false, value: b(v) });
    await put('k1', 'old');
    await s.flush();
    const acks = [put('k0', 'x')];
    const flushes = [s.flush()];
    acks.push(put('k1', 'new'));
    flushes.push(s.flush());
    // Microtasks only: LMDB's thread reports a commit in a later turn of the event loop.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(s.get(b('k1'))?.value.toString()).toBe('new');
    await Promise.all([...acks, ...flushes]);
    expect(s.get(b('k1'))?.value.toString()).toBe('new');
  });

  it('gives LMDB a batch a slice per event-loop turn, older batches first, while reads answer the newest write', async () => {
    // A batch of ~30,000 SETs given to lmdb-js in one run stopped the event loop for 7-25 ms at
    // every log rotation. Given in slices, a newer batch of the same keys must not overtake the
    // older one's rest (LMDB would end up with the older values), and reads must answer the
    // newest write meanwhile.
    const dir = tempDir();
    const s = openStore(dir);
    const n = 12_000;
    const pad = 'x'.repeat(400);
    const put = (i: number, v: string) =>
      s.apply(b(`k${i}`), { version: s.clock.now(), tombstone: false, value: b(`${v}${pad}`) });
    const head = (st: Storage, i: number) => st.get(b(`k${i}`))?.value.toString()[0];
    const value = (i: number) => head(s, i);
    const acks: Promise<unknown>[] = [];
    // About 9,300 of them fill a batch (4 MiB): it is issued, and given nothing yet in this turn.
    for (let i = 0; i < n; i++) acks.push(put(i, 'a'));
    const issued = s.handingOver;
    expect(issued).toBeGreaterThan(8000);
    await new Promise((resolve) => setImmediate(resolve));
    const left = s.handingOver;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(issued);
    // The same keys again: a second batch is issued behind the first one's rest.
    for (let i = 0; i < n; i++) acks.push(put(i, 'b'));
    expect(s.handingOver).toBeGreaterThan(left);
    for (let i = 0; i < n; i++) expect(value(i)).toBe('b');
    await Promise.all(acks);
    while (s.handingOver > 0) await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < n; i++) expect(value(i)).toBe('b');
    // What LMDB itself holds after a clean stop (no log to replay).
    await s.close();
    const again = openStore(dir);
    expect(again.recovery.replayed).toBe(0);
    for (let i = 0; i < n; i++) expect(head(again, i)).toBe('b');
    expect(again.stats()).toMatchObject({ liveKeys: n, tombstones: 0 });
  });

  it('commits with every slice of a batch the counters of the records LMDB was given so far', async () => {
    // lmdb-js may end its transaction between two turns, so a batch given over several turns can
    // commit in several: each commit, which a crash may leave as LMDB's last, must hold counters
    // that match its records (the replay counts only the writes it finds missing).
    const dir = tempDir();
    const s = openStore(dir);
    // LMDB's own tables, opened before any write (an open is a synchronous transaction).
    const data = s.root.openDB<Buffer, Buffer>({
      name: 'data',
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    const meta = s.root.openDB<unknown, string>({ name: 'meta', encoding: 'json' });
    const pad = Buffer.alloc(400);
    const expiresAt = Date.now() + 3_600_000;
    const put = (k: string, tombstone = false, expiring = false) =>
      s.apply(b(k), {
        version: s.clock.now(),
        tombstone,
        value: tombstone ? b('') : pad,
        ...(expiring ? { expiresAt } : {}),
      });
    const old = 6000;
    await Promise.all(Array.from({ length: old }, (_, i) => put(`old${i}`)));
    await s.flush();
    // A batch that deletes old keys (tombstones) and adds new ones (half of them expiring), in
    // turn, given in slices.
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < old; i++) {
      acks.push(put(`old${i}`, true), put(`new${i}`, false, i % 2 === 0), put(`new2-${i}`));
    }
    expect(s.handingOver).toBeGreaterThan(4096);
    let checks = 0;
    while (s.handingOver > 0) {
      // One synchronous run: one read snapshot of LMDB, the last commit it has.
      const seen = { liveKeys: 0, tombstones: 0, expiring: 0 };
      for (const { value } of data.getRange({})) {
        const r = decodeRecord(Buffer.from(value));
        if (r.tombstone) seen.tombstones++;
        else seen.liveKeys++;
        if (!r.tombstone && r.expiresAt !== undefined) seen.expiring++;
      }
      const state = meta.get('state') as typeof seen;
      expect(seen).toEqual({
        liveKeys: state.liveKeys,
        tombstones: state.tombstones,
        expiring: state.expiring ?? 0,
      });
      checks++;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(checks).toBeGreaterThan(1);
    await Promise.all(acks);
    await s.flush();
    expect(s.stats()).toMatchObject({ liveKeys: 2 * old, tombstones: old, expiring: old / 2 });
  });

  it('gives LMDB separately acknowledged writes in batches, not a transaction each', async () => {
    const s = openStore();
    const txnId = () => (s.root.getStats() as { lastTxnId: number }).lastTxnId;
    const before = txnId();
    for (let i = 0; i < 50; i++) {
      // Each write is acknowledged (durable in the log) before the next one is made.
      expect(
        await s.apply(b(`k${i}`), { version: s.clock.now(), tombstone: false, value: b('v') }),
      ).toBe(true);
    }
    expect(s.get(b('k49'))?.value.toString()).toBe('v');
    await s.flush();
    const transactions = txnId() - before;
    expect(transactions).toBeGreaterThan(0);
    expect(transactions).toBeLessThan(25);
    expect(s.stats().liveKeys).toBe(50);
  });

  it('replays acknowledged writes that LMDB lost after a crash, counters included', async () => {
    const dir = tempDir();
    // LMDB as it was synced before the second phase: what a power loss could leave behind if
    // its later commits had not reached the disk.
    let saved = Buffer.alloc(0);
    await killedStorageWriter(dir, 2000, 3000, () => {
      saved = readFileSync(join(dir, 'data.mdb'));
    });
    writeFileSync(join(dir, 'data.mdb'), saved);
    rmSync(join(dir, 'lock.mdb'), { force: true });
    const registry = new Registry();
    const s = Storage.open({ path: dir, nodeName: 'n1', registry });
    defer(() => s.close());
    for (let i = 0; i < 3000; i++) {
      expect(s.get(b(`p2-${i}`))?.value.toString()).toBe(`value of p2-${i}`);
    }
    for (let i = 0; i < 2000; i++) expect(s.get(b(`p1-${i}`))?.tombstone).toBe(i % 10 === 0);
    expect(s.stats()).toMatchObject({ liveKeys: 2000 - 200 + 3000, tombstones: 200 });
    const replayed = await registry.getSingleMetric('kvstore_wal_replayed_records')?.get();
    expect(replayed?.values[0]?.value).toBeGreaterThanOrEqual(3200);
    // A clean stop leaves nothing to replay.
    await s.close();
    const again = openStore(dir);
    expect(again.stats()).toMatchObject({ liveKeys: 4800, tombstones: 200 });
    expect(readdirSync(join(dir, 'wal')).filter((n) => /^\d+\.wal$/.test(n))).toHaveLength(1);
  });
});

describe('single-node coordinator scans', () => {
  async function seeded(n: number, maxScanKeys = 1000) {
    const s = openStore();
    const c = standalone(s, maxScanKeys);
    const run = async (cmd: Command) => c.execute(cmd);
    for (let i = 0; i < n; i++) {
      await run({ type: 'put', key: b(`k${String(i).padStart(3, '0')}`), value: b('v') });
    }
    return run;
  }
  const page = (limit: number | null, cursor: string | null = null) => ({
    limit,
    cursor: cursor === null ? null : b(cursor),
  });

  it('RANGE is inclusive at both ends and skips deleted keys', async () => {
    const run = await seeded(10);
    await run({ type: 'remove', key: b('k003') });
    const r = await run({ type: 'range', start: b('k002'), end: b('k005'), page: page(null) });
    expect(keysOf(r)).toEqual(['k002', 'k004', 'k005']);
    const empty = await run({ type: 'range', start: b('k009'), end: b('k001'), page: page(null) });
    expect(keysOf(empty)).toEqual([]);
  });

  it('pages with LIMIT and CURSOR to the same keys as one scan', async () => {
    const run = await seeded(25);
    const got: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const r = await run({ type: 'prefix', prefix: b('k0'), page: page(7, cursor) });
      if (r.type !== 'keys') throw new Error(r.type);
      got.push(...keysOf(r));
      expect(r.paged).toBe(true);
      cursor = r.next?.toString() ?? null;
      if (cursor === null) break;
    }
    const all = await run({ type: 'prefix', prefix: b('k0'), page: page(null) });
    expect(got).toEqual(keysOf(all));
    expect(got).toHaveLength(25);
  });

  it('says a LIMIT answer is complete when exactly LIMIT keys match', async () => {
    const run = await seeded(5);
    const r = await run({ type: 'prefix', prefix: b('k'), page: page(5) });
    expect(r).toMatchObject({ type: 'keys', paged: true, next: null });
  });

  it('refuses an uncapped scan above the cap instead of truncating it', async () => {
    const run = await seeded(6, 5);
    await expect(run({ type: 'prefix', prefix: b('k'), page: page(null) })).rejects.toSatisfy(
      (e: unknown) => e instanceof KvError && e.code === 'KV_ERR_LIMIT_EXCEEDED',
    );
    const ok = await run({ type: 'range', start: b('k000'), end: b('k004'), page: page(null) });
    expect(keysOf(ok)).toHaveLength(5);
  });
});

describe('HintStore', () => {
  it('opens no LMDB database of its own: no synchronous LMDB transaction while the replay commits', async () => {
    // lmdb-js opens a database in a synchronous transaction, which turns the rest of a batch
    // waiting in LMDB's writer (a start's replay) into a synchronous commit (docs/storage.md).
    const s = openStore();
    const root = s.root as { openDB: unknown };
    const openDB = root.openDB;
    root.openDB = () => {
      throw new Error('openDB after the store opened');
    };
    try {
      const hints = new HintStore(s, 100);
      expect(await hints.add([{ target: 'n2', key: b('k'), raw: b('v') }])).toBe(1);
    } finally {
      root.openDB = openDB;
    }
  });

  it('lists the hints of a target oldest first, up to a count and a byte budget (at least one)', async () => {
    const hints = new HintStore(openStore(), 100);
    const big = (i: number) => ({ target: 'n2', key: b(`k${i}`), raw: Buffer.alloc(1000, i) });
    await hints.add([big(0), big(1), big(2), { target: 'n3', key: b('x'), raw: b('y') }, big(3)]);
    const keys = (list: { key: Buffer }[]) => list.map((h) => h.key.toString());
    expect(keys(hints.list('n2', 10))).toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(keys(hints.list('n2', 2))).toEqual(['k0', 'k1']);
    // Each stored hint is its key and record plus a 2-byte key length: 1,004 bytes here.
    expect(keys(hints.list('n2', 10, 2008))).toEqual(['k0', 'k1']);
    expect(keys(hints.list('n2', 10, 2007))).toEqual(['k0']);
    expect(keys(hints.list('n2', 10, 1))).toEqual(['k0']);
    expect(hints.list('n2', 10, 3000).map((h) => h.raw[0])).toEqual([0, 1]);
  });

  it('keeps at most maxBytes of hints, counted exactly across a reopen and removals', async () => {
    const dir = tempDir();
    // A hint counts its id (`target \0 seq`: 11 bytes here), a 2-byte key length, its key (2
    // bytes) and record: 10,015 bytes with a 10,000-byte record.
    const hint = (i: number, size = 10_000) => ({
      target: 'n2',
      key: b(`k${i}`),
      raw: Buffer.alloc(size, i),
    });
    const s = openStore(dir);
    const hints = new HintStore(s, 100, 30_000);
    expect(await hints.add([hint(0), hint(1)])).toBe(2);
    expect(hints.bytes).toBe(2 * 10_015);
    // A hint that would pass the bound is refused; a smaller one after it still fits.
    expect(await hints.add([hint(2), hint(3, 10), hint(4, 10_000)])).toBe(1);
    expect(hints.count).toBe(3);
    expect(hints.bytes).toBe(2 * 10_015 + 25);
    await s.close();
    // The byte total is counted from the stored hints, not remembered: exact after a reopen.
    const again = openStore(dir);
    const reopened = new HintStore(again, 100, 30_000);
    expect(reopened.count).toBe(3);
    expect(reopened.bytes).toBe(2 * 10_015 + 25);
    await reopened.remove(reopened.list('n2', 1));
    expect(reopened.bytes).toBe(10_015 + 25);
    // Removing a hint twice (already gone) takes nothing off.
    const rest = reopened.list('n2', 10);
    await reopened.remove(rest);
    await reopened.remove(rest);
    expect(reopened.count).toBe(0);
    expect(reopened.bytes).toBe(0);
    expect(await reopened.add([hint(5, 30_000 - 15)])).toBe(1);
    expect(reopened.bytes).toBe(30_000);
    expect(await reopened.add([hint(6, 0)])).toBe(0);
  });
});
