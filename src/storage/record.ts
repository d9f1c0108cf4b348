// Binary codec of a stored record: version, tombstone flag, expiry and value in one LMDB value.

import { KvError } from '../errors/index.ts';
import { compareVersions, MAX_VALID_WALL, type Version } from './hlc.ts';

/**
 * What one key holds. A tombstone has an empty value and marks a delete at `version`.
 *
 * `version` identifies the write that made the record (unique: an HLC time and the node).
 * `base`, when present, is the version of the write that stored `value`: the record was made by
 * an expiry change (EXPIRE, PERSIST, GETEX) that kept the value. `expiresAt` is an absolute time
 * (ms since the epoch) at which the record stops being live; absent: never. See compareRecords
 * for how records order, and docs/redis.md (Expiry) for what that means for racing writes.
 */
export interface StoredRecord {
  readonly version: Version;
  readonly tombstone: boolean;
  readonly value: Buffer;
  /** Absolute expiry in ms since the epoch; absent for a record that never expires. */
  readonly expiresAt?: number;
  /** The value's own version when the record only changed the expiry; always below `version`. */
  readonly base?: Version;
}

/** Longest key LMDB stores (its compiled-in limit): no peer may send a longer one. */
export const MAX_KEY_BYTES = 1978;

/**
 * Largest expiry a record carries: Redis's limit (a signed 64-bit count of milliseconds), as the
 * largest double below 2^63. Later expiries are stored as this (the year 292 million).
 */
export const MAX_EXPIRES_AT = 2 ** 63 - 1024;

const FORMAT = 1;
const FLAG_TOMBSTONE = 1;
const FLAG_EXPIRES = 2;
const FLAG_BASE = 4;
const KNOWN_FLAGS = FLAG_TOMBSTONE | FLAG_EXPIRES | FLAG_BASE;
/** Bytes before the node name: format u8, flags u8, wall u48, logical u16, node length u8. */
export const RECORD_HEADER_BYTES = 11;
const HEADER = RECORD_HEADER_BYTES;

/**
 * Layout: `[format=1][flags][wall: 6 bytes BE][logical: 2 bytes BE][node len][node]`, then
 * `[expiresAt: 8 bytes BE]` when flag 2 is set, then the base version `[wall: 6][logical: 2]
 * [node len][node]` when flag 4 is set, then the value. Records written before expiry existed
 * have neither flag and decode unchanged. Node names are 1 to 255 bytes of UTF-8 (the config
 * enforces 253, a DNS name). A tombstone carries no value.
 */
export function encodeRecord(r: StoredRecord): Buffer {
  const node = nodeBytes(r.version.node);
  const baseNode = r.base ? nodeBytes(r.base.node) : null;
  const expires = r.expiresAt !== undefined;
  const size =
    HEADER +
    node.length +
    (expires ? 8 : 0) +
    (baseNode ? 9 + baseNode.length : 0) +
    r.value.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = FORMAT;
  out[1] =
    (r.tombstone ? FLAG_TOMBSTONE : 0) | (expires ? FLAG_EXPIRES : 0) | (baseNode ? FLAG_BASE : 0);
  out.writeUIntBE(r.version.wall, 2, 6);
  out.writeUInt16BE(r.version.logical, 8);
  out[10] = node.length;
  let at = HEADER;
  // A node name is a few bytes: copied here, cheaper than a native copy.
  for (let i = 0; i < node.length; i++) out[at++] = node[i]!;
  if (expires) at = out.writeBigUInt64BE(BigInt(r.expiresAt!), at);
  if (r.base && baseNode) {
    out.writeUIntBE(r.base.wall, at, 6);
    out.writeUInt16BE(r.base.logical, at + 6);
    out[at + 8] = baseNode.length;
    at += 9 + baseNode.copy(out, at + 9);
  }
  r.value.copy(out, at);
  return out;
}

/** The name and UTF-8 bytes of the last node name encoded: nearly every write carries the same. */
let encodedNode = '';
let encodedNodeBytes = Buffer.alloc(0);

