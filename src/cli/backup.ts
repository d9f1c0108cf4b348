// kvctl backup: streams GET /admin/backup into a directory (or a tar on stdout), manifest last.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackupHeader,
  type BackupTrailer,
  BLOCK_HEADER,
  BLOCK_RECORDS,
  BLOCK_TRAILER,
  BlockReader,
  decodeRecords,
} from '../backup/format.ts';
import { MANIFEST_FILE, type Manifest, RECORDS_FILE } from '../backup/manifest.ts';
import { writeTar } from '../backup/tar.ts';
import { decodeRecord } from '../storage/record.ts';
import type { AdminTarget } from './admin.ts';
import { adminFetch, Progress, writeSummary } from './backup-io.ts';
import type { CliOutput } from './commands.ts';

export interface BackupCommand {
  /**
   * A directory (created; must be empty), or `-` for a tar stream on stdout. `{time}` in it is
   * replaced with the start time (UTC, `20261203T174500Z`), for scheduled backups.
   */
  readonly target: string;
  /** Back up only this member's records. */
  readonly node?: string;
  /** Where to write the outcome as JSON (see writeSummary). */
  readonly summaryFile?: string;
}

/** `2026-12-03T17:45:00.123Z` -> `20261203T174500Z`. */
function stamp(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
}

/** Fsyncs a directory, so the names created in it are durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Runs a backup into `cmd.target`: records.kvb as the blocks arrive, then MANIFEST.json (written
 * to a temporary name, synced, renamed, directory synced) once the node's trailer says the
 * stream is complete. On any failure (the node's error, a cut stream, a full disk) the files it
 * made are removed, so nothing partial is left that could pass for a backup; and even if removal
 * fails, a directory without MANIFEST.json is refused by restore. Exit code 0 or 1.
 */
export async function backup(
  admin: AdminTarget,
  cmd: BackupCommand,
  out: CliOutput,
): Promise<number> {
  const toStdout = cmd.target === '-';
  const target = cmd.target.replaceAll('{time}', stamp(new Date()));
  const dir = toStdout ? mkdtempSync(join(tmpdir(), 'kvctl-backup-')) : target;
  const created = !existsSync(dir);
  if (!toStdout && !created && readdirSync(dir).length > 0) {
    const error = `backup: ${dir} is not empty; give a new or empty directory`;
    out.stderr.write(`kvctl: ${error}\n`);
    writeSummary(cmd.summaryFile, { ok: false, error });
    return 1;
  }
  mkdirSync(dir, { recursive: true });
  const made: string[] = [];
  let fh: FileHandle | null = null;
  try {
    const path = `/admin/backup${cmd.node ? `?node=${encodeURIComponent(cmd.node)}` : ''}`;
    const res = await adminFetch(admin, 'GET', path);
    const recordsPath = join(dir, RECORDS_FILE);
    fh = await open(recordsPath, 'wx');
    made.push(recordsPath);
    const got = await receive(res, fh, out);
    await fh.sync();
    await fh.close();
    fh = null;
    const { header, trailer, bytes, sha256 } = got;
    const manifest: Manifest = {
      kind: 'kvstore-backup',
      format: 1,
      scope: header.scope,
      via: header.via,
      startedAt: header.snapshots.map((s) => s.at).sort()[0] ?? trailer.finishedAt,
      finishedAt: trailer.finishedAt,
      cluster: {
        epoch: header.epoch,
        members: [...header.members],
        replicationFactor: header.replicationFactor,
      },
      snapshots: [...header.snapshots],
      records: trailer.records,
      liveKeys: trailer.liveKeys,
      tombstones: trailer.tombstones,
      files: [{ name: RECORDS_FILE, bytes, sha256 }],
    };
    const tmp = join(dir, `${MANIFEST_FILE}.tmp`);
    made.push(tmp);
    const mf = await open(tmp, 'wx');
    try {
      await mf.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
      await mf.sync();
    } finally {
      await mf.close();
    }
    await rename(tmp, join(dir, MANIFEST_FILE));
    made.push(join(dir, MANIFEST_FILE));
    await syncDir(dir);
    const summary = `backup: ${trailer.records} records (${trailer.liveKeys} keys, ${trailer.tombstones} tombstones), ${bytes} bytes, settled-ring epoch ${header.epoch}, members ${header.members.join(',')}${toStdout ? '' : ` -> ${dir}`}\n`;
    if (toStdout) {
      await writeTar(process.stdout, [recordsPath, join(dir, MANIFEST_FILE)]);
      out.stderr.write(summary);
    } else {
      out.stdout.write(summary);
    }
    const { records, liveKeys, tombstones } = trailer;
    writeSummary(cmd.summaryFile, {
      ok: true,
      ...(toStdout ? {} : { path: dir }),
      records,
      keys: liveKeys,
      tombstones,
      bytes,
      epoch: header.epoch,
    });
    return 0;
  } catch (err) {
    await fh?.close().catch(() => {});
    if (!toStdout) for (const f of made) await rm(f, { force: true }).catch(() => {});
    if (!toStdout && created) rmSync(dir, { recursive: true, force: true });
    const why = err instanceof Error ? err.message : String(err);
    const error = `${why.startsWith('backup:') ? '' : 'backup: '}${why}; no backup was kept`;
    out.stderr.write(`kvctl: ${error}\n`);
    writeSummary(cmd.summaryFile, { ok: false, error });
    return 1;
  } finally {
    if (toStdout) rmSync(dir, { recursive: true, force: true });
  }
}

interface Received {
  header: BackupHeader;
  trailer: Extract<BackupTrailer, { ok: true }>;
  bytes: number;
  sha256: string;
}

/** Reads the node's stream: header, records blocks into `fh` (checked), trailer. */
async function receive(res: Response, fh: FileHandle, out: CliOutput): Promise<Received> {
  const reader = new BlockReader();
  const hash = createHash('sha256');
  let header: BackupHeader | null = null;
  let trailer: BackupTrailer | null = null;
  let bytes = 0;
  let records = 0;
  let last: Buffer | null = null;
  const progress = new Progress(out.stderr, 'backup');
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    reader.push(Buffer.from(chunk));
    for (let b = reader.next(); b !== null; b = reader.next()) {
      if (trailer !== null) throw new Error('backup: data after the trailer');
      if (b.type === BLOCK_HEADER) {
        if (header !== null) throw new Error('backup: a second header');
        header = JSON.parse(b.payload.toString('utf8')) as BackupHeader;
        continue;
      }
      if (header === null) throw new Error('backup: the stream does not start with a header');
      if (b.type === BLOCK_TRAILER) {
        trailer = JSON.parse(b.payload.toString('utf8')) as BackupTrailer;
        continue;
      }
      if (b.type !== BLOCK_RECORDS) continue;
      for (const [key, raw] of decodeRecords(b.payload)) {
        if (last !== null && Buffer.compare(last, key) >= 0)
          throw new Error('backup: keys out of order');
        decodeRecord(raw);
        last = key;
        records++;
      }
      await fh.write(b.bytes);
      hash.update(b.bytes);
      bytes += b.bytes.length;
      progress.update(records, bytes);
    }
  }
  progress.done(records, bytes);
  if (trailer === null || reader.pending > 0) {
    throw new Error(
      'backup: the stream from the node ended early (node stopped or connection lost)',
    );
  }
  if (!trailer.ok) throw new Error(trailer.error);
  if (trailer.records !== records) {
    throw new Error(`backup: the node counted ${trailer.records} records, ${records} arrived`);
  }
  return { header: header!, trailer, bytes, sha256: hash.digest('hex') };
}
