// Write-ahead log format: group and record framing, and the replay decision (what to replay, what
// is a torn tail, what is damage). Pure: works on segment bytes, touches no file.

import { crc32 } from 'node:zlib';

/** A put of a stored record (payload: encodeRecord bytes), applied last-write-wins on replay. */
export const WAL_PUT = 1;
/** A physical delete of the key if it still holds the version in payload (a tombstone record). */
export const WAL_DISCARD = 2;

export interface WalEntry {
  readonly op: typeof WAL_PUT | typeof WAL_DISCARD;
  readonly key: Buffer;
  readonly payload: Buffer;
}

// A segment is a run of groups, one per group commit (one synchronous write):
//   group header (24 bytes): [u32 magic][u32 crc32 of bytes 8..24][u32 record bytes]
//     [u32 records][u32 previous segment's end][u32 previous segment's number]
//   then its records: [u32 body length][u32 crc32 of the body][body]; body: [u8 op][u32 key
//   length][key][payload].
// Every CRC is seeded with the segment's number, so the older groups of a recycled segment never
// verify in it. The first group of a segment names the segment before it and the offset where
// that one's acknowledged groups end (a segment is left after a failed write, and the failed
// group's bytes stay behind that offset); other groups hold NO_SEAL there.
export const GROUP_HEADER = 24;
export const RECORD_HEADER = 8;
export const BODY_MIN = 5;
const MAGIC = 0x3147_564b; // 'KVG1' little-endian
const MAGIC_BYTES = Buffer.from('KVG1', 'latin1');
export const NO_SEAL = 0xffff_ffff;

export const seed = (seq: number) => seq % 0x1_0000_0000;

/** Writes a group header for `bytes` of `records` into `out` (24 bytes). */
export function encodeGroupHeader(
  out: Buffer,
  seq: number,
  bytes: number,
  records: number,
  seal: { readonly seq: number; readonly end: number } | null,
): void {
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(bytes, 8);
  out.writeUInt32LE(records, 12);
  out.writeUInt32LE(seal ? seal.end : NO_SEAL, 16);
  out.writeUInt32LE(seal ? seed(seal.seq) : NO_SEAL, 20);
  out.writeUInt32LE(crc32(out.subarray(8, GROUP_HEADER), seed(seq)), 4);
}

interface GroupHeader {
  readonly bytes: number;
  readonly records: number;
  readonly sealEnd: number;
  readonly sealSeq: number;
}

function readGroupHeader(buf: Buffer, at: number, s: number): GroupHeader | null {
  if (at + GROUP_HEADER > buf.length || buf.readUInt32LE(at) !== MAGIC) return null;
  if (crc32(buf.subarray(at + 8, at + GROUP_HEADER), s) !== buf.readUInt32LE(at + 4)) return null;
  return {
    bytes: buf.readUInt32LE(at + 8),
    records: buf.readUInt32LE(at + 12),
    sealEnd: buf.readUInt32LE(at + 16),
    sealSeq: buf.readUInt32LE(at + 20),
  };
}

/**
 * The record at `at` if it is whole, inside `end`, and its CRC matches (with the offset after
 * it); else null.
 */
function readRecord(
  buf: Buffer,
  at: number,
  end: number,
  s: number,
): { entry: WalEntry; next: number } | null {
  if (at + RECORD_HEADER + BODY_MIN > end) return null;
  const len = buf.readUInt32LE(at);
  if (len < BODY_MIN || at + RECORD_HEADER + len > end) return null;
  const body = buf.subarray(at + RECORD_HEADER, at + RECORD_HEADER + len);
  if (crc32(body, s) !== buf.readUInt32LE(at + 4)) return null;
  const op = body[0];
  const keyLen = body.readUInt32LE(1);
  if ((op !== WAL_PUT && op !== WAL_DISCARD) || BODY_MIN + keyLen > len) return null;
  // Views of the segment's buffer: the caller copies what it keeps.
  const key = body.subarray(BODY_MIN, BODY_MIN + keyLen);
  const payload = body.subarray(BODY_MIN + keyLen);
  return { entry: { op, key, payload }, next: at + RECORD_HEADER + len };
}

/** One segment's file contents. */
export interface SegmentBytes {
  readonly seq: number;
  readonly buf: Buffer;
}

/** Where replay stopped in one segment, and why. */
export interface LogDamage {
  readonly segment: number;
  /** Byte offset of the first damaged record or group header. */
  readonly offset: number;
  /** Start of the group that holds the damage: the log is valid up to here. */
  readonly groupStart: number;
  readonly reason: string;
}

/** What replay found. */
export interface LogScan {
  /** The records to replay, oldest first (all of them up to the damage when there is one). */
  readonly entries: WalEntry[];
  /** The valid end of each segment (offset after its last complete acknowledged group). */
  readonly ends: ReadonlyMap<number, number>;
  /** A torn last group (a write the crash cut short: never acknowledged), dropped. */
  readonly torn: (LogDamage & { readonly records: number }) | null;
  /**
   * Damage before the last group: acknowledged records are missing. `entries` stops there;
   * `droppedRecords` counts the records replay skips (the damaged group's, as its header says,
   * and every valid one after it, in that segment and the later ones), `droppedSegments` the
   * later segments.
   */
  readonly corrupt:
    | (LogDamage & { readonly droppedRecords: number; readonly droppedSegments: number })
    | null;
}