/** `node` as UTF-8 (the bytes are shared: only read, never kept or changed). */
function nodeBytes(node: string): Buffer {
  if (node !== encodedNode) {
    encodedNodeBytes = Buffer.from(node, 'utf8');
    encodedNode = node;
  }
  return encodedNodeBytes;
}

function bad(why: string, buf: Buffer): KvError {
  return new KvError('KV_ERR_BAD_RECORD', `storage: record of ${buf.length} bytes ${why}`);
}

/**
 * The bytes and names of the last node names decoded, newest first: most records carry the same
 * few (a replica decodes the writes of every coordinator, and the records they replace).
 */
const NODE_NAMES_KEPT = 4;
const lastNodeBytes: Buffer[] = [];
const lastNodes: string[] = [];

/** A UTF-8 node name of `len` (1..255) bytes at `at`; throws when it runs past the end. */
function nodeName(buf: Buffer, at: number, len: number, what: string): string {
  if (len === 0 || at + len > buf.length) {
    throw bad(`has a ${what} length of ${len} past its end`, buf);
  }
  for (let n = 0; n < lastNodeBytes.length; n++) {
    const known = lastNodeBytes[n]!;
    if (known.length !== len) continue;
    let i = 0;
    while (i < len && buf[at + i] === known[i]) i++;
    if (i === len) return lastNodes[n]!;
  }
  const node = buf.toString('utf8', at, at + len);
  // Invalid UTF-8 decodes to U+FFFD, which no node name contains (cheaper than isUtf8()).
  if (node.includes('\uFFFD')) throw bad(`has a ${what} that is not UTF-8`, buf);
  if (lastNodes.length === NODE_NAMES_KEPT) {
    lastNodeBytes.pop();
    lastNodes.pop();
  }
  lastNodeBytes.unshift(Buffer.from(buf.subarray(at, at + len)));
  lastNodes.unshift(node);
  return node;
}

/**
 * Decodes what encodeRecord wrote, checking every length: throws KvError KV_ERR_BAD_RECORD for
 * fewer than 12 bytes, an unknown format or flag, a node length of 0 or past the end, a node name
 * that is not UTF-8 (or holds U+FFFD), a tombstone with a value, an expiry above MAX_EXPIRES_AT,
 * or a base version that is not below the version. The version's range is not checked here (see
 * isValidVersion): a record written before that check existed must still be readable.
 * The value is a view into `buf`.
 */
export function decodeRecord(buf: Buffer): StoredRecord {
  return decode(buf, true);
}

const NO_VALUE = Buffer.alloc(0);

/**
 * decodeRecord with the same checks, for a caller that reads only the versions, flags and
 * expiry (the store's write decisions against the stored record): `value` is an empty buffer,
 * not a view of `buf`'s value (making that view was most of a decode's cost).
 */
export function decodeRecordHeader(buf: Buffer): StoredRecord {
  return decode(buf, false);
}

