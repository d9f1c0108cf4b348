// A cut of a damaged write-ahead log (--wal-truncate-corrupt) that the power interrupts: whatever
// part of it reached the disk, the next start replays what the whole cut would have kept, never
// the records of a later segment across a hole the cut left in the log.

import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Recovered, WAL_PUT, WriteAheadLog } from '../../src/storage/wal.ts';
import { tempDir } from '../helpers/node-process.ts';
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
