// Binary codec of a stored record: version, tombstone flag and value in one LMDB value.

import { KvError } from '../errors/index.ts';
import { MAX_VALID_WALL, type Version } from './hlc.ts';

/** What one key holds. A tombstone has an empty value and marks a delete at `version`. */
export interface StoredRecord {
  readonly version: Version;
  readonly tombstone: boolean;
  readonly value: Buffer;
}

/** Longest key LMDB stores (its compiled-in limit): no peer may send a longer one. */
export const MAX_KEY_BYTES = 1978;

const FORMAT = 1;
const FLAG_TOMBSTONE = 1;
/** Bytes before the node name: format u8, flags u8, wall u48, logical u16, node length u8. */
export const RECORD_HEADER_BYTES = 11;
const HEADER = RECORD_HEADER_BYTES;

/**
 * Layout: `[format=1][flags][wall: 6 bytes BE][logical: 2 bytes BE][node len][node][value]`.
 * Node names are 1 to 255 bytes of UTF-8 (the config enforces 253, a DNS name). A tombstone
 * carries no value.
 */
export function encodeRecord(r: StoredRecord): Buffer {
  const node = Buffer.from(r.version.node, 'utf8');
  const out = Buffer.allocUnsafe(HEADER + node.length + r.value.length);
  out[0] = FORMAT;
  out[1] = r.tombstone ? FLAG_TOMBSTONE : 0;
  out.writeUIntBE(r.version.wall, 2, 6);
  out.writeUInt16BE(r.version.logical, 8);
  out[10] = node.length;
  node.copy(out, HEADER);
  r.value.copy(out, HEADER + node.length);
  return out;
}

function bad(why: string, buf: Buffer): KvError {
  return new KvError('KV_ERR_BAD_RECORD', `storage: record of ${buf.length} bytes ${why}`);
}

/**
 * Decodes what encodeRecord wrote, checking every length: throws KvError KV_ERR_BAD_RECORD for
 * fewer than 12 bytes, an unknown format or flag, a node length of 0 or past the end, a node name
 * that is not UTF-8 (or holds U+FFFD), or a tombstone with a value. The version's range is not checked here (see
 * isValidVersion): a record written before that check existed must still be readable.
 * The value is a view into `buf`.
 */
export function decodeRecord(buf: Buffer): StoredRecord {
  if (buf.length <= HEADER) throw bad('is shorter than its header and node name', buf);
  if (buf[0] !== FORMAT) throw bad(`has unknown format ${buf[0]}`, buf);
  const flags = buf[1]!;
  if ((flags & ~FLAG_TOMBSTONE) !== 0) throw bad(`has unknown flags ${flags}`, buf);
  const nodeLen = buf[10]!;
  const end = HEADER + nodeLen;
  if (nodeLen === 0 || end > buf.length) {
    throw bad(`has a node length of ${nodeLen} past its end`, buf);
  }
  const node = buf.toString('utf8', HEADER, end);
  // Invalid UTF-8 decodes to U+FFFD, which no node name contains (cheaper than isUtf8()).
  if (node.includes('\uFFFD')) throw bad('has a node name that is not UTF-8', buf);
  const tombstone = (flags & FLAG_TOMBSTONE) !== 0;
  if (tombstone && end !== buf.length) throw bad('is a tombstone with a value', buf);
  const version: Version = {
    wall: buf.readUIntBE(2, 6),
    logical: buf.readUInt16BE(8),
    node,
  };
  return { version, tombstone, value: buf.subarray(end) };
}

/**
 * Whether a record's wall time is in the valid range (see MAX_VALID_WALL), read from its header
 * without decoding the rest: reads use it to leave out records written before versions were
 * checked. A buffer too short to hold a header is not valid.
 */
export function validWall(raw: Buffer): boolean {
  return raw.length > HEADER && raw.readUIntBE(2, 6) <= MAX_VALID_WALL;
}
