// This node's side of a peer scan: local records in key order, bounded, never an invalid version.

import { type Storage, validWall, withoutValue } from '../storage/index.ts';
import { SCAN_REPLY_BYTES, type ScanReply, type ScanRequest, type WireEntry } from './messages.ts';

/**
 * Scans local storage for a peer: at most `l` entries, and at most SCAN_REPLY_BYTES of keys and
 * records (at least one entry), and whether more remain. With `h`, each record without its value.
 * A record whose version is out of range (written before versions were checked) is left out:
 * never sent on.
 */
export function localScan(storage: Storage, req: Omit<ScanRequest, 'i' | 'o'>): ScanReply {
  const entries: WireEntry[] = [];
  let bytes = 0;
  let more = false;
  const bounds = { start: req.s, end: req.e, inclusiveEnd: req.ie, exclusiveStart: req.xs };
  for (const { key, raw } of storage.scan(bounds)) {
    if (entries.length === req.l || bytes >= SCAN_REPLY_BYTES) {
      more = true;
      break;
    }
    if (!validWall(raw)) continue;
    // A copy of the header: a view would keep each whole value alive until the reply is sent.
    const header = req.h === true ? withoutValue(raw) : raw;
    const record = header === raw ? raw : Buffer.from(header);
    entries.push([key, record]);
    bytes += key.length + record.length;
  }
  return { e: entries, more };
}
