// The node's backup and restore endpoints on the HTTP port (admin, authenticated like the others).

import type { ServerResponse } from 'node:http';
import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import type { BodyReader, Logger, StreamRoute } from '../observability/index.ts';
import type { Replicas, WireEntry } from '../replica/index.ts';
import { decodeRecord, MAX_KEY_BYTES } from '../storage/index.ts';
import {
  type BackupHeader,
  type BackupTrailer,
  BLOCK_HEADER,
  BLOCK_PREFIX_BYTES,
  BLOCK_RECORDS,
  BLOCK_TRAILER,
  BlockReader,
  decodeRecords,
  encodeRecords,
  jsonBlock,
  MAX_BLOCK_BYTES,
  TARGET_BLOCK_BYTES,
} from './format.ts';
import { type MemberCall, SnapshotMerge } from './merge.ts';
import { BACKUP_METHODS, type BackupSessions, type RestoreState } from './sessions.ts';

export interface BackupRoutesOptions {
  readonly self: string;
  readonly sessions: BackupSessions;
  /** A peer method on another member. */
  readonly call: MemberCall;
  readonly topology: Topology;
  readonly replicas: Replicas;
  readonly logger: Logger;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * `GET /admin/backup[?node=NAME]`: a backup stream (format.ts) of every member's records merged
 * (or NAME's only). 409 while the ring moves, 404 for a NAME that is no member, 503 when a
 * member cannot be read; once the stream started, a failure ends it with an error trailer.
 * `POST /admin/restore/begin` `{id, force}`, `/admin/restore/batch` (one RECORDS block),
 * `/admin/restore/end` `{id}`: see the handlers.
 */
export function backupRoutes(o: BackupRoutesOptions): Record<string, StreamRoute> {
  const local = o.sessions.methods();
  const call: MemberCall = async (member, method, body) =>
    member === o.self ? local[method]!(body) : o.call(member, method, body);
  return {
    'GET /admin/backup': (_req, res, query) => streamBackup(o, call, res, query.get('node')),
    'POST /admin/restore/begin': (_req, res, _query, body) => restoreBegin(o, call, res, body),
    'POST /admin/restore/batch': (_req, res, _query, body) => restoreBatch(o, res, body),
    'POST /admin/restore/end': (_req, res, _query, body) => restoreEnd(o, call, res, body),
  };
}

/** Writes `buf`, waiting while the client's socket is full; false once the client is gone. */
async function send(res: ServerResponse, buf: Buffer): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(buf)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
  return !res.destroyed;
}

async function streamBackup(
  o: BackupRoutesOptions,
  call: MemberCall,
  res: ServerResponse,
  node: string | null,
): Promise<void> {
  const t = o.topology;
  if (t.moving) {
    return reply(res, 409, {
      error: 'backup: the ring is moving (data is being rebalanced); back up once it settles',
    });
  }
  const members = node === null ? [...t.target.members] : [node];
  if (node !== null && !t.target.members.includes(node)) {
    return reply(res, 404, { error: `backup: ${node} is not a member` });
  }
  const transfer = t.transferId;
  const epoch = t.settledRing.epoch;
  const merge = new SnapshotMerge(members, call);
  try {
    await merge.open();
  } catch (err) {
    await merge.close();
    return reply(res, 503, { error: `backup: cannot read every member: ${message(err)}` });
  }
  const header: BackupHeader = {
    format: 1,
    scope: node === null ? 'cluster' : 'node',
    via: o.self,
    epoch,
    members,
    replicationFactor: t.rf(t.target),
    snapshots: merge.snapshots(),
  };
  o.logger.info({ scope: header.scope, members, epoch }, 'backup started');
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let trailer: BackupTrailer;
  try {
    if (!(await send(res, jsonBlock(BLOCK_HEADER, header)))) throw new Error('client went away');
    let batch: WireEntry[] = [];
    let size = 0;
    let records = 0;
    let tombstones = 0;
    const flush = async () => {
      if (batch.length > 0 && !(await send(res, encodeRecords(batch))))
        throw new Error('client went away');
      if (t.transferId !== transfer) {
        throw new Error('the ring changed during the backup; run it again once the ring settles');
      }
      batch = [];
      size = 0;
    };
    for await (const m of merge.records()) {
      batch.push([m.entry[0], m.entry[1]]);
      size += m.entry[0].length + m.entry[1].length;
      records++;
      if (m.tombstone) tombstones++;
      if (size >= TARGET_BLOCK_BYTES) await flush();
    }
    await flush();
    const finishedAt = new Date().toISOString();
    trailer = { ok: true, records, liveKeys: records - tombstones, tombstones, finishedAt };
    o.logger.info({ records, tombstones }, 'backup finished');
  } catch (err) {
    trailer = { ok: false, error: `backup: ${message(err)}` };
    o.logger.warn({ err }, 'backup failed');
  } finally {
    await merge.close();
  }
  if (!res.destroyed) res.end(jsonBlock(BLOCK_TRAILER, trailer));
}

/** `{id, force?}` / `{id}` bodies: the restore's id (1 to 64 characters). */
async function restoreRequest(
  res: ServerResponse,
  body: BodyReader,
): Promise<{ id: string; force: boolean } | null> {
  const raw = await body(64 * 1024);
  if (raw === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    parsed = null;
  }
  const p = parsed as { id?: unknown; force?: unknown } | null;
  if (typeof p?.id !== 'string' || p.id.length < 1 || p.id.length > 64) {
    reply(res, 400, { error: 'restore: body must be {"id": "<1 to 64 characters>"}' });
    return null;
  }
  return { id: p.id, force: p.force === true };
}

function readState(member: string, v: unknown): RestoreState {
  const s = v as Partial<RestoreState> | null;
  if (
    typeof s?.keys !== 'number' ||
    typeof s.tombstones !== 'number' ||
    (s.restoring !== null && typeof s.restoring !== 'string')
  ) {
    throw new KvError('KV_ERR_PEER_PROTOCOL', `restore: ${member} sent a malformed state`);
  }
  return { keys: s.keys, tombstones: s.tombstones, restoring: s.restoring };
}

/**
 * Checks that the cluster is empty, or that a restore with the same id marked some member (it
 * was interrupted, or its end was: running it again resumes it), then marks every member as
 * being restored by `id`.
 * 409 when some member holds other data (unless `force`) or the ring moves.
 */
async function restoreBegin(
  o: BackupRoutesOptions,
  call: MemberCall,
  res: ServerResponse,
  body: BodyReader,
): Promise<void> {
  const r = await restoreRequest(res, body);
  if (r === null) return;
  const t = o.topology;
  if (t.moving) {
    return reply(res, 409, { error: 'restore: the ring is moving; restore once it settles' });
  }
  const members = [...t.target.members];
  const states = await Promise.all(
    members.map(async (m) => readState(m, await call(m, BACKUP_METHODS.restoreState, {}))),
  );
  // A member marked by this same restore: it was interrupted (or its end was), and runs again.
  const resumed = states.some((s) => s.restoring === r.id);
  const busy = resumed
    ? []
    : members.map((m, i) => ({ m, s: states[i]! })).filter(({ s }) => s.keys + s.tombstones > 0);
  if (busy.length > 0 && !r.force) {
    const what = busy.map(({ m, s }) => `${m} holds ${s.keys} keys, ${s.tombstones} tombstones`);
    return reply(res, 409, {
      error: `restore: the cluster is not empty (${what.join('; ')}); --force writes the backup over it`,
    });
  }
  await Promise.all(members.map((m) => call(m, BACKUP_METHODS.restoreState, { set: r.id })));
  o.logger.info({ id: r.id, members, resumed, force: r.force }, 'restore started');
  reply(res, 200, {
    members,
    epoch: t.settledRing.epoch,
    replicationFactor: t.rf(t.target),
    resumed,
  });
}

/**
 * One RECORDS block: every record is checked (decodeRecord, key length), then written, version
 * kept, to every owner of its key in the current rings; 200 once all of them have it durably,
 * 400 for a bad block (nothing written), 503 when an owner did not take it.
 */
async function restoreBatch(
  o: BackupRoutesOptions,
  res: ServerResponse,
  body: BodyReader,
): Promise<void> {
  const raw = await body(MAX_BLOCK_BYTES + BLOCK_PREFIX_BYTES);
  if (raw === null) return;
  const byOwner = new Map<string, WireEntry[]>();
  let n = 0;
  try {
    const reader = new BlockReader();
    reader.push(raw);
    const block = reader.next();
    if (block === null || block.type !== BLOCK_RECORDS || reader.pending !== 0) {
      throw new KvError('KV_ERR_BACKUP', 'restore: body must be exactly one records block');
    }
    for (const [key, rec] of decodeRecords(block.payload)) {
      if (key.length > MAX_KEY_BYTES) {
        throw new KvError('KV_ERR_BACKUP', `restore: key of ${key.length} bytes`);
      }
      decodeRecord(rec);
      n++;
      for (const owner of o.topology.place(key).all) {
        const list = byOwner.get(owner);
        if (list) list.push([key, rec]);
        else byOwner.set(owner, [[key, rec]]);
      }
    }
  } catch (err) {
    return reply(res, 400, { error: message(err) });
  }
  // Placed in this turn, under these rings: an owner that routes by others passes them on.
  const how = { rings: o.topology.placementId, bulk: true };
  const results = await Promise.allSettled(
    [...byOwner].map(([owner, entries]) => o.replicas.apply(owner, entries, undefined, how)),
  );
  const failed = [...byOwner.keys()].filter((_, i) => results[i]!.status === 'rejected');
  if (failed.length > 0) {
    const why = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    return reply(res, 503, {
      error: `restore: ${failed.join(', ')} did not take the batch: ${message(why.reason)}`,
    });
  }
  reply(res, 200, { records: n });
}

/** Clears the restore marker `id` on every member that has it. */
async function restoreEnd(
  o: BackupRoutesOptions,
  call: MemberCall,
  res: ServerResponse,
  body: BodyReader,
): Promise<void> {
  const r = await restoreRequest(res, body);
  if (r === null) return;
  const members = [...o.topology.target.members];
  await Promise.all(
    members.map(async (m) => {
      const s = readState(m, await call(m, BACKUP_METHODS.restoreState, {}));
      if (s.restoring === r.id) await call(m, BACKUP_METHODS.restoreState, { set: null });
    }),
  );
  o.logger.info({ id: r.id }, 'restore finished');
  reply(res, 200, { members });
}
