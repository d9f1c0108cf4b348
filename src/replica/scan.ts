// This node's side of a peer scan: local records in key order, bounded, never an invalid version.

import { type Storage, validWall } from '../storage/index.ts';
import type { ScanReply, ScanRequest, WireEntry } from './messages.ts';

/**
 * Scans local storage for a peer: at most `l` entries and whether more remain. A record whose
 * version is out of range (written before versions were checked) is left out: never sent on.
 */
export function localScan(storage: Storage, req: Omit<ScanRequest, 'i' | 'o'>): ScanReply {
  const entries: WireEntry[] = [];
  let more = false;
  const bounds = { start: req.s, end: req.e, inclusiveEnd: req.ie, exclusiveStart: req.xs };
  for (const { key, raw } of storage.scan(bounds)) {
    if (entries.length === req.l) {
      more = true;
      break;
    }
    if (validWall(raw)) entries.push([key, raw]);
  }
  return { e: entries, more };
}
