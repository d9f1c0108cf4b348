// Binary codec of a stored record: version, tombstone flag and value in one LMDB value.

import type { Version } from './hlc.ts';

/** What one key holds. A tombstone has an empty value and marks a delete at `version`. */
export interface StoredRecord {
  readonly version: Version;
  readonly tombstone: boolean;
  readonly value: Buffer;
}

const FORMAT = 1;
const FLAG_TOMBSTONE = 1;
const HEADER = 11; // format u8, flags u8, wall u48, logical u16, node length u8

/**
 * Layout: `[format=1][flags][wall: 6 bytes BE][logical: 2 bytes BE][node len][node][value]`.
 * Node names are at most 255 bytes of UTF-8 (the config enforces 253, a DNS name).
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

/** Decodes what encodeRecord wrote. Throws on an unknown format (a corrupt or foreign file). */
export function decodeRecord(buf: Buffer): StoredRecord {
  if (buf.length < HEADER || buf[0] !== FORMAT) {
    throw new Error(`storage: record has unknown format ${buf[0]} (${buf.length} bytes)`);
  }
  const nodeLen = buf[10]!;
  const version: Version = {
    wall: buf.readUIntBE(2, 6),
    logical: buf.readUInt16BE(8),
    node: buf.toString('utf8', HEADER, HEADER + nodeLen),
  };
  return {
    version,
    tombstone: (buf[1]! & FLAG_TOMBSTONE) !== 0,
    value: buf.subarray(HEADER + nodeLen),
  };
}
