// Write-ahead log: what makes a data write durable. Records are appended in memory, then written
// with O_DSYNC in groups (one synchronous write for every record appended while the previous
// group was on its way to disk), so the cost of a sync is shared by every writer.

import {
  close,
  closeSync,
  constants,
  fsync,
  fsyncSync,
  mkdirSync,
  open,
  openSync,
  readdirSync,
  readFileSync,
  rename,
  renameSync,
  rmSync,
  unlink,
  write,
  writeSync,
  writev,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { KvError } from '../errors/index.ts';

const writevAsync = promisify(writev);
const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);
const openAsync = promisify(open);
const closeAsync = promisify(close);
const renameAsync = promisify(rename);
const unlinkAsync = promisify(unlink);

/** A put of a stored record (payload: encodeRecord bytes), applied last-write-wins on replay. */
export const WAL_PUT = 1;
/** A physical delete of the key if it still holds the version in payload (a tombstone record). */
export const WAL_DISCARD = 2;

export interface WalEntry {
  readonly op: typeof WAL_PUT | typeof WAL_DISCARD;
  readonly key: Buffer;
  readonly payload: Buffer;
}

/** What the log reports after each group commit, for metrics. */
type WalSyncObserver = (seconds: number, records: number, bytes: number) => void;

export interface WalOptions {
  /** Directory of the segments (created when missing). */
  readonly dir: string;
  /** A segment is closed once it holds this many bytes; preallocated to this size. */
  readonly segmentBytes: number;
  /**
   * Resolves once every store write queued before the call is flushed to disk: a closed
   * segment is deleted (or recycled) only after that, since then nothing needs replaying.
   */
  readonly checkpoint: () => PromiseLike<unknown>;
  readonly onSync?: WalSyncObserver;
}

/** What `WriteAheadLog.recover` found: the entries to replay, oldest first. */
export interface Recovered {
  readonly entries: WalEntry[];
  /** Segments the entries came from: to be deleted once the replayed writes are flushed. */
  readonly segments: readonly number[];
  /** The preallocated spare segment's number, if there is one. */
  readonly spare: number | null;
}

// Record: [u32 body length][u32 crc32 of the body, seeded with the segment number][body];
// body: [u8 op][u32 key length][key][payload]. A zero length, a short read or a wrong CRC
// (bytes of a torn write, zeros of the preallocation, older records of a recycled segment)
// ends the segment.
const HEADER = 8;
/** Payloads from this size on are written from the caller's buffer instead of a copy. */
const LARGE_PAYLOAD = 16 * 1024;
// O_DSYNC: a write returns once its data (and any size change) is on disk, like write+fdatasync
// in one system call, so a group commit costs one thread-pool round trip.
const DSYNC = constants.O_RDWR | constants.O_DSYNC;
const CREATE_DSYNC = DSYNC | constants.O_CREAT | constants.O_TRUNC;
const BODY_MIN = 5;
const SEGMENT = /^(\d{16})\.wal$/;
const SPARE = /^spare-(\d{16})\.wal$/;

const segmentName = (seq: number) => `${String(seq).padStart(16, '0')}.wal`;
// A spare keeps the number of the segment it was, so that the segment it becomes gets a higher
// one: the CRC seed of a file's new records never equals that of the older records left in it.
const spareName = (seq: number) => `spare-${String(seq).padStart(16, '0')}.wal`;
const seed = (seq: number) => seq % 0x1_0000_0000;

/**
 * The log of one store. `append` is synchronous and cheap; `sync` resolves once everything
 * appended before it is on disk. A failed write or sync is fatal for the log: that call and
 * every later one reject (the disk may have dropped the data; only a restart, which replays
 * what did reach the disk, can say what is durable).
 */
export class WriteAheadLog {
  readonly #o: WalOptions;
  #seq: number;
  #fd: number;
  #pos = 0;
  /** Encoded records not yet handed to the disk (1 or 2 buffers each), and their total size. */
  #pending: Buffer[] = [];
  /** How many buffers of #pending each record has. */
  #pendingRecords: number[] = [];
  #pendingBytes = 0;
  #appended = 0;
  #durable = 0;
  #waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #writing = false;
  #failed: Error | null = null;
  #closed = false;
  /** Segments waiting for a checkpoint before they can go. */
  readonly #retired = new Set<number>();
  /** The number in the spare's name when one is ready. */
  #spare: number | null = null;
  #spareBusy = false;
  #background: Promise<unknown> = Promise.resolve();

