// kvctl restore: checks a whole backup first, then writes it block by block through one node.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackupEntry,
  BLOCK_RECORDS,
  type Block,
  BlockReader,
  decodeRecords,
  encodeRecords,
} from '../backup/format.ts';
import { MANIFEST_FILE, type Manifest, ManifestSchema, RECORDS_FILE } from '../backup/manifest.ts';
import { extractTar } from '../backup/tar.ts';
import { decodeRecord } from '../storage/record.ts';
import type { AdminTarget } from './admin.ts';
import { adminFetch, Progress, writeSummary } from './backup-io.ts';
import type { CliOutput } from './commands.ts';

export interface RestoreCommand {
  /** A backup directory, or `-` for a tar stream on stdin. */
  readonly source: string;
  /** Restore into a cluster that holds data (the backup's records win by version). */
  readonly force: boolean;
  /** At most this many bytes of records per second (0: no limit). */
  readonly rateBytes: number;
  /** Where to write the outcome as JSON (see writeSummary). */
  readonly summaryFile?: string;
}

class Damaged extends Error {}

/** Records sent per request (a block of the file is cut into batches about this size). */
const BATCH_BYTES = 64 * 1024;

/** The entries of `block` in batches of about BATCH_BYTES (each at least one entry). */
function* batches(block: Block): Generator<BackupEntry[]> {
  let batch: BackupEntry[] = [];
  let size = 0;
  for (const e of decodeRecords(block.payload)) {
    if (batch.length > 0 && size + e[0].length + e[1].length > BATCH_BYTES) {
      yield batch;
      batch = [];
      size = 0;
    }
    batch.push(e);
    size += e[0].length + e[1].length;
  }
  if (batch.length > 0) yield batch;
}

/** The blocks of records.kvb, read as a stream, each checked (type and CRC). */
async function* blocks(path: string): AsyncGenerator<Block> {
  const reader = new BlockReader();
  for await (const chunk of createReadStream(path)) {
    reader.push(chunk as Buffer);
    for (let b = reader.next(); b !== null; b = reader.next()) {
      if (b.type !== BLOCK_RECORDS)
        throw new Damaged(`${RECORDS_FILE} holds a block of type ${b.type}`);
      yield b;
    }
  }
  if (reader.pending > 0) throw new Damaged(`${RECORDS_FILE} ends inside a block (cut short)`);
}

/**
 * Checks a backup directory completely before anything is written: MANIFEST.json is there
 * and valid, records.kvb has the size and SHA-256 it names, every block passes its CRC, every
 * record decodes, keys ascend, and the counts match. Throws Damaged naming the first problem.
 */
