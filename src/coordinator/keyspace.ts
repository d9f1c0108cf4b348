// Byte-order helpers for key ranges.

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