/** The groups of one segment up to `limit` (or the first invalid one). */
function parseSegment(seg: SegmentBytes, limit: number) {
  const { buf } = seg;
  const s = seed(seg.seq);
  const entries: WalEntry[] = [];
  let pos = 0;
  let firstHeader: GroupHeader | null = null;
  let damage: { offset: number; reason: string; header: GroupHeader | null } | null = null;
  while (pos < limit) {
    const header = readGroupHeader(buf, pos, s);
    if (pos === 0) firstHeader = header;
    if (header === null) {
      damage = { offset: pos, reason: 'group header invalid', header };
      break;
    }
    const end = pos + GROUP_HEADER + header.bytes;
    if (end > buf.length || end > limit) {
      damage = { offset: pos, reason: 'group runs past the end of the segment', header };
      break;
    }
    const group: WalEntry[] = [];
    let at = pos + GROUP_HEADER;
    while (at < end) {
      const r = readRecord(buf, at, end, s);
      if (r === null) break;
      group.push(r.entry);
      at = r.next;
    }
    if (at !== end || group.length !== header.records) {
      damage = { offset: at, reason: 'record CRC mismatch or bad framing', header };
      break;
    }
    entries.push(...group);
    pos = end;
  }
  return { entries, end: pos, firstHeader, damage };
}

/** True when a valid group header of segment `seq` starts anywhere after `from`. */
function laterGroup(seg: SegmentBytes, from: number): boolean {
  const s = seed(seg.seq);
  for (
    let i = seg.buf.indexOf(MAGIC_BYTES, from);
    i !== -1;
    i = seg.buf.indexOf(MAGIC_BYTES, i + 1)
  ) {
    if (readGroupHeader(seg.buf, i, s) !== null) return true;
  }
  return false;
}

/** Valid records of segment `seq` in a chain from `at` (to count what a torn group held). */
function countRecords(seg: SegmentBytes, at: number): number {
  let n = 0;
  const s = seed(seg.seq);
  for (let r = readRecord(seg.buf, at, seg.buf.length, s); r !== null; n++) {
    r = readRecord(seg.buf, r.next, seg.buf.length, s);
  }
  return n;
}

/**
 * Decides what to replay from `segments` (ascending numbers). A segment followed by another one
 * is valid up to the end its successor's first group names (or, if that group is lost, up to its
 * first invalid group); anything invalid before that end is damage. In the last segment the
 * first invalid group ends the log: a torn tail when no valid group follows it, damage when one
 * does (groups are written one after another, each only once the one before is on disk).
 */
export function scanLog(segments: readonly SegmentBytes[]): LogScan {
  const entries: WalEntry[] = [];
  const ends = new Map<number, number>();
  let torn: LogScan['torn'] = null;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const next = segments[i + 1];
    const nextFirst = next ? readGroupHeader(next.buf, 0, seed(next.seq)) : null;
    const sealed =
      nextFirst !== null && nextFirst.sealSeq === seed(seg.seq) ? nextFirst.sealEnd : null;
    const parsed = parseSegment(seg, sealed ?? Number.POSITIVE_INFINITY);
    entries.push(...parsed.entries);
    ends.set(seg.seq, parsed.end);
    const d = parsed.damage;
    if (d === null) continue; // reached the sealed end exactly
    const damage = { segment: seg.seq, offset: d.offset, groupStart: parsed.end, reason: d.reason };
    // Without a seal (the last segment, or its successor's first group was lost) a valid group
    // after the damage proves it: that group was written only once this one was on disk.
    const isDamage =
      sealed !== null ||
      (d.header !== null && nextGroupValid(seg, parsed.end, d.header)) ||
      laterGroup(seg, parsed.end + 1);
    if (isDamage) {
      return {
        entries,
        ends,
        torn: null,
        corrupt: { ...damage, ...dropped(segments, i, parsed.end, d.header?.records ?? 0) },
      };
    }
    // The end of this segment's log: zeros, older groups, or a group cut short.
    const records =
      d.header !== null ? d.header.records : countRecords(seg, parsed.end + GROUP_HEADER);
    if (records > 0 && torn === null) torn = { ...damage, records };
  }
  return { entries, ends, torn, corrupt: null };
}

function nextGroupValid(seg: SegmentBytes, start: number, header: GroupHeader): boolean {
  const next = start + GROUP_HEADER + header.bytes;
  return readGroupHeader(seg.buf, next, seed(seg.seq)) !== null;
}

/** Valid records after damage in segment `i` at group `start`, and the segments after it. */
function dropped(segments: readonly SegmentBytes[], i: number, start: number, damaged: number) {
  let droppedRecords = damaged;
  const seg = segments[i]!;
  const s = seed(seg.seq);
  for (
    let at = seg.buf.indexOf(MAGIC_BYTES, start + 1);
    at !== -1;
    at = seg.buf.indexOf(MAGIC_BYTES, at + 1)
  ) {
    const h = readGroupHeader(seg.buf, at, s);
    if (h !== null) droppedRecords += h.records;
  }
  for (const later of segments.slice(i + 1))
    droppedRecords += parseSegment(later, Number.POSITIVE_INFINITY).entries.length;
  return { droppedRecords, droppedSegments: segments.length - i - 1 };
}
