// The expiry index: one entry per live record that expires, ordered by expiry time then key.

/** Index key: the expiry (8 bytes, big-endian ms since the epoch) followed by the record's key. */
export function expiryIndexKey(expiresAt: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + key.length);
  out.writeBigUInt64BE(BigInt(expiresAt), 0);
  key.copy(out, 8);
  return out;
}

/** The expiry and the record key of an index key (the key is a view into `indexKey`). */
export function parseExpiryIndexKey(indexKey: Buffer): { expiresAt: number; key: Buffer } {
  return { expiresAt: Number(indexKey.readBigUInt64BE(0)), key: indexKey.subarray(8) };
}

/** The first index key after every entry that expires at or before `now`. */
export function dueEnd(now: number): Buffer {
  return expiryIndexKey(Math.max(0, Math.floor(now)) + 1, Buffer.alloc(0));
}

/** The first index key. */
export const INDEX_START = Buffer.alloc(8);