function decode(buf: Buffer, withValue: boolean): StoredRecord {
  if (buf.length <= HEADER) throw bad('is shorter than its header and node name', buf);
  if (buf[0] !== FORMAT) throw bad(`has unknown format ${buf[0]}`, buf);
  const flags = buf[1]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw bad(`has unknown flags ${flags}`, buf);
  const nodeLen = buf[10]!;
  const node = nodeName(buf, HEADER, nodeLen, 'node');
  let end = HEADER + nodeLen;
  const version: Version = {
    wall: buf.readUIntBE(2, 6),
    logical: buf.readUInt16BE(8),
    node,
  };
  let expiresAt: number | undefined;
  if ((flags & FLAG_EXPIRES) !== 0) {
    if (end + 8 > buf.length) throw bad('has an expiry past its end', buf);
    const at = buf.readBigUInt64BE(end);
    if (at > BigInt(MAX_EXPIRES_AT)) throw bad('has an expiry out of range', buf);
    expiresAt = Number(at);
    end += 8;
  }
  let base: Version | undefined;
  if ((flags & FLAG_BASE) !== 0) {
    if (end + 9 > buf.length) throw bad('has a base version past its end', buf);
    const len = buf[end + 8]!;
    base = {
      wall: buf.readUIntBE(end, 6),
      logical: buf.readUInt16BE(end + 6),
      node: nodeName(buf, end + 9, len, 'base node'),
    };
    if (compareVersions(base, version) >= 0) throw bad('has a base not below its version', buf);
    end += 9 + len;
  }
  const tombstone = (flags & FLAG_TOMBSTONE) !== 0;
  if (tombstone && end !== buf.length) throw bad('is a tombstone with a value', buf);
  const rec: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = {
    version,
    tombstone,
    value: withValue ? buf.subarray(end) : NO_VALUE,
  };
  if (expiresAt !== undefined) rec.expiresAt = expiresAt;
  if (base !== undefined) rec.base = base;
  return rec;
}

/**
 * Where the value of the encoded record `buf` starts when the record holds a value at the time
 * `now()` returns (ms since the epoch), or -1 when it does not (a tombstone, or expired): GET's
 * answer read from the header without making objects. `now` is called only for a record with an
 * expiry (reading the clock was 6-10% of a GET's time on the main thread). It throws what
 * decodeRecord throws: a record it does not read itself (one with a base version, or anything
 * malformed) goes through decodeRecord.
 */
export function liveValueStart(buf: Buffer, now: () => number): number {
  const flags = buf[1]!;
  const nodeLen = buf[10]!;
  let end = HEADER + nodeLen;
  if (
    buf.length <= HEADER ||
    buf[0] !== FORMAT ||
    (flags & ~(FLAG_TOMBSTONE | FLAG_EXPIRES)) !== 0 ||
    nodeLen === 0 ||
    end > buf.length
  )
    return decodedValueStart(buf, now);
  nodeName(buf, HEADER, nodeLen, 'node'); // the UTF-8 check (the last name is remembered)
  let expired = false;
  if ((flags & FLAG_EXPIRES) !== 0) {
    // Two 32-bit halves: no BigInt. The highest expiries (near MAX_EXPIRES_AT) go the long way.
    const high = end + 8 <= buf.length ? buf.readUInt32BE(end) : 0x7fffffff;
    if (high >= 0x7fffffff) return decodedValueStart(buf, now);
    expired = high * 2 ** 32 + buf.readUInt32BE(end + 4) <= now();
    end += 8;
  }
  if ((flags & FLAG_TOMBSTONE) !== 0) return end === buf.length ? -1 : decodedValueStart(buf, now);
  return expired ? -1 : end;
}

/**
 * Bytes of the encoded record `buf` before its value: format, flags, version, expiry and base
 * version. `buf.length` for a record whose header is cut short (decodeRecord refuses it).
 */
export function headerBytes(buf: Buffer): number {
  if (buf.length <= HEADER) return buf.length;
  const flags = buf[1]!;
  let end = HEADER + buf[10]!;
  if ((flags & FLAG_EXPIRES) !== 0) end += 8;
  if ((flags & FLAG_BASE) !== 0) {
    if (end + 9 > buf.length) return buf.length;
    end += 9 + buf[end + 8]!;
  }
  return Math.min(end, buf.length);
}

/**
 * The encoded record `buf` without its value (a view): the same versions, flags and expiry, so
 * it orders (compareRecords) and is live (isLive) as the whole record does. What a member sends
 * for a RANGE or PREFIX, which merges versions and never reads values, and for a quorum read's
 * digest (GetRequest.h). A record whose header is cut short is returned whole, for the
 * receiver's checks to refuse as they refuse it now.
 */
export function withoutValue(buf: Buffer): Buffer {
  const end = headerBytes(buf);
  return end < buf.length ? buf.subarray(0, end) : buf;
}

