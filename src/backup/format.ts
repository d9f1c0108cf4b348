// The backup stream and file format: CRC-checked blocks of raw records, a header and a trailer.

import { crc32 } from 'node:zlib';
import { KvError } from '../errors/index.ts';

/**
 * A backup stream (what GET /admin/backup sends) is a sequence of blocks:
 * `[type u8][length u32 BE][crc32 u32 BE of the payload][payload]`.
 * - HEADER (once, first): JSON, BackupHeader.
 * - RECORDS: entries `[key length u16 BE][record length u32 BE][key][record]`, keys ascending
 *   across the whole stream, each record the stored bytes exactly (storage/record.ts format,
 *   whatever it holds: version, tombstone flag, value and any later field), never re-encoded.
 * - TRAILER (once, last): JSON, BackupTrailer: the counts, or the error that ended the stream.
 * The file `records.kvb` of a backup is the RECORDS blocks of one stream, as they came.
 */
export const BLOCK_HEADER = 1;
export const BLOCK_RECORDS = 2;
export const BLOCK_TRAILER = 3;
const BLOCK_TYPES = new Set([BLOCK_HEADER, BLOCK_RECORDS, BLOCK_TRAILER]);

/** Bytes before a block's payload. */
export const BLOCK_PREFIX_BYTES = 9;
/** Largest block accepted (a record holds a value of up to --max-value-bytes, at most 64 MiB). */
export const MAX_BLOCK_BYTES = 80 * 1024 * 1024;
/** Records go into a block until its payload reaches this size. */
export const TARGET_BLOCK_BYTES = 256 * 1024;

/** A key and its stored record bytes. */
export type BackupEntry = readonly [key: Buffer, raw: Buffer];

export interface Block {
  readonly type: number;
  readonly payload: Buffer;
  /** The whole block as it was read (prefix and payload), for copying it unchanged. */
  readonly bytes: Buffer;
}

function bad(message: string): KvError {
  return new KvError('KV_ERR_BACKUP', `backup: ${message}`);
}

/** One block: prefix and payload. */
export function encodeBlock(type: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(BLOCK_PREFIX_BYTES + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.writeUInt32BE(crc32(payload), 5);
  payload.copy(out, BLOCK_PREFIX_BYTES);
  return out;
}

/** A RECORDS block of `entries` (keys ascending). */
export function encodeRecords(entries: readonly BackupEntry[]): Buffer {
  let size = 0;
  for (const [k, r] of entries) size += 6 + k.length + r.length;
  const payload = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [k, r] of entries) {
    at = payload.writeUInt16BE(k.length, at);
    at = payload.writeUInt32BE(r.length, at);
    at += k.copy(payload, at);
    at += r.copy(payload, at);
  }
  return encodeBlock(BLOCK_RECORDS, payload);
}

/** The entries of a RECORDS payload; throws KV_ERR_BACKUP when a length runs past its end. */
export function decodeRecords(payload: Buffer): BackupEntry[] {
  const out: BackupEntry[] = [];
  let at = 0;
  while (at < payload.length) {
    if (at + 6 > payload.length) throw bad(`records block cut inside an entry at byte ${at}`);
    const kl = payload.readUInt16BE(at);
    const rl = payload.readUInt32BE(at + 2);
    const end = at + 6 + kl + rl;
    if (kl === 0 || end > payload.length)
      throw bad(`records block entry at byte ${at} is malformed`);
    out.push([payload.subarray(at + 6, at + 6 + kl), payload.subarray(at + 6 + kl, end)]);
    at = end;
  }
  return out;
}

/**
 * Incremental block reader: `push()` bytes as they arrive, then take every complete block with
 * `next()` (null: more bytes needed). Throws KV_ERR_BACKUP on an unknown type, a block over
 * MAX_BLOCK_BYTES or a CRC mismatch. `pending` is how many bytes wait (non-zero at the end of
 * the input means it was cut inside a block).
 */
export class BlockReader {
  #buf: Buffer = Buffer.alloc(0);
  #offset = 0;

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  get pending(): number {
    return this.#buf.length;
  }

  next(): Block | null {
    const b = this.#buf;
    if (b.length < BLOCK_PREFIX_BYTES) return null;
    const type = b[0]!;
    const length = b.readUInt32BE(1);
    if (!BLOCK_TYPES.has(type)) throw bad(`unknown block type ${type} at byte ${this.#offset}`);
    if (length > MAX_BLOCK_BYTES) throw bad(`block of ${length} bytes at byte ${this.#offset}`);
    const end = BLOCK_PREFIX_BYTES + length;
    if (b.length < end) return null;
    const payload = b.subarray(BLOCK_PREFIX_BYTES, end);
    if (crc32(payload) !== b.readUInt32BE(5)) {
      throw bad(`block at byte ${this.#offset} fails its checksum`);
    }
    const bytes = b.subarray(0, end);
    this.#buf = b.subarray(end);
    this.#offset += end;
    return { type, payload, bytes };
  }
}

/** The first block of a stream: what is being backed up, and the cluster it came from. */
export interface BackupHeader {
  readonly format: 1;
  /** `cluster`: every member's records merged; `node`: one member's records only. */
  readonly scope: 'cluster' | 'node';
  /** The node that served the backup. */
  readonly via: string;
  /** Settled-ring epoch, members and replication factor when the backup started. */
  readonly epoch: number;
  readonly members: readonly string[];
  readonly replicationFactor: number;
  /** Each member read: when its snapshot was taken, and its data directory's incarnation. */
  readonly snapshots: readonly { member: string; at: string; incarnation: string }[];
}

/** The last block: counts, or why the stream stopped (then no backup exists). */
export type BackupTrailer =
  | {
      readonly ok: true;
      readonly records: number;
      readonly liveKeys: number;
      readonly tombstones: number;
      readonly finishedAt: string;
    }
  | { readonly ok: false; readonly error: string };

export function jsonBlock(type: number, value: unknown): Buffer {
  return encodeBlock(type, Buffer.from(JSON.stringify(value)));
}
