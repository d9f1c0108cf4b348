// Write-ahead log recovery: reads the segments of a log directory and decides what to replay
// (scanLog), cutting the log at damage only when asked to.

import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KvError } from '../errors/index.ts';
import { describeIoError } from './io-errors.ts';
import { countDiskOp } from './stall.ts';
import { untilAborted } from './steps.ts';
import { type LogScan, scanLog, type WalEntry } from './wal-format.ts';

/** What `WriteAheadLog.recover` found: the entries to replay, oldest first. */
export interface Recovered {
  readonly entries: WalEntry[];
  /** Segments the entries came from: to be deleted once the replayed writes are flushed. */
  readonly segments: readonly number[];
  /** The preallocated spare segment's number, if there is one. */
  readonly spare: number | null;
  /** The last segment and the end of its valid groups: the new segment's first group names it. */
  readonly last: { readonly seq: number; readonly end: number } | null;
  /** A torn last group that was dropped (never acknowledged), for a warning. */
  readonly torn: LogScan['torn'];
  /** Damage that `truncateCorrupt` cut the log at (records from there on are gone). */
  readonly truncated: LogScan['corrupt'];
}

const SEGMENT = /^(\d{16})\.wal$/;
const SPARE = /^spare-(\d{16})\.wal$/;

export const segmentName = (seq: number) => `${String(seq).padStart(16, '0')}.wal`;
// A spare keeps the number of the segment it was, so that the segment it becomes gets a higher
// one: the CRC seed of a file's new records never equals that of the older records left in it.
export const spareName = (seq: number) => `spare-${String(seq).padStart(16, '0')}.wal`;

/** Segment and spare numbers in `dir`, ascending. */
export function listLog(dir: string): { segments: number[]; spares: number[] } {
  return logNumbers(readdirSync(dir));
}

