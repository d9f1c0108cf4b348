// Reads every entry of a data directory's LMDB environment and prints a JSON summary: run by
// verifyStore in a child process, so that a damaged file that crashes LMDB (a signal) is
// reported instead of ending the caller. Usage: node verify-lmdb.ts <data-dir>

import { join } from 'node:path';
import { open } from 'lmdb';
import { LMDB_ENV_OPTIONS, LMDB_OVERLAPPING_ENV_OPTIONS, lmdbFileCheck } from './lmdb-check.ts';
import { decodeRecord } from './record.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: verify-lmdb.ts <data-dir>');
// The store's options, so that the snapshot read is the one the node would open. // A file an overlapping-sync commit left unflushed is read as the node will open it: its flushed
// snapshot (read-only, lmdb-js opens that snapshot without writing).
const check = lmdbFileCheck(join(dir, 'data.mdb'));
const needsRollback = check.problem === null && check.opened?.rollback === true;
const root = open({
  path: dir,
  ...(needsRollback ? LMDB_OVERLAPPING_ENV_OPTIONS : LMDB_ENV_OPTIONS),
  readOnly: true,
});
const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
const data = root.openDB<Buffer, Buffer>({ name: 'data', ...binary });
const tombs = root.openDB<Buffer, Buffer>({ name: 'tombstones', ...binary });
const hints = root.openDB<Buffer, Buffer>({ name: 'hints', ...binary });
const meta = root.openDB<unknown, string>({ name: 'meta', encoding: 'json' });

const out = { records: 0, live: 0, tombstones: 0, bad: [] as string[], danglingIndex: 0, hints: 0 };
const tombstoneKeys = new Set<string>();
for (const { key, value } of data.getRange({})) {
  out.records++;
  try {
    const r = decodeRecord(value);
    if (r.tombstone) {
      out.tombstones++;
      tombstoneKeys.add(key.toString('hex'));
    } else out.live++;
  } catch (err) {
    if (out.bad.length < 10) out.bad.push(`${key.toString('hex')}: ${(err as Error).message}`);
  }
}
for (const { key } of tombs.getRange({})) {
  if (!tombstoneKeys.has(key.toString('hex'))) out.danglingIndex++;
}
for (const _ of hints.getRange({})) out.hints++;
const metadata: Record<string, unknown> = {};
for (const { key, value } of meta.getRange({})) metadata[String(key)] = value;
process.stdout.write(`${JSON.stringify({ ...out, metadata })}\n`);
await root.close();
