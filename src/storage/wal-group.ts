// The write-ahead log's records appended and not yet written: encoded into one buffer per group
// (the group header's room at its front), so that a group is one or a few buffers for its write.

import { crc32 } from 'node:zlib';
import { crc32Range } from './crc32.ts';
import {
  BODY_MIN,
  encodeGroupHeader,
  GROUP_HEADER,
  RECORD_HEADER,
  seed,
  type WalEntry,
} from './wal-format.ts';

/** Payloads from this size on are written from the caller's buffer instead of a copy. */
export const LARGE_PAYLOAD = 16 * 1024;
/** Most buffers one writev takes (Linux IOV_MAX). */
const IOV_MAX = 1024;
const INITIAL_BYTES = 64 * 1024;
/** A buffer grown past this (a burst) is not kept for the next group after its write. */
const KEEP_BYTES = 1024 * 1024;

/** A group ready for its write: the buffers in order, and what they hold. */
export interface TakenGroup {
  /** At most IOV_MAX buffers, the group header first. */
  readonly parts: Buffer[];
  /** Bytes of `parts`, the group header included. */
  readonly size: number;
  readonly records: number;
  /** Bytes of the records (the group header's `bytes`). */
  readonly bytes: number;
}

/**
 * The pending records of one log, in the format of wal-format.ts. `append` copies a record into
 * the buffer of the group being filled (a payload of LARGE_PAYLOAD or more stays the caller's,
 * which must not change afterwards, and is written beside it); `take` seals them as one group
 * for the segment it goes to (CRCs seeded with its number, then the group header) and starts the
 * next group in another buffer. The buffer of the group taken before is reused once `written`
 * says its write returned: no buffer object per record, one or two per group.
 */
export class PendingGroup {
  #buf: Buffer | null = null;
  /** End of the pending records in #buf (GROUP_HEADER when there are none). */
  #len = GROUP_HEADER;
  #records = 0;
  /** Large payloads not copied: each record's offset in #buf, and the payload (in order). */
  #large: { readonly at: number; readonly payload: Buffer }[] = [];
  #largeBytes = 0;
  /** The buffer of the group last taken (in its write), and one free for the next group. */
  #taken: Buffer | null = null;
  #free: Buffer | null = null;

  /** Records appended since the last take. */
  get records(): number {
    return this.#records;
  }

  append(op: WalEntry['op'], key: Buffer, payload: Buffer): void {
    const len = BODY_MIN + key.length + payload.length;
    const large = payload.length >= LARGE_PAYLOAD;
    const copied = RECORD_HEADER + BODY_MIN + key.length + (large ? 0 : payload.length);
    const at = this.#len;
    const buf = this.#room(copied);
    buf.writeUInt32LE(len, at);
    buf[at + RECORD_HEADER] = op;
    buf.writeUInt32LE(key.length, at + RECORD_HEADER + 1);
    let p = at + RECORD_HEADER + BODY_MIN;
    p += key.copy(buf, p);
    if (large) {
      this.#large.push({ at, payload });
      this.#largeBytes += payload.length;
    } else payload.copy(buf, p);
    this.#len = at + copied;
    this.#records++;
  }

  /**
   * The pending records as one group of segment `seq` (`seal`: what the segment's first group
   * names, see wal-format.ts), with their CRCs and the group header written; nothing is pending
   * afterwards. Null when nothing is.
   */
  take(
    seq: number,
    seal: { readonly seq: number; readonly end: number } | null,
  ): TakenGroup | null {
    const buf = this.#buf;
    if (buf === null || this.#records === 0) return null;
    const s = seed(seq);
    const large = this.#large;
    const parts: Buffer[] = [];
    let from = 0;
    let li = 0;
    for (let at = GROUP_HEADER, r = 0; r < this.#records; r++) {
      const len = buf.readUInt32LE(at);
      const body = at + RECORD_HEADER;
      let crc: number;
      if (li < large.length && large[li]!.at === at) {
        // The record's head is here, its payload beside: the head ends after the key.
        const end = body + BODY_MIN + buf.readUInt32LE(body + 1);
        const payload = large[li++]!.payload;
        crc = crc32(payload, crc32(buf.subarray(body, end), s));
        parts.push(buf.subarray(from, end), payload);
        from = end;
        at = end;
      } else {
        crc = crc32Range(buf, body, body + len, s);
        at = body + len;
      }
      buf.writeUInt32LE(crc, body - RECORD_HEADER + 4);
    }
    parts.push(buf.subarray(from, this.#len));
    const bytes = this.#len - GROUP_HEADER + this.#largeBytes;
    encodeGroupHeader(buf, seq, bytes, this.#records, seal);
    const taken: TakenGroup = {
      // One write call per group (see WriteAheadLog.#writeGroup): more large payloads than
      // writev takes are copied into one buffer (a copy costs far less than a device flush).
      parts: parts.length <= IOV_MAX ? parts : [Buffer.concat(parts, GROUP_HEADER + bytes)],
      size: GROUP_HEADER + bytes,
      records: this.#records,
      bytes,
    };
    this.#taken = buf;
    this.#buf = this.#free;
    this.#free = null;
    this.#clear();
    return taken;
  }

  /** The write of the group last taken returned (done or failed): its buffer may be reused. */
  written(): void {
    const buf = this.#taken;
    this.#taken = null;
    if (buf !== null && buf.length <= KEEP_BYTES) this.#free = buf;
  }

  /** Drops every pending record (their sync was rejected). */
  drop(): void {
    this.#clear();
  }

  #clear(): void {
    this.#len = GROUP_HEADER;
    this.#records = 0;
    this.#largeBytes = 0;
    if (this.#large.length > 0) this.#large = [];
  }

  /** #buf with room for `n` more bytes after #len. */
  #room(n: number): Buffer {
    const buf = this.#buf;
    if (buf !== null && this.#len + n <= buf.length) return buf;
    const grown = Buffer.allocUnsafeSlow(
      Math.max(INITIAL_BYTES, 2 * (buf?.length ?? 0), this.#len + n),
    );
    if (buf !== null) buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
    return grown;
  }
}
