import {
  existsSync,
  readdirSync,
  readFileSync,
  statfsSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { type Recovered, WAL_DISCARD, WAL_PUT, WriteAheadLog } from '../../src/storage/wal.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
const logs: WriteAheadLog[] = [];

afterEach(async () => {
  await Promise.all(logs.splice(0).map((l) => l.close()));
  await cleanup();
  unmountAll();
});

/** A checkpoint the test releases by hand: segments may go only after it resolves. */
function gate() {
  let release = () => {};
  let promise = new Promise<void>((r) => {
    release = r;
  });
  return {
    checkpoint: () => promise,
    release() {
      release();
      promise = Promise.resolve();
    },
  };
}

function openLog(dir: string, segmentBytes = 1 << 20, checkpoint = () => Promise.resolve()) {
  const recovered = WriteAheadLog.recover(dir);
  const log = WriteAheadLog.open({ dir, segmentBytes, checkpoint }, recovered);
  logs.push(log);
  return { log, recovered };
}

/** openLog that also collects each group commit's record count. */
function openCounting(dir: string, segmentBytes = 1 << 20) {
  const groups: number[] = [];
  const recovered = WriteAheadLog.recover(dir);
  const checkpoint = () => Promise.resolve();
  const onSync = (_s: number, records: number) => groups.push(records);
  const log = WriteAheadLog.open({ dir, segmentBytes, checkpoint, onSync }, recovered);
  logs.push(log);
  return { log, groups };
}

const text = (r: Recovered) => r.entries.map((e) => `${e.op}:${e.key}=${e.payload}`);
const segmentFiles = (dir: string) => readdirSync(dir).filter((n) => /^\d{16}\.wal$/.test(n));

/** A crash: the log is dropped without close(), its files stay as they are. */
function crash(log: WriteAheadLog) {
  logs.splice(logs.indexOf(log), 1);
}

describe('WriteAheadLog', () => {
  it('replays a group of more buffers than one writev takes, small and large records mixed', async () => {
    // One group: small records (copied, joined into runs), 1,500 large payloads (written from the
    // caller's buffers) between them, more than IOV_MAX either way: written in one call.
    const dir = tempDir();
    const { log } = openLog(dir, 64 << 20);
    const expected: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const payload = i % 2 === 0 ? b(`small${i}`) : Buffer.alloc(16 * 1024, i % 251);
      log.append(WAL_PUT, b(`k${i}`), payload);
      expected.push(`k${i}:${payload.length}:${payload[payload.length - 1]}`);
    }
    await log.sync();
    crash(log);
    const { recovered } = openLog(dir, 64 << 20);
    expect(
      recovered.entries.map(
        (e) => `${e.key}:${e.payload.length}:${e.payload[e.payload.length - 1]}`,
      ),
    ).toEqual(expected);
  });

  it('writes records appended while groups are on their way to disk whole, in later groups', async () => {
    // Each group's records are encoded into a buffer that is reused for a later group once the
    // write returns: appending while writes are in flight must never touch a group being written.
    const dir = tempDir();
    const { log, groups } = openCounting(dir, 64 << 20);
    const expected: string[] = [];
    const waits: Promise<void>[] = [];
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 100; i++) {
        // Distinct bytes per record; one payload in 25 is large (written from this buffer).
        const size = i % 25 === 0 ? 20_000 + round : 30 + (i % 70);
        const payload = Buffer.alloc(size, (round * 31 + i) % 251);
        payload.write(`${round}.${i}`);
        log.append(i % 10 === 0 ? WAL_DISCARD : WAL_PUT, b(`key-${round}-${i}`), payload);
        expected.push(`${i % 10 === 0 ? 2 : 1}:key-${round}-${i}:${payload.toString('hex')}`);
      }
      waits.push(log.sync());
      await new Promise<void>((r) => setImmediate(r)); // a group may be on its way meanwhile
    }
    await Promise.all(waits);
    expect(groups.length).toBeGreaterThan(1);
    expect(groups.reduce((a, n) => a + n, 0)).toBe(4000);
    crash(log);
    const entries = openLog(dir, 64 << 20).recovered.entries;
    expect(entries.map((e) => `${e.op}:${e.key}:${e.payload.toString('hex')}`)).toEqual(expected);
  });

  it('replays every synced record in order after a crash', async () => {
    const dir = tempDir();
    const { log } = openLog(dir);
    log.append(WAL_PUT, b('a'), b('1'));
    log.append(WAL_DISCARD, b('b'), b('2'));
    await log.sync();
    log.append(WAL_PUT, b('c'), b(''));
    // A large payload goes out from the caller's buffer, not a copy.
    const big = Buffer.alloc(100_000, 0x5a);
    log.append(WAL_PUT, b('d'), big);
    log.append(WAL_PUT, b('e'), b('5'));
    await log.sync();
    crash(log);
    const { recovered } = openLog(dir);
    expect(recovered.entries.map((e) => `${e.op}:${e.key}`)).toEqual([
      '1:a',
      '2:b',
      '1:c',
      '1:d',
      '1:e',
    ]);
    expect(text(recovered).filter((t) => !t.startsWith('1:d='))).toEqual([
      '1:a=1',
      '2:b=2',
      '1:c=',
      '1:e=5',
    ]);
    expect(recovered.entries[3]?.payload.equals(big)).toBe(true);
  });

  it('makes every record appended before sync() durable, in groups that start at the end of the turn', async () => {
    const dir = tempDir();
    const { log, groups } = openCounting(dir);
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      log.append(WAL_PUT, b(`k${i}`), b(`v${i}`));
      waits.push(log.sync());
    }
    await Promise.all(waits);
    // A group starts at the end of the turn: every record appended in the turn of the first
    // sync shares it (starting at the first sync wrote 1 record alone, then the other 199).
    expect(groups).toEqual([200]);
    // Appended while a group is on its way: they share the next one.
    const more: Promise<void>[] = [];
    const first = log.sync();
    log.append(WAL_PUT, b('k200'), b('v200'));
    more.push(log.sync());
    await new Promise<void>((r) => setImmediate(r)); // the group with k200 is being written
    for (let i = 201; i < 300; i++) {
      log.append(WAL_PUT, b(`k${i}`), b(`v${i}`));
      more.push(log.sync());
    }
    await Promise.all([first, ...more]);
    expect(groups).toEqual([200, 1, 99]);
    crash(log);
    expect(openLog(dir).recovered.entries).toHaveLength(300);
  });

  it('drops a torn last group with a count, and stops at damage before it unless told to cut', async () => {
    const dir = tempDir();
    const { log } = openLog(dir);
    for (let i = 0; i < 4; i++) log.append(WAL_PUT, b(`a${i}`), Buffer.alloc(100, i));
    await log.sync();
    for (let i = 0; i < 6; i++) log.append(WAL_PUT, b(`b${i}`), Buffer.alloc(100, i));
    await log.sync();
    crash(log);
    const file = join(dir, segmentFiles(dir)[0]!);
    const bytes = readFileSync(file);
    // Groups: a 24-byte header, then records of 8 + 5 + 2 + 100 bytes.
    const group1 = 24 + 4 * 115;
    const end = group1 + 24 + 6 * 115;
    // The second (last) group cut in half: a torn tail, its 6 records dropped.
    truncateSync(file, group1 + 300);
    const torn = WriteAheadLog.recover(dir);
    expect(torn.entries.map((e) => e.key.toString())).toEqual(['a0', 'a1', 'a2', 'a3']);
    expect(torn.torn).toMatchObject({ offset: group1, records: 6 });
    // A byte of the first group flipped: acknowledged records are missing, start-up stops.
    bytes[24 + 115 + 20] = bytes[24 + 115 + 20]! ^ 0xff;
    writeFileSync(file, bytes.subarray(0, end));
    expect(() => WriteAheadLog.recover(dir)).toThrow(
      expect.objectContaining({
        code: 'KV_ERR_CORRUPT',
        message: expect.stringMatching(/0000000000000001\.wal at offset 139 .*10 records/),
      }),
    );
    const cut = WriteAheadLog.recover(dir, { truncateCorrupt: true });
    expect(cut.entries).toEqual([]);
    expect(cut.truncated).toMatchObject({ segment: 1, offset: 139, droppedRecords: 10 });
    // Cut on disk: the next start finds a clean (empty) log.
    expect(WriteAheadLog.recover(dir)).toMatchObject({ entries: [], truncated: null, torn: null });
  });

  it('keeps a full segment until the store has flushed past it, then recycles it', async () => {
    const dir = tempDir();
    const g = gate();
    onTestFinished(() => g.release());
    const { log } = openLog(dir, 4096, g.checkpoint);
    for (let i = 0; i < 100; i++) {
      log.append(WAL_PUT, b(`key-${i}`), Buffer.alloc(100, 7));
      await log.sync();
    }
    // Groups of one record: 24 + 118 bytes (key-0..9) or 24 + 119; a segment is left once it
    // reaches 4 KiB: 29 groups in each of three retired segments, 13 in the current one.
    expect(log.retiredSegments).toBe(3);
    expect(segmentFiles(dir)).toHaveLength(4);
    g.release();
    await log.idle();
    expect(log.retiredSegments).toBe(0);
    expect(segmentFiles(dir)).toHaveLength(1);
    // One retired segment became the spare; the next rotation reuses it.
    expect(readdirSync(dir).filter((n) => n.startsWith('spare-'))).toHaveLength(1);
    crash(log);
    const { recovered } = openLog(dir, 4096);
    // Only the records of the segment being written are replayed.
    expect(recovered.entries.map((e) => e.key.toString())).toEqual(
      Array.from({ length: 13 }, (_, i) => `key-${87 + i}`),
    );
  });

  it('never replays the old records of a recycled segment', async () => {
    const dir = tempDir();
    const { log } = openLog(dir, 2048);
    // Fill segments with records of one shape so that old record boundaries line up.
    for (let i = 0; i < 60; i++) {
      log.append(WAL_PUT, b(`old-${String(i).padStart(3, '0')}`), Buffer.alloc(100, 1));
      await log.sync();
    }
    await log.idle();
    await log.close();
    logs.splice(logs.indexOf(log), 1);
    // A clean close drops the segments but keeps the spare, full of old records.
    expect(segmentFiles(dir)).toHaveLength(0);
    const spare = readdirSync(dir).find((n) => n.startsWith('spare-'));
    expect(spare).toBeDefined();
    expect(readFileSync(join(dir, spare!)).includes(b('old-0'))).toBe(true);
    // The next run writes one record over the recycled file's start, then crashes.
    const { log: next, recovered } = openLog(dir, 2048);
    expect(recovered.entries).toHaveLength(0);
    next.append(WAL_PUT, b('new-000'), Buffer.alloc(100, 2));
    await next.sync();
    crash(next);
    expect(text(openLog(dir, 2048).recovered).map((t) => t.slice(0, 9))).toEqual(['1:new-000']);
  });

  it('after a failed write (a full disk) the next sync starts a new segment, and replay skips the failed group', async () => {
    const fs = mountTmpfs(1 << 20);
    const dir = join(fs, 'wal');
    // Retired segments wait for the checkpoint, so they are not recycled into spares: the log
    // has to create new files, on a disk that is full.
    const g = gate();
    onTestFinished(() => g.release());
    const { log } = openLog(dir, 16 * 1024, g.checkpoint);
    try {
      await log.idle(); // the spare is ready
      const free = statfsSync(fs);
      const filler = join(fs, 'filler');
      writeFileSync(filler, Buffer.alloc(free.bavail * free.bsize - 8192));
      const acked: string[] = [];
      let failure: unknown = null;
      for (let i = 0; i < 200 && failure === null; i++) {
        log.append(WAL_PUT, b(`k${i}`), Buffer.alloc(1000, i));
        await log.sync().then(
          () => acked.push(`k${i}`),
          (err: unknown) => {
            failure = err;
          },
        );
      }
      expect(failure).toMatchObject({
        code: 'KV_ERR_STORAGE',
        message: expect.stringMatching(/disk full/),
      });
      expect(log.broken?.message).toMatch(/disk full/);
      expect(acked.length).toBeGreaterThan(20); // two preallocated segments' worth, at least
      // Still full: the repair (a new segment) fails again, nothing is written.
      await expect(log.sync()).rejects.toMatchObject({ code: 'KV_ERR_STORAGE' });
      unlinkSync(filler);
      await log.sync();
      expect(log.broken).toBeNull();
      for (let i = 0; i < 5; i++) log.append(WAL_PUT, b(`after${i}`), Buffer.alloc(1000, 9));
      await log.sync();
      crash(log);
      const recovered = WriteAheadLog.recover(dir);
      expect(recovered).toMatchObject({ torn: null, truncated: null });
      const keys = recovered.entries.map((e) => e.key.toString());
      expect(keys).toEqual([...acked, ...Array.from({ length: 5 }, (_, i) => `after${i}`)]);
    } finally {
      g.release();
      // The crashed log's files are still open in this process: closed, the tmpfs unmounts.
      await log.close();
    }
  });

  it('deletes every segment on a clean close', async () => {
    const dir = tempDir();
    const { log } = openLog(dir);
    log.append(WAL_PUT, b('a'), b('1'));
    await log.sync();
    await log.close();
    logs.splice(0);
    expect(segmentFiles(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(true);
    expect(openLog(dir).recovered.entries).toEqual([]);
  });

  it('keeps one spare of the two a crash between two recycles left, reading the log in the thread pool or not', async () => {
    for (const recover of [
      (dir: string) => Promise.resolve(WriteAheadLog.recover(dir)),
      (dir: string) => WriteAheadLog.recoverAsync(dir, new AbortController().signal),
    ]) {
      const dir = tempDir();
      writeFileSync(join(dir, 'spare-0000000000000003.wal'), Buffer.alloc(4096));
      writeFileSync(join(dir, 'spare-0000000000000005.wal'), Buffer.alloc(4096));
      expect((await recover(dir)).spare).toBe(5);
      expect(readdirSync(dir)).toEqual(['spare-0000000000000005.wal']);
    }
  });
});
