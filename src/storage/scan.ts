// Ordered scans: LMDB's range merged with the writes LMDB has not committed yet.

import type { QueuedWrites } from './queued-writes.ts';
import { decodeRecord, type StoredRecord } from './record.ts';

/** Bounds of an ordered scan, on raw key bytes. */
export interface ScanBounds {
  /** First key (inclusive unless `exclusiveStart`). */
  readonly start: Buffer;
  /**
   * Last key: exclusive by default, inclusive with `inclusiveEnd`; null scans to the end. An
   * empty one is the empty key, before every stored key: the scan finds nothing.
   */
  readonly end: Buffer | null;
  readonly inclusiveEnd?: boolean;
  readonly exclusiveStart?: boolean;
}

export interface ScannedRecord {
  readonly key: Buffer;
  /** The record decoded, on first use (callers that pass `raw` on never decode it). */
  readonly record: StoredRecord;
  /** The record as stored (encodeRecord bytes): what peers send each other. */
  readonly raw: Buffer;
}

/** A scanned entry whose record is decoded when first asked for. */
class Scanned implements ScannedRecord {
  readonly key: Buffer;
  readonly raw: Buffer;
  #record: StoredRecord | null = null;

  constructor(key: Buffer, raw: Buffer) {
    this.key = key;
    this.raw = raw;
  }

  get record(): StoredRecord {
    this.#record ??= decodeRecord(this.raw);
    return this.#record;
  }
}

/** A queued delete of a key. */
export class QueuedDelete {}

/** What a key's queued write is: the record bytes (encodeRecord), or a delete. */
export type Queued = Buffer | QueuedDelete;

/** A write LMDB has not committed yet: the record bytes, or null for a delete. */
interface Pending {
  readonly key: Buffer;
  readonly raw: Buffer | null;
}

/**
 * The queued writes within `bounds`, in key order: `queued` are tables of them from the oldest to
 * the newest, a key's newest write wins. Only the entries inside are kept, by their latin1 string
 * (one char per byte, so string order is byte order), which keeps a scan cheap while many writes
 * wait for LMDB.
 */
export function overlayWithin(queued: readonly QueuedWrites[], bounds: ScanBounds): Pending[] {
  const { start, end } = bounds;
  const inside = new Map<string, Pending>();
  for (const writes of queued) {
    for (const [key, e] of writes) {
      const s = Buffer.compare(key, start);
      if (s < 0 || (s === 0 && bounds.exclusiveStart)) continue;
      if (end !== null) {
        const c = Buffer.compare(key, end);
        if (c > 0 || (c === 0 && !bounds.inclusiveEnd)) continue;
      }
      inside.set(key.toString('latin1'), { key, raw: e instanceof QueuedDelete ? null : e });
    }
  }
  const out = [...inside.keys()].sort();
  return out.map((k) => inside.get(k)!);
}

/** `range` (ascending) with `overlay` (ascending) merged in: an overlay entry shadows its key. */
export function* mergeOverlay(
  range: Iterable<{ key: Buffer; value: Buffer }>,
  overlay: readonly Pending[],
): Generator<ScannedRecord> {
  let i = 0;
  for (const { key, value } of range) {
    let shadowed = false;
    while (i < overlay.length) {
      const c = Buffer.compare(overlay[i]!.key, key);
      if (c > 0) break;
      const o = overlay[i++]!;
      if (o.raw !== null) yield new Scanned(o.key, o.raw);
      if (c === 0) {
        shadowed = true;
        break;
      }
    }
    if (!shadowed) yield new Scanned(key, value);
  }
  for (; i < overlay.length; i++) {
    const o = overlay[i]!;
    if (o.raw !== null) yield new Scanned(o.key, o.raw);
  }
}