/** Segment and spare numbers among a log directory's `names`, ascending. */
function logNumbers(names: readonly string[]): { segments: number[]; spares: number[] } {
  const numbers = (re: RegExp) =>
    names
      .map((name) => re.exec(name)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  return { segments: numbers(SEGMENT), spares: numbers(SPARE) };
}

/** Reads and scans the log in `dir` without changing anything (replay and `verify`). */
export function scanDir(dir: string): LogScan & { segments: number[]; spares: number[] } {
  const { segments, spares } = listLog(dir);
  const bytes = segments.map((seq) => ({ seq, buf: readFileSync(join(dir, segmentName(seq))) }));
  return { ...scanLog(bytes), segments, spares };
}

/**
 * Reads every segment in `dir` and decides what to replay (see scanLog). Damage before the
 * last group throws KV_ERR_CORRUPT naming the segment and offset, unless `truncateCorrupt`:
 * then the damaged segment is cut there, the later ones are deleted, and `truncated` says what
 * was dropped. Synchronous: it runs once, before the node serves anything.
 */
export function recoverLog(dir: string, opts: { truncateCorrupt?: boolean } = {}): Recovered {
  mkdirSync(dir, { recursive: true });
  const scan = scanDir(dir);
  for (const extra of scan.spares.slice(0, -1))
    rmSync(join(dir, spareName(extra)), { force: true });
  const bad = damageToCut(dir, scan, opts);
  if (bad !== null) cutLog(dir, bad, scan.segments);
  const found = recovered(scan, bad);
  for (const seq of found.segments) {
    const path = join(dir, segmentName(seq));
    try {
      syncDirSync(path);
    } catch (err) {
      throw segmentSyncFailed(path, err);
    }
  }
  return found;
}

/**
 * recoverLog whose disk operations all run in the thread pool (the directory made and listed, the
 * segments' sizes, one read per segment, a second spare's deletion, a cut of damage with
 * --wal-truncate-corrupt, the syncs), so that a signal handler runs meanwhile and a disk that
 * hangs in any of them holds no thread the stop needs: rejects with `signal`'s reason once it
 * aborts, before the log is changed in any way but those two. The scan of what was read stays
 * one synchronous step. `reading` is told the segments and their bytes before they are read.
 */
export async function recoverLogAsync(
  dir: string,
  signal: AbortSignal,
  opts: {
    truncateCorrupt?: boolean;
    reading?: (segments: number, bytes: number) => void;
    /** Told before damage is cut (--wal-truncate-corrupt): the segment and the offset. */
    cutting?: (segment: string, offset: number) => void;
  } = {},
): Promise<Recovered> {
  // Each in the pool, counted as disk work out (countDiskOp), ended by the signal (untilAborted).
  const io = <T>(work: Promise<T>) => untilAborted(countDiskOp(work), signal);
  await io(mkdir(dir, { recursive: true }));
  const { segments, spares } = logNumbers(await io(readdir(dir)));
  let size = 0;
  for (const seq of segments) size += (await io(stat(join(dir, segmentName(seq))))).size;
  opts.reading?.(segments.length, size);
  const bytes: { seq: number; buf: Buffer }[] = [];
  for (const seq of segments) {
    // Ended by the signal at once, even while a read of a disk that does not answer is under way
    // (before 2026-12-07 the stop waited for it, for ever on a hung disk, and the start's backstop
    // exited 1); given the signal too, so that it reads no further once that read returns. An
    // aborted read rejects with an AbortError: the signal's own reason is what callers expect.
    const buf = await io(readFile(join(dir, segmentName(seq)), { signal })).catch(
      (err: unknown) => {
        signal.throwIfAborted();
        throw err;
      },
    );
    bytes.push({ seq, buf });
  }
  const scan = { ...scanLog(bytes), segments, spares };
  for (const extra of spares.slice(0, -1)) {
    await io(rm(join(dir, spareName(extra)), { force: true }));
  }
  const bad = damageToCut(dir, scan, opts);
  if (bad !== null) {
    opts.cutting?.(join(dir, segmentName(bad.segment)), bad.offset);
    await cutLogAsync(dir, bad, segments, signal);
  }
  const found = recovered(scan, bad);
  // Replay read the segments through the page cache, which may hold writes a killed process made
  // but never synced (a group whose O_DSYNC write had not returned). The next segment's seal
  // names the end replay found, and that seal is synced: the bytes before it must be on disk
  // first, or a power cut leaves a hole before the log's last group (and the start refuses).
  // In the thread pool, so that a stop signal ends a start whose disk hangs here.
  for (const seq of found.segments) {
    const path = join(dir, segmentName(seq));
    const synced = countDiskOp(syncDirAsync(path)).catch((err: unknown) => {
      throw segmentSyncFailed(path, err);
    });
    await untilAborted(synced, signal);
  }
  return found;
}

/**
 * A replayed segment that cannot be synced fails the start (KV_ERR_STORAGE: what it names as the
 * log's end might not survive a power cut): which segment, and why (`I/O error (EIO)`).
 */
function segmentSyncFailed(path: string, err: unknown): KvError {
  const why = describeIoError(err, dirname(path));
  return new KvError(
    'KV_ERR_STORAGE',
    `storage: cannot sync the write-ahead log segment ${path}: ${why}`,
    {
      cause: err,
    },
  );
}

/** syncDirSync in the thread pool. */
export async function syncDirAsync(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * The damage to cut the log at (null: none), from a scan of the log: throws KV_ERR_CORRUPT for
 * damage before the last group unless `truncateCorrupt`. Its callers first delete every spare
 * but the last (a crash between two recycles leaves two; one is enough).
 */
function damageToCut(
  dir: string,
  scan: LogScan,
  opts: { readonly truncateCorrupt?: boolean },
): LogScan['corrupt'] {
  const bad = scan.corrupt;
  if (bad !== null && !opts.truncateCorrupt) {
    const where = `${join(dir, segmentName(bad.segment))} at offset ${bad.offset}`;
    throw new KvError(
      'KV_ERR_CORRUPT',
      `storage: write-ahead log damaged in ${where} (${bad.reason}), before its last group: ` +
        `${bad.droppedRecords} records would be lost. Restore the data directory, or ` +
        'start with --wal-truncate-corrupt true to cut the log there and continue',
    );
  }
  return bad;
}

type Damage = NonNullable<LogScan['corrupt']>;

/**
 * Cuts the damaged segment at its damaged group and deletes the later ones, in an order that a
 * crash or a power cut anywhere in it leaves a log the next start cuts the same way (see
 * cutOrder): the later segments from the last down to the second one after the damaged one,
 * the directory synced after each; the damaged segment truncated and synced; then the segment
 * right after it, whose first group names where the damaged one ended, deleted and synced last.
 */
function cutLog(dir: string, bad: Damage, segments: readonly number[]): void {
  for (const step of cutOrder(bad, segments)) {
    if (step === 'truncate') {
      const fd = openSync(join(dir, segmentName(bad.segment)), 'r+');
      try {
        ftruncateSync(fd, bad.groupStart);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } else {
      rmSync(join(dir, segmentName(step)), { force: true });
      syncDirSync(dir);
    }
  }
}

/**
 * The steps of a cut: segment numbers to delete (each followed by a sync of the directory) and
 * the truncation of the damaged one (with its sync). Every state a crash leaves between two steps
 * is a chain of whole segments from the damaged one on (none deleted below one that is kept),
 * whose seals still show the damage: the segment after the damaged one names its old end, past
 * the cut (or the log's groups after the damage are there, untouched), so the next start finds
 * the same damage and cuts again. Deleting the later segments first and in any order, or
 * truncating the damaged segment before they were gone, let a crash leave a hole: a later
 * segment whose seal names one that is gone is replayed as the log's continuation, with the
 * records between lost and no damage reported.
 */
function cutOrder(bad: Damage, segments: readonly number[]): (number | 'truncate')[] {
  const later = segments.filter((n) => n > bad.segment);
  const [next, ...rest] = later;
  return [...rest.reverse(), 'truncate', ...(next === undefined ? [] : [next])];
}

/**
 * cutLog in the thread pool (each call counted as disk work out, countDiskOp), so that a stop
 * signal ends a start whose disk hangs in the cut's syncs: rejects with `signal`'s reason then.
 * A cut stopped half-way is finished by the next start (the damage is still there to find: see
 * cutOrder).
 */
async function cutLogAsync(
  dir: string,
  bad: Damage,
  segments: readonly number[],
  signal: AbortSignal,
): Promise<void> {
  const cut = async () => {
    for (const step of cutOrder(bad, segments)) {
      if (step === 'truncate') {
        const file = await open(join(dir, segmentName(bad.segment)), 'r+');
        try {
          await file.truncate(bad.groupStart);
          await file.sync();
        } finally {
          await file.close();
        }
      } else {
        await rm(join(dir, segmentName(step)), { force: true });
        await syncDirAsync(dir);
      }
    }
  };
  await untilAborted(countDiskOp(cut()), signal);
}

/** What to replay from a scan of the log, once any damage was cut (`bad`). */
function recovered(
  scan: LogScan & { segments: number[]; spares: number[] },
  bad: LogScan['corrupt'],
): Recovered {
  const segments = bad === null ? scan.segments : scan.segments.filter((n) => n <= bad.segment);
  // Copies: the file buffers are dropped once the entries are replayed.
  const entries = scan.entries.map((e) => ({
    op: e.op,
    key: Buffer.from(e.key),
    payload: Buffer.from(e.payload),
  }));
  const lastSeq = segments.at(-1);
  return {
    entries,
    segments,
    spare: scan.spares.at(-1) ?? null,
    last: lastSeq === undefined ? null : { seq: lastSeq, end: scan.ends.get(lastSeq) ?? 0 },
    torn: bad === null ? scan.torn : null,
    truncated: bad,
  };
}

/**
 * fsync of a directory (a created or renamed entry in it is on disk), or of a file (its data and
 * size are): opened read-only, which fsync allows.
 */
export function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