export async function verifyBackup(dir: string): Promise<{ manifest: Manifest; id: string }> {
  const manifestPath = join(dir, MANIFEST_FILE);
  if (!existsSync(manifestPath)) {
    throw new Damaged(`no ${MANIFEST_FILE}: not a complete backup (one cut short has none)`);
  }
  let manifest: Manifest;
  try {
    manifest = ManifestSchema.parse(JSON.parse(readFileSync(manifestPath, 'utf8')));
  } catch (err) {
    throw new Damaged(
      `${MANIFEST_FILE} is not a kvstore backup manifest: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const file = manifest.files[0]!;
  const path = join(dir, file.name);
  if (!existsSync(path)) throw new Damaged(`${file.name} is missing`);
  const size = statSync(path).size;
  if (size !== file.bytes)
    throw new Damaged(`${file.name} has ${size} bytes, the manifest says ${file.bytes}`);
  const hash = createHash('sha256');
  let records = 0;
  let tombstones = 0;
  let last: Buffer | null = null;
  try {
    for await (const b of blocks(path)) {
      hash.update(b.bytes);
      for (const [key, raw] of decodeRecords(b.payload)) {
        if (last !== null && Buffer.compare(last, key) >= 0) throw new Damaged('keys out of order');
        last = key;
        if (decodeRecord(raw).tombstone) tombstones++;
        records++;
      }
    }
  } catch (err) {
    if (err instanceof Damaged) throw err;
    throw new Damaged(`${file.name}: ${(err as Error).message}`);
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== file.sha256)
    throw new Damaged(`${file.name} does not match its SHA-256 in the manifest`);
  if (records !== manifest.records || tombstones !== manifest.tombstones) {
    throw new Damaged(
      `${file.name} holds ${records} records (${tombstones} tombstones), the manifest says ${manifest.records} (${manifest.tombstones})`,
    );
  }
  return { manifest, id: sha256.slice(0, 32) };
}

/**
 * Restores a backup: verifyBackup, then POST /admin/restore/begin (refused when the cluster holds
 * other data, unless --force; the same backup interrupted before is resumed), each records block
 * to /admin/restore/batch (the node writes every record, version kept, to all its owners), then
 * /admin/restore/end. A failure midway says how to finish: run the same command again.
 */
export async function restore(
  admin: AdminTarget,
  cmd: RestoreCommand,
  out: CliOutput,
): Promise<number> {
  const fromStdin = cmd.source === '-';
  const dir = fromStdin ? mkdtempSync(join(tmpdir(), 'kvctl-restore-')) : cmd.source;
  let done = 0;
  let total = 0;
  let began = false;
  try {
    let checked: { manifest: Manifest; id: string };
    try {
      if (fromStdin) await extractTar(process.stdin, dir, new Set([RECORDS_FILE, MANIFEST_FILE]));
      checked = await verifyBackup(dir);
    } catch (err) {
      const where = fromStdin ? 'the backup on stdin' : dir;
      const error = `restore: ${where} is not usable: ${(err as Error).message}; nothing was restored`;
      out.stderr.write(`kvctl: ${error}\n`);
      writeSummary(cmd.summaryFile, { ok: false, error });
      return 1;
    }
    const { manifest, id } = checked;
    total = manifest.records;
    const begin = (await (
      await adminFetch(
        admin,
        'POST',
        '/admin/restore/begin',
        JSON.stringify({ id, force: cmd.force }),
      )
    ).json()) as { members: string[]; replicationFactor: number; resumed: boolean };
    began = true;
    out.stderr.write(
      `restore: ${total} records (backup of ${manifest.cluster.members.length} members, RF ${manifest.cluster.replicationFactor}, epoch ${manifest.cluster.epoch}) into ${begin.members.join(',')} (RF ${begin.replicationFactor})${begin.resumed ? ', resuming an interrupted restore' : ''}\n`,
    );
    const progress = new Progress(out.stderr, 'restore', total);
    const started = performance.now();
    let bytes = 0;
    for await (const block of blocks(join(dir, RECORDS_FILE))) {
      for (const batch of batches(block)) {
        const body = encodeRecords(batch);
        await adminFetch(admin, 'POST', '/admin/restore/batch', body);
        done += batch.length;
        bytes += body.length;
        progress.update(done, bytes);
        if (cmd.rateBytes > 0) {
          const due = (bytes / cmd.rateBytes) * 1000 - (performance.now() - started);
          if (due > 0) await new Promise((r) => setTimeout(r, due));
        }
      }
    }
    progress.done(done, bytes);
    await adminFetch(admin, 'POST', '/admin/restore/end', JSON.stringify({ id }));
    out.stdout.write(
      `restore: ${done} records (${manifest.liveKeys} keys, ${manifest.tombstones} tombstones) restored into ${begin.members.join(',')}\n`,
    );
    const { liveKeys: keys, tombstones } = manifest;
    writeSummary(cmd.summaryFile, { ok: true, records: done, keys, tombstones });
    return 0;
  } catch (err) {
    const why = (err as Error).message.replace(/^restore: /, '');
    const next = began
      ? `; stopped after ${done} of ${total} records: run the same command again to finish it (records keep their versions, so writing them again is safe)`
      : '';
    out.stderr.write(`kvctl: restore: ${why}${next}\n`);
    writeSummary(cmd.summaryFile, { ok: false, error: `restore: ${why}${next}` });
    return 1;
  } finally {
    if (fromStdin) rmSync(dir, { recursive: true, force: true });
  }
}
