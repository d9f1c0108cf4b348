// A cut of a damaged write-ahead log (--wal-truncate-corrupt) that the power interrupts: whatever
// part of it reached the disk, the next start replays what the whole cut would have kept, never
// the records of a later segment across a hole the cut left in the log. And a recovery whose disk
// hangs holds no thread a stop signal needs.

import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Recovered, WAL_PUT, WriteAheadLog } from '../../src/storage/wal.ts';
import { defer } from '../helpers/defer.ts';
import { NODE, tempDir } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

/** Groups of 4 records of 115 bytes each (a 24-byte header): 484 bytes. */
const GROUP = 24 + 4 * 115;
const SEGMENT_BYTES = 4096;

const keys = (r: Recovered) => r.entries.map((e) => e.key.toString());

/**
 * A log of three segments (groups of 4 records, each synced; nothing retired), written in `dir`
 * (a local disk) and copied to `copyTo` as a crash leaves it, where the first segment's second
 * group is then damaged. Returns the keys a cut of the damage keeps.
 */
async function damagedLog(dir: string, copyTo: string): Promise<string[]> {
  const flushed = Promise.withResolvers<void>();
  const log = WriteAheadLog.open(
    { dir, segmentBytes: SEGMENT_BYTES, checkpoint: () => flushed.promise },
    WriteAheadLog.recover(dir),
  );
  for (let g = 0; g < 22; g++) {
    for (let i = 0; i < 4; i++) log.append(WAL_PUT, Buffer.from(`g${g}-${i}`), Buffer.alloc(100));
    await log.sync();
  }
  // Copied as a crash leaves it (every segment there), then closed.
  mkdirSync(copyTo);
  for (const name of readdirSync(dir)) copyFileSync(join(dir, name), join(copyTo, name));
  flushed.resolve();
  await log.close();
  dir = copyTo;
  const segments = readdirSync(dir).filter((n) => /^\d{16}\.wal$/.test(n));
  expect(segments).toHaveLength(3);
  const first = join(dir, segments[0]!);
  const bytes = readFileSync(first);
  bytes[GROUP + 24 + 20] = bytes[GROUP + 24 + 20]! ^ 0xff; // a record of the second group
  writeFileSync(first, bytes);
  return ['g0-0', 'g0-1', 'g0-2', 'g0-3'];
}

describe('a cut of a damaged write-ahead log interrupted by a power cut', {
  timeout: 120_000,
}, () => {
  // Before: the cut truncated the damaged segment first (synced), then deleted the later ones and
  // synced the directory once. A power cut during that sync that kept the first deletion and not
  // the second (seed 2: one of the two name changes survives) left the damaged segment cut and
  // the third segment there: the next start replayed the third segment's 16 records after the
  // hole (20 records where the cut keeps 4), and reported no damage.
  it.each([1, 2, 3])(
    'power cut during sync %i of the start: the next start replays what the whole cut keeps',
    async (nth) => {
      const { disk, dataDir } = await diskWithDataDir(binary());
      const wal = join(dataDir, 'wal');
      const kept = await damagedLog(tempDir(), wal);
      await disk.sync();
      // Every sync waits: the power goes while the nth is on its way (the cut's syncs, then those
      // of the segments the start keeps).
      const asked = async () => Object.values(await disk.syncs()).reduce((a, n) => a + n, 0);
      const before = await asked();
      await disk.slow(3000);
      const cutting = WriteAheadLog.recoverAsync(wal, new AbortController().signal, {
        truncateCorrupt: true,
      }).then(
        () => null,
        (err: unknown) => err,
      );
      await until(async () => (await asked()) >= before + nth, 30_000, `sync ${nth}`);
      const report = await disk.cut(2, 0.5);
      expect(report.errors).toEqual([]);
      // The power is gone: the cut fails where it was.
      expect(await cutting).toMatchObject({ code: expect.any(String) });
      await disk.unmount();
      await disk.mount();
      const again = await WriteAheadLog.recoverAsync(wal, new AbortController().signal, {
        truncateCorrupt: true,
      });
      expect(keys(again)).toEqual(kept);
      // And the start after that finds a log that needs no cut.
      const third = await WriteAheadLog.recoverAsync(wal, new AbortController().signal);
      expect(keys(third)).toEqual(kept);
    },
  );
});

const WAL = join(import.meta.dirname, '../../src/storage/wal.ts');
const EXIT = join(import.meta.dirname, '../../src/lifecycle/exit.ts');
const STALL = join(import.meta.dirname, '../../src/storage/stall.ts');

describe('the recovery of a log whose disk hangs', { timeout: 120_000 }, () => {
  // Before: the recovery made and listed the log's directory, sized its segments and deleted a
  // second spare synchronously, on the event loop's thread: with the directory's name lookup held
  // by the disk, the SIGTERM handler had not run 10 s after the signal.
  it('every disk operation is in the thread pool: a stop signal ends it while a lookup hangs', async () => {
    const { disk, dataDir } = await diskWithDataDir(binary());
    const wal = join(dataDir, 'wal');
    await damagedLog(tempDir(), wal);
    await disk.sync();
    // A new mount: no name is in the kernel's cache.
    await disk.unmount();
    await disk.mount();
    await disk.hang('lookups');
    defer(() => disk.resume());
    const script = `Promise.all([import(${JSON.stringify(WAL)}), import(${JSON.stringify(EXIT)}), import(${JSON.stringify(STALL)})])
      .then(([{ WriteAheadLog }, { exitProcess }, { diskWorkOut }]) => {
        const stop = new AbortController();
        process.on('SIGTERM', () => stop.abort(new Error('SIGTERM')));
        process.stdout.write('recovering\\n');
        WriteAheadLog.recoverAsync(${JSON.stringify(wal)}, stop.signal, { truncateCorrupt: true }).then(
          () => exitProcess(0, diskWorkOut()),
          (err) => {
            process.stdout.write(err.message + '\\n');
            exitProcess(3, diskWorkOut());
          },
        );
      });`;
    const child = spawn(NODE, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    defer(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise((res) => child.once('exit', (code, signal) => res(code ?? signal)));
    // Said in the turn that starts the recovery: the old code was then in its mkdirSync already.
    await until(() => out.includes('recovering'), 20_000, 'the recovery');
    child.kill('SIGTERM');
    // The event loop takes the signal and the recovery ends; the process exits once the disk lets
    // go of the thread it holds (no signal ends a lookup powerlossfs holds).
    await until(() => out.includes('SIGTERM\n'), 10_000, 'the stop signal taken');
    await disk.resume();
    expect(await exited).toBe(3);
    expect(out).toBe('recovering\nSIGTERM\n');
  });
});
