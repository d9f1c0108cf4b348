// Offline check of a data directory: the write-ahead log's CRCs, the LMDB file's meta pages, and
// every LMDB entry (read in a child process, so a crash there is a finding, not the end).

import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { lmdbFileCheck } from './lmdb-check.ts';
import { lmdbTreeProblem } from './lmdb-tree.ts';
import { scanDir, segmentName } from './wal-recover.ts';

/** What verifyStore found: `problems` make the directory unusable as it is; `notes` do not. */
export interface StoreCheck {
  readonly problems: string[];
  readonly notes: string[];
  /** The metadata documents (`state`, `x:<name>`), for their owners' parsers; null if unread. */
  readonly metadata: Readonly<Record<string, unknown>> | null;
}

/** Checks `dir` (a node's --data-dir, not in use or in use: it only reads). */
export async function verifyStore(dir: string): Promise<StoreCheck> {
  const problems: string[] = [];
  const notes: string[] = [];
  const mdb = join(dir, 'data.mdb');
  const walDir = join(dir, 'wal');
  if (!existsSync(mdb) && !existsSync(walDir)) {
    return {
      problems: [`${dir} holds no data.mdb and no wal/: not a kvstore data directory`],
      notes,
      metadata: null,
    };
  }
  if (existsSync(walDir)) checkLog(walDir, problems, notes);
  if (!existsSync(mdb)) return { problems, notes, metadata: null };
  // The meta pages, then the trees and free list of the snapshot LMDB would open (what a start
  // after an unclean stop checks).
  const check = lmdbFileCheck(mdb);
  const fileProblem = check.problem ?? (check.opened ? lmdbTreeProblem(mdb, check.opened) : null);
  if (fileProblem !== null) {
    problems.push(`lmdb: ${mdb} is damaged: ${fileProblem}`);
    return { problems, notes, metadata: null };
  }
  const read = await readAll(dir);
  if ('failure' in read) {
    problems.push(`lmdb: reading every entry of ${mdb} failed: ${read.failure}`);
    return { problems, notes, metadata: null };
  }
  const mib = (statSync(mdb).size / 1048576).toFixed(1);
  notes.push(
    `lmdb: ${mdb} (${mib} MiB): ${read.records} records (${read.live} live, ${read.tombstones} tombstones), ${read.hints} hints`,
  );
  for (const bad of read.bad) problems.push(`lmdb: undecodable record at key ${bad}`);
  if (read.danglingIndex > 0) {
    notes.push(
      `lmdb: ${read.danglingIndex} tombstone index entries without a tombstone (collected at the next GC)`,
    );
  }
  return { problems, notes, metadata: read.metadata };
}

function checkLog(walDir: string, problems: string[], notes: string[]): void {
  const scan = scanDir(walDir);
  const records = scan.entries.length;
  notes.push(
    `wal: ${scan.segments.length} segments, ${records} records to replay at the next start`,
  );
  if (scan.torn) {
    const t = scan.torn;
    notes.push(
      `wal: torn last group in ${segmentName(t.segment)} at offset ${t.offset} (${t.records} records, never acknowledged; dropped at the next start)`,
    );
  }
  if (scan.corrupt) {
    const c = scan.corrupt;
    problems.push(
      `wal: damaged in ${join(walDir, segmentName(c.segment))} at offset ${c.offset} (${c.reason}), before the last group: ${c.droppedRecords} records would be lost (start with --wal-truncate-corrupt true to cut it there)`,
    );
  }
}

interface Summary {
  records: number;
  live: number;
  tombstones: number;
  bad: string[];
  danglingIndex: number;
  hints: number;
  metadata: Record<string, unknown>;
}

/** Runs verify-lmdb.ts (or its compiled .js, beside this module when compiled) on `dir` in a child process. */
function readAll(dir: string): Promise<Summary | { failure: string }> {
  const script = join(import.meta.dirname, `verify-lmdb${extname(import.meta.filename)}`);
  const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      if (signal !== null) resolve({ failure: `LMDB crashed (${signal}): the file is damaged` });
      else if (code !== 0) {
        const last =
          stderr
            .trim()
            .split('\n')
            .find((l) => /Error/.test(l)) ?? `exit code ${code}`;
        resolve({ failure: last });
      } else resolve(JSON.parse(stdout) as Summary);
    });
  });
}
