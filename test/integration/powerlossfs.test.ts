// powerlossfs itself: what survives a simulated power cut is exactly what was made durable
// (fsync/fdatasync, O_DSYNC writes, directory fsync for names), and nothing else.

import {
  closeSync,
  constants,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { PowerlossDisk, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `path` (created or truncated) and fsyncs the file, not its directory. */
function writeSynced(path: string, data: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Cuts the power and brings the disk back. */
async function powerCycle(disk: PowerlossDisk, seed = 1, keep = 0) {
  const report = await disk.cut(seed, keep);
  await disk.unmount();
  await disk.mount();
  return report;
}

describe('powerlossfs', () => {
  it('keeps synced file data and loses unsynced data', async () => {
    const disk = await PowerlossDisk.create(binary());
    writeSynced(disk.path('fsynced'), 'durable');
    writeFileSync(disk.path('datasynced'), '');
    writeFileSync(disk.path('dsync'), '');
    writeFileSync(disk.path('unsynced'), 'old');
    syncDir(disk.mountPoint);
    await disk.sync();

    let fd = openSync(disk.path('fsynced'), 'a');
    writeSync(fd, ' + lost');
    closeSync(fd);
    fd = openSync(disk.path('datasynced'), 'r+');
    writeSync(fd, 'fdatasync');
    fdatasyncSync(fd);
    closeSync(fd);
    // O_DSYNC: every write is durable when it returns, with no fsync call.
    fd = openSync(disk.path('dsync'), constants.O_RDWR | constants.O_DSYNC);
    writeSync(fd, 'o_dsync');
    closeSync(fd);
    writeFileSync(disk.path('unsynced'), 'new, longer and never synced');
    expect(readFileSync(disk.path('unsynced'), 'utf8')).toBe('new, longer and never synced');

    const report = await powerCycle(disk);
    expect(report.pagesReverted).toBeGreaterThan(0);
    expect(readFileSync(disk.path('fsynced'), 'utf8')).toBe('durable');
    expect(readFileSync(disk.path('datasynced'), 'utf8')).toBe('fdatasync');
    expect(readFileSync(disk.path('dsync'), 'utf8')).toBe('o_dsync');
    expect(readFileSync(disk.path('unsynced'), 'utf8')).toBe('old');
  });

  it('an O_DSYNC write makes its own pages durable, not the rest of the file', async () => {
    const disk = await PowerlossDisk.create(binary());
    writeSynced(disk.path('f'), 'a'.repeat(8192));
    syncDir(disk.mountPoint);
    await disk.sync();
    let fd = openSync(disk.path('f'), 'r+');
    writeSync(fd, 'b'.repeat(4096), 4096); // page 1, never synced
    closeSync(fd);
    fd = openSync(disk.path('f'), constants.O_RDWR | constants.O_DSYNC);
    writeSync(fd, 'c', 0); // page 0, synchronous
    closeSync(fd);
    await powerCycle(disk);
    expect(readFileSync(disk.path('f'), 'latin1')).toBe(`c${'a'.repeat(8191)}`);
  });

  it('keeps a name change only once its directory is synced', async () => {
    const disk = await PowerlossDisk.create(binary());
    mkdirSync(disk.path('d'));
    writeSynced(disk.path('d/renamed-away'), 'a');
    writeSynced(disk.path('d/unlinked'), 'b');
    writeSynced(disk.path('d/replaced'), 'old target');
    syncDir(disk.path('d'));
    syncDir(disk.mountPoint);
    await disk.sync();

    // File fsync alone does not make a new name durable (fsync(2)): a directory fsync does.
    writeSynced(disk.path('d/new-file-only'), 'c');
    writeSynced(disk.path('other-dir-synced'), 'd');
    syncDir(disk.mountPoint);
    renameSync(disk.path('d/renamed-away'), disk.path('d/renamed-to'));
    unlinkSync(disk.path('d/unlinked'));
    writeSynced(disk.path('d/source'), 'new target');
    renameSync(disk.path('d/source'), disk.path('d/replaced'));
    mkdirSync(disk.path('d/newdir'));
    expect(readdirSync(disk.path('d')).sort()).toEqual([
      'new-file-only',
      'newdir',
      'renamed-to',
      'replaced',
    ]);

    const report = await powerCycle(disk);
    expect(report.opsUndone).toBe(6);
    expect(readdirSync(disk.path('d')).sort()).toEqual(['renamed-away', 'replaced', 'unlinked']);
    expect(readFileSync(disk.path('d/unlinked'), 'utf8')).toBe('b');
    expect(readFileSync(disk.path('d/replaced'), 'utf8')).toBe('old target');
    expect(readFileSync(disk.path('other-dir-synced'), 'utf8')).toBe('d');

    // The same changes followed by a directory fsync survive.
    renameSync(disk.path('d/renamed-away'), disk.path('d/renamed-to'));
    unlinkSync(disk.path('d/unlinked'));
    syncDir(disk.path('d'));
    await powerCycle(disk);
    expect(readdirSync(disk.path('d')).sort()).toEqual(['renamed-to', 'replaced']);
  });

  it('slow: every sync waits the delay once (fsync, fdatasync, a directory, an O_DSYNC write call), other calls do not', async () => {
    // Durations are bounded below by the delay, which load cannot break; "once" is counted with
    // `syncs`, and "not delayed" by what the disk counted: only a sync waits, and a plain write
    // is none (no upper bound on a duration: a loaded machine writes 300 KB through FUSE in
    // however long it takes).
    const DELAY = 1000;
    const disk = await PowerlossDisk.create(binary());
    writeFileSync(disk.path('f'), '');
    await disk.slow(DELAY);
    const took = (f: () => void) => {
      const started = performance.now();
      f();
      return performance.now() - started;
    };
    let fd = openSync(disk.path('f'), 'r+');
    writeSync(fd, 'x'.repeat(300_000));
    expect(await disk.syncs()).toEqual({});
    expect(took(() => fsyncSync(fd))).toBeGreaterThanOrEqual(DELAY - 10);
    expect(took(() => fdatasyncSync(fd))).toBeGreaterThanOrEqual(DELAY - 10);
    closeSync(fd);
    expect(took(() => syncDir(disk.mountPoint))).toBeGreaterThanOrEqual(DELAY - 10);
    expect(await disk.syncs()).toEqual({ '.': 1, f: 2 });
    // One write call of 300 KB on an O_DSYNC descriptor (several FUSE writes): one sync, waited.
    fd = openSync(disk.path('f'), constants.O_RDWR | constants.O_DSYNC);
    expect(took(() => writeSync(fd, 'y'.repeat(300_000), 0))).toBeGreaterThanOrEqual(DELAY - 10);
    closeSync(fd);
    expect(await disk.syncs()).toEqual({ '.': 1, f: 3 });
    // Fast again: a delay of a minute set and taken back leaves a sync no wait anywhere near it.
    await disk.slow(60_000);
    await disk.slow(0);
    fd = openSync(disk.path('f'), 'r+');
    expect(took(() => fsyncSync(fd))).toBeLessThan(30_000);
    closeSync(fd);
    // What was synced while slow is durable.
    await powerCycle(disk);
    expect(readFileSync(disk.path('f'), 'latin1')).toBe('y'.repeat(300_000));
  });

  it('syncs: counts each sync by path (fsync, fdatasync, a directory, one per O_DSYNC write call), not other writes', async () => {
    const disk = await PowerlossDisk.create(binary());
    mkdirSync(disk.path('d'));
    writeFileSync(disk.path('d/f'), 'x'.repeat(300_000));
    let fd = openSync(disk.path('d/f'), 'r+');
    fsyncSync(fd);
    fdatasyncSync(fd);
    closeSync(fd);
    syncDir(disk.path('d'));
    syncDir(disk.mountPoint);
    // One writev of 1,000 buffers (300 KB: several FUSE writes), then a write: two syncs.
    fd = openSync(disk.path('d/f'), constants.O_RDWR | constants.O_DSYNC);
    writevSync(
      fd,
      Array.from({ length: 1000 }, () => Buffer.alloc(300, 'y')),
      0,
    );
    writeSync(fd, 'z', 0);
    closeSync(fd);
    // Counted under the name the file has when the sync comes.
    renameSync(disk.path('d/f'), disk.path('d/g'));
    writeSynced(disk.path('d/g'), 'w');
    expect(await disk.syncs()).toEqual({ '.': 1, d: 1, 'd/f': 4, 'd/g': 1 });
  });

  it('hang: every sync blocks until resume, reads and unsynced writes go on', async () => {
    const disk = await PowerlossDisk.create(binary());
    writeSynced(disk.path('f'), 'x');
    mkdirSync(disk.path('d'));
    syncDir(disk.mountPoint);
    await disk.hang();
    // Asynchronous calls only, each bounded: a call that blocked would fail the test rather than
    // stop its process. (The kernel holds a file's or a directory's lock during its FUSE fsync, so
    // the directory synced here is not the one written to.)
    const file = await open(disk.path('f'), 'r+');
    const dir = await open(disk.path('d'), 'r');
    const settled = { file: false, dir: false };
    const syncs = [
      file.datasync().then(() => {
        settled.file = true;
      }),
      dir.sync().then(() => {
        settled.dir = true;
      }),
    ];
    const bounded = <T>(p: Promise<T>) =>
      Promise.race([
        p,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('blocked behind a hung sync')), 10_000).unref(),
        ),
      ]);
    await bounded(writeFile(disk.path('g'), 'unsynced'));
    expect(await bounded(readFile(disk.path('f'), 'latin1'))).toBe('x');
    expect((await bounded(readdir(disk.mountPoint))).sort()).toEqual(['d', 'f', 'g']);
    expect(settled).toEqual({ file: false, dir: false });
    // Counted as held while they wait (what a test waits for before it acts on a hung disk).
    await until(async () => (await disk.stats()).held === 2, 10_000, 'the two syncs held');
    await disk.resume();
    await bounded(Promise.all(syncs));
    expect((await disk.stats()).held).toBe(0);
    await Promise.all([file.close(), dir.close()]);
    // A later sync goes through at once.
    writeSynced(disk.path('h'), 'y');
  });

  it('errors: every sync (dsync: every O_DSYNC write call) fails with EIO and makes nothing durable, until errors are off', async () => {
    const disk = await PowerlossDisk.create(binary());
    writeSynced(disk.path('f'), 'synced');
    syncDir(disk.mountPoint);
    await disk.errors(true);
    const eio = (fn: () => void) => expect(fn).toThrow(/EIO/);
    eio(() => writeSynced(disk.path('f'), 'not synced'));
    const dsync = openSync(
      disk.path('d'),
      constants.O_CREAT | constants.O_WRONLY | constants.O_DSYNC,
    );
    try {
      eio(() => writeSync(dsync, 'not synced either'));
    } finally {
      closeSync(dsync);
    }
    eio(() => syncDir(disk.mountPoint));
    expect(readFileSync(disk.path('f'), 'latin1')).toBe('not synced'); // reads go on
    // dsync: only the write calls on O_DSYNC descriptors fail; fsync works.
    await disk.errors('dsync');
    const d2 = openSync(disk.path('d'), constants.O_WRONLY | constants.O_DSYNC);
    try {
      eio(() => writeSync(d2, 'fails'));
    } finally {
      closeSync(d2);
    }
    writeSynced(disk.path('h'), 'fsync works');
    await disk.errors(false);
    writeSynced(disk.path('g'), 'synced after');
    syncDir(disk.mountPoint);
    await powerCycle(disk);
    expect(readFileSync(disk.path('f'), 'latin1')).toBe('synced');
    expect(readFileSync(disk.path('g'), 'latin1')).toBe('synced after');
  });

  it('keeps the page cache of a file across a stat after a write and a new open', async () => {
    // Dropped, a page is read back from the backing file, and one the kernel has copied a write
    // into but not sent yet comes back old: a process reading through mmap (LMDB) then sees a
    // page as it was before its own write. The cache must stay, as on a disk filesystem.
    const disk = await PowerlossDisk.create(binary());
    const path = disk.path('cached');
    const page = (fill: number) => Buffer.alloc(4096, fill);
    const fd = openSync(path, 'w+');
    try {
      writeSync(fd, page(1), 0, 4096, 0);
      writeSync(fd, page(2), 0, 4096, 4096);
      const buf = Buffer.alloc(8192);
      readSync(fd, buf, 0, 8192, 0);
      const before = (await disk.stats()).reads;
      for (let round = 0; round < 3; round++) {
        writeSync(fd, page(3 + round), 0, 4096, 4096); // a new mtime
        statSync(path); // the kernel asks for the attributes again
        const other = openSync(path, 'r');
        try {
          expect(readSync(other, buf, 0, 8192, 0)).toBe(8192);
        } finally {
          closeSync(other);
        }
        expect(buf.subarray(4096).equals(page(3 + round))).toBe(true);
      }
      expect((await disk.stats()).reads - before).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  it('fails every operation after the cut', async () => {
    const disk = await PowerlossDisk.create(binary());
    writeSynced(disk.path('f'), 'x');
    await disk.cut(1, 0);
    expect(() => writeFileSync(disk.path('f'), 'y')).toThrow(/EIO/);
    expect(() => readdirSync(disk.mountPoint)).toThrow(/EIO/);
  });

  it('with keep > 0, a seeded random subset of unsynced page writes survives', async () => {
    const disk = await PowerlossDisk.create(binary());
    const pages = 64;
    writeSynced(disk.path('f'), 'a'.repeat(4096 * pages));
    syncDir(disk.mountPoint);
    await disk.sync();
    writeFileSync(disk.path('f'), 'b'.repeat(4096 * pages));
    const report = await powerCycle(disk, 7, 0.5);
    const after = readFileSync(disk.path('f'), 'latin1');
    expect(after.length).toBe(4096 * pages);
    const kept = Array.from({ length: pages }, (_, p) => after[p * 4096]).filter((c) => c === 'b');
    expect(kept.length).toBe(report.pagesKept);
    expect(report.pagesKept).toBeGreaterThan(0);
    expect(report.pagesReverted).toBeGreaterThan(0);
    expect(existsSync(disk.path('f'))).toBe(true);
  });
});