/**
 * Whether two encoded records (either whole or withoutValue) are the same write in the same
 * form: their headers are the same bytes (a version names one write, hence one value). Compares
 * headers only, not values.
 */
export function sameWrite(a: Buffer, b: Buffer): boolean {
  const n = headerBytes(a);
  return n === headerBytes(b) && a.compare(b, 0, n, 0, n) === 0;
}

/**
 * Whether the encoded record `raw`, as a member answered a headers-only read (GetRequest.h), is
 * the record whole: a tombstone (it has no value), or one longer than its header (a member
 * before digest reads sends records whole). A live record of header length may have had its
 * value left out.
 */
export function isWholeAnswer(raw: Buffer): boolean {
  return raw.length > headerBytes(raw) || (raw.length > HEADER && (raw[1]! & FLAG_TOMBSTONE) !== 0);
}

function decodedValueStart(buf: Buffer, now: () => number): number {
  const r = decodeRecord(buf);
  return isLive(r, now()) ? buf.length - r.value.length : -1;
}

/**
 * The order of last-write-wins: the higher record wins everywhere (storage, read repair, scans,
 * hinted handoff, rebalancing, tombstone collection). Records order by the version of their value
 * (`base`, else `version`), then by `version`, then a tombstone above a live record of the same
 * versions (an expired record turned into a tombstone, see expiredForm). So an expiry change
 * made on a value never beats a later write of another value or a delete, and two expiry
 * changes of one value order by their own versions. Negative when a < b, positive when a > b,
 * 0 only for the same write in the same form.
 */
export function compareRecords(a: StoredRecord, b: StoredRecord): number {
  const byValue = compareVersions(a.base ?? a.version, b.base ?? b.version);
  if (byValue !== 0) return byValue;
  const byWrite = compareVersions(a.version, b.version);
  if (byWrite !== 0) return byWrite;
  return (a.tombstone ? 1 : 0) - (b.tombstone ? 1 : 0);
}

/**
 * compareRecords, but two copies of one tombstone (0 there) that took effect at different times
 * order by that (deletedAt): a copy that landed late on a replica is kept as taking effect then
 * (StorageOptions.lateLandingMs), and the store and anti-entropy take the later, so that the
 * copies become the same bytes. Which write wins is unchanged.
 */
export function compareCopies(a: StoredRecord, b: StoredRecord): number {
  const order = compareRecords(a, b);
  if (order !== 0 || !a.tombstone || !b.tombstone) return order;
  return Math.sign(deletedAt(a) - deletedAt(b));
}

/** Whether `r` holds a value at time `now` (ms since the epoch): not a tombstone, not expired. */
export function isLive(r: StoredRecord, now: number): boolean {
  return !r.tombstone && (r.expiresAt === undefined || r.expiresAt > now);
}

/**
 * The tombstone an expired record becomes: the same versions (so it sorts right above the
 * record and below every later write, see compareRecords), no value, the expiry kept (tombstone
 * collection counts its age from it). Every replica makes the same one from the same record.
 */
export function expiredForm(r: StoredRecord): StoredRecord {
  const t: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = {
    version: r.version,
    tombstone: true,
    value: Buffer.alloc(0),
  };
  if (r.expiresAt !== undefined) t.expiresAt = r.expiresAt;
  if (r.base !== undefined) t.base = r.base;
  return t;
}

/** When a tombstone took effect: its expiry for an expired record, else its version's time. */
export function deletedAt(r: StoredRecord): number {
  return r.expiresAt === undefined ? r.version.wall : Math.max(r.expiresAt, r.version.wall);
}

/**
 * Whether a record's wall time is in the valid range (see MAX_VALID_WALL), read from its header
 * without decoding the rest: reads use it to leave out records written before versions were
 * checked. A buffer too short to hold a header is not valid.
 */
export function validWall(raw: Buffer): boolean {
  return raw.length > HEADER && raw.readUIntBE(2, 6) <= MAX_VALID_WALL;
}