  /**
   * Reads every segment in `dir`, oldest first, up to the first invalid record of each.
   * Synchronous: it runs once, before the node serves anything.
   */
  static recover(dir: string): Recovered {
    mkdirSync(dir, { recursive: true });
    const names = readdirSync(dir);
    const numbers = (re: RegExp) =>
      names
        .map((name) => re.exec(name)?.[1])
        .filter((s): s is string => s !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
    const segments = numbers(SEGMENT);
    const spares = numbers(SPARE);
    // A crash between recycling two segments can leave two spares: one is enough.
    for (const extra of spares.slice(0, -1)) rmSync(join(dir, spareName(extra)), { force: true });
    const entries: WalEntry[] = [];
    for (const seq of segments) {
      const buf = readFileSync(join(dir, segmentName(seq)));
      let pos = 0;
      while (pos + HEADER + BODY_MIN <= buf.length) {
        const len = buf.readUInt32LE(pos);
        if (len < BODY_MIN || pos + HEADER + len > buf.length) break;
        const body = buf.subarray(pos + HEADER, pos + HEADER + len);
        if (crc32(body, seed(seq)) !== buf.readUInt32LE(pos + 4)) break;
        const op = body[0];
        const keyLen = body.readUInt32LE(1);
        if ((op !== WAL_PUT && op !== WAL_DISCARD) || BODY_MIN + keyLen > len) break;
        // Copies: the file buffer is dropped once the entries are replayed.
        const key = Buffer.from(body.subarray(BODY_MIN, BODY_MIN + keyLen));
        const payload = Buffer.from(body.subarray(BODY_MIN + keyLen));
        entries.push({ op, key, payload });
        pos += HEADER + len;
      }
    }
    return { entries, segments, spare: spares.at(-1) ?? null };
  }

  /**
   * Starts a new segment after the `recovered` ones, which are deleted once the store has
   * flushed the replayed writes. Throws KV_ERR_STORAGE when the directory is not writable.
   */
  static open(opts: WalOptions, recovered: Recovered): WriteAheadLog {
    try {
      return new WriteAheadLog(opts, recovered);
    } catch (err) {
      throw new KvError('KV_ERR_STORAGE', `storage: cannot open the log in ${opts.dir}`, {
        cause: err,
      });
    }
  }

  private constructor(opts: WalOptions, recovered: Recovered) {
    this.#o = opts;
    this.#seq = Math.max(recovered.segments.at(-1) ?? 0, recovered.spare ?? 0) + 1;
    const path = join(opts.dir, segmentName(this.#seq));
    let fd: number;
    if (recovered.spare !== null) {
      renameSync(join(opts.dir, spareName(recovered.spare)), path);
      fd = openSync(path, DSYNC);
    } else {
      fd = openSync(path, CREATE_DSYNC);
      preallocateSync(fd, opts.segmentBytes);
    }
    // The segment's name, and the log directory's own entry, are on disk before any record.
    syncDirSync(opts.dir);
    syncDirSync(dirname(opts.dir));
    this.#fd = fd;
    for (const seq of recovered.segments) this.#retire(seq);
    this.#prepareSpare();
  }

  /** How many full segments wait for a checkpoint before they can go. */
  get retiredSegments(): number {
    return this.#retired.size;
  }

  /** Appends one record (in memory until the next group commit). */
  append(op: WalEntry['op'], key: Buffer, payload: Buffer): void {
    const len = BODY_MIN + key.length + payload.length;
    // A large payload is written from the caller's buffer (which must not change afterwards)
    // rather than copied: the store holds it anyway until LMDB has committed it.
    const copy = payload.length < LARGE_PAYLOAD;
    const head = Buffer.allocUnsafe(HEADER + BODY_MIN + key.length + (copy ? payload.length : 0));
    head.writeUInt32LE(len, 0);
    head[HEADER] = op;
    head.writeUInt32LE(key.length, HEADER + 1);
    key.copy(head, HEADER + BODY_MIN);
    if (copy) payload.copy(head, HEADER + BODY_MIN + key.length);
    this.#pending.push(head);
    if (!copy) this.#pending.push(payload);
    this.#pendingRecords.push(copy ? 1 : 2);
    this.#pendingBytes += HEADER + len;
    this.#appended++;
  }

  /** Resolves once every record appended so far is on disk; rejects if the log has failed. */
  sync(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    const upTo = this.#appended;
    if (this.#durable >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ upTo, resolve, reject });
      if (!this.#writing) void this.#pump();
    });
  }

  /** Resolves once the background work queued so far (retiring segments, the spare) is done. */
  async idle(): Promise<void> {
    let seen: Promise<unknown>;
    do {
      seen = this.#background;
      await seen;
    } while (seen !== this.#background);
  }

  /** Syncs what is pending, stops, and (once `checkpoint` resolves) deletes every segment. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.sync().catch(() => {});
    this.#closed = true;
    await this.idle();
    const current = this.#seq;
    closeSync(this.#fd);
    if (this.#failed) return;
    await this.#o.checkpoint();
    for (const seq of [...this.#retired, current]) {
      await unlinkAsync(join(this.#o.dir, segmentName(seq))).catch(() => {});
    }
    this.#retired.clear();
  }

  /** Writes and syncs groups until nothing is pending. One runs at a time. */
  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.length > 0) {
        if (this.#pos >= this.#o.segmentBytes) await this.#rotate();
        const group = this.#pending;
        const records = this.#pendingRecords;
        const bytes = this.#pendingBytes;
        const upTo = this.#appended;
        this.#pending = [];
        this.#pendingRecords = [];
        this.#pendingBytes = 0;
        const s = seed(this.#seq);
        for (let r = 0, b = 0; r < records.length; b += records[r++]!) {
          const head = group[b]!;
          let crc = crc32(head.subarray(HEADER), s);
          if (records[r] === 2) crc = crc32(group[b + 1]!, crc);
          head.writeUInt32LE(crc, 4);
        }
        const started = performance.now();
        let done = 0;
        while (done < group.length) {
          // writev takes at most IOV_MAX (1024) buffers at once.
          const part = group.slice(done, done + 1024);
          let partBytes = 0;
          for (const b of part) partBytes += b.length;
          const { bytesWritten: written } = await writevAsync(this.#fd, part, this.#pos);
          if (written !== partBytes) throw new Error(`short write (${written} of ${partBytes})`);
          this.#pos += partBytes;
          done += part.length;
        }
        this.#o.onSync?.((performance.now() - started) / 1000, records.length, bytes);
        this.#durable = upTo;
        const waiters = this.#waiters;
        let i = 0;
        while (i < waiters.length && waiters[i]!.upTo <= upTo) waiters[i++]!.resolve();
        this.#waiters = waiters.slice(i);
      }
    } catch (err) {
      this.#failed = new KvError('KV_ERR_STORAGE', 'storage: write-ahead log write failed', {
        cause: err,
      });
      for (const w of this.#waiters.splice(0)) w.reject(this.#failed);
    } finally {
      this.#writing = false;
    }
  }

  /** Continues in the next segment (the spare when it is ready); retires the current one. */
  async #rotate(): Promise<void> {
    const dir = this.#o.dir;
    const old = this.#seq;
    const next = old + 1;
    const path = join(dir, segmentName(next));
    let fd: number;
    if (this.#spare !== null) {
      const spare = this.#spare;
      this.#spare = null;
      await renameAsync(join(dir, spareName(spare)), path);
      fd = await openAsync(path, DSYNC);
    } else {
      // Writes outran the spare: a fresh file, synced as it grows (slower, still durable).
      fd = await openAsync(path, CREATE_DSYNC);
    }
    // The new name must be on disk before any record in it is acknowledged.
    await syncDir(dir);
    await closeAsync(this.#fd);
    this.#fd = fd;
    this.#seq = next;
    this.#pos = 0;
    this.#retire(old);
  }

  /** Deletes (or keeps as the spare) segment `seq` once the store has flushed past it. */
  #retire(seq: number): void {
    this.#retired.add(seq);
    const path = join(this.#o.dir, segmentName(seq));
    const done = Promise.resolve(this.#o.checkpoint()).then(async () => {
      if (this.#closed || !this.#retired.delete(seq)) return;
      if (this.#spare === null && !this.#spareBusy) {
        // Recycled: allocated blocks, so syncs in it need no metadata update. Its old records
        // carry an older segment's CRC seed and end replay at once.
        this.#spareBusy = true;
        try {
          await renameAsync(path, join(this.#o.dir, spareName(seq)));
          this.#spare = seq;
        } finally {
          this.#spareBusy = false;
        }
      } else {
        await unlinkAsync(path);
      }
    });
    this.#background = Promise.all([this.#background, done]).catch(() => {});
  }

  /** Preallocates the spare segment in the background when there is none. */
  #prepareSpare(): void {
    if (this.#spare !== null || this.#spareBusy) return;
    this.#spareBusy = true;
    // Numbered like the current segment: zeros, and whatever it becomes is numbered higher.
    const seq = this.#seq;
    const path = join(this.#o.dir, spareName(seq));
    const done = (async () => {
      const fd = await openAsync(path, 'w+');
      try {
        const chunk = Buffer.alloc(Math.min(this.#o.segmentBytes, 1 << 20));
        for (let at = 0; at < this.#o.segmentBytes; at += chunk.length) {
          await writeAsync(fd, chunk, 0, Math.min(chunk.length, this.#o.segmentBytes - at), at);
        }
        await fsyncAsync(fd);
      } finally {
        await closeAsync(fd);
      }
      if (!this.#closed) this.#spare = seq;
    })()
      .catch(() => {
        // No spare: the next rotation creates a plain file instead.
      })
      .finally(() => {
        this.#spareBusy = false;
      });
    this.#background = Promise.all([this.#background, done]).catch(() => {});
  }
}

function preallocateSync(fd: number, bytes: number): void {
  const chunk = Buffer.alloc(Math.min(bytes, 1 << 20));
  for (let at = 0; at < bytes; at += chunk.length) {
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - at), at);
  }
  fsyncSync(fd);
}

/** syncDirSync without blocking the event loop. */
async function syncDir(dir: string): Promise<void> {
  const fd = await openAsync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}

/** fsync of a directory: a created or renamed entry in it is on disk. */
function syncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
