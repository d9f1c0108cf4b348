// Byte-order helpers for key ranges.

import type { ScanBounds } from '../storage/index.ts';

/**
 * The smallest key greater than every key that starts with `prefix`, or null when there is none
 * (the prefix is all 0xff bytes). PREFIX p scans [p, successorOfPrefix(p)).
 */
export function successorOfPrefix(prefix: Buffer): Buffer | null {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return null;
  const out = Buffer.from(prefix.subarray(0, end));
  out[end - 1]! += 1;
  return out;
}

/** Narrows bounds to keys strictly after `cursor`; null when nothing is left. */
export function applyCursor(bounds: ScanBounds, cursor: Buffer | null): ScanBounds | null {
  if (cursor === null || Buffer.compare(cursor, bounds.start) < 0) return bounds;
  // Nothing lies after a cursor at or past the end, whether the end is inclusive or not.
  if (bounds.end !== null && Buffer.compare(cursor, bounds.end) >= 0) return null;
  return { ...bounds, start: cursor, exclusiveStart: true };
}
