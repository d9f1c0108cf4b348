// The member side of a backup: snapshot sessions read page by page, and the restore marker.

import { KvError } from '../errors/index.ts';
import type { ScanReply, WireEntry } from '../replica/index.ts';
import {
  readStateDoc,
  type ScannedRecord,
  type Storage,
  validWall,
  writeStateDoc,
} from '../storage/index.ts';

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

/** Peer methods of the backup (served after the peer authenticated, like every other). */
export const BACKUP_METHODS = {
  /** `{sid?, b}` -> BackupPage: the next page of a session; no sid opens one. */
  scan: 'backup-scan',
  /** `{sid}` -> `{}`: ends a session early. */
  close: 'backup-close',
  /** `{set?: string | null}` -> RestoreState: this member's counts and restore marker. */
  restoreState: 'restore-state',
} as const;

/** One page of a session: ScanReply plus the session id, its snapshot time and incarnation. */
export interface BackupPage extends ScanReply {
  readonly sid: string;
  /** When the session's snapshot was taken (ISO time, the member's clock). */
  readonly at: string;
  readonly inc: string;
}

/** What a member holds, for the restore's empty check. */
export interface RestoreState {
  readonly keys: number;
  readonly tombstones: number;
  /** Id of the restore writing into this member, or null. */
  readonly restoring: string | null;
}

/** A session with no page asked for this long is closed (its snapshot released). */
export const SESSION_IDLE_MS = 60_000;
/** Sessions open at once on one member; more are refused, or shed one (SHED_IDLE_MS). */
export const MAX_SESSIONS = 4;
/**
 * A new session asked for while MAX_SESSIONS are open ends the one that asked for no page
 * longest, if that was at least this long ago: a reader stalled (or reading slower than a page
 * of PAGE_BYTES every 10 s, about 100 KiB/s per member) gives way to one that waits.
 */
export const SHED_IDLE_MS = 10_000;
/** Ids of shed sessions remembered, to tell their readers why (the oldest forgotten first). */
const SHED_REMEMBERED = 64;
/** Largest page a caller may ask for, in bytes of keys and records. */
const MAX_PAGE_BYTES = 8 * 1024 * 1024;
/** Entries per page at most (a peer reply is checked against it). */
export const MAX_PAGE_ENTRIES = 8192;

interface Session {
  readonly records: Generator<ScannedRecord>;
  readonly at: string;
  timer: NodeJS.Timeout;
  /** When a page was last asked for (performance.now()). */
  asked: number;
  /** A record read but not sent yet (it did not fit the last page). */
  held: WireEntry | null;
}

function fail(message: string): KvError {
  return new KvError('KV_ERR_BACKUP', `backup: ${message}`);
}

/**
 * Snapshot sessions on this member. A session is one ordered scan of the whole store from one
 * LMDB read snapshot (plus the acknowledged writes LMDB had not committed when it started), so
 * the pages of one session are this member's records at one point in time, tombstones included,
 * whatever is written meanwhile. Holding a snapshot keeps LMDB from reusing pages freed after
 * it, so a session ends when read to its end, on `backup-close`, or after SESSION_IDLE_MS idle.
 */
export class BackupSessions {
  readonly #storage: Storage;
  readonly #incarnation: string;
  readonly #sessions = new Map<string, Session>();
  /** Sessions shed for another (SHED_IDLE_MS), oldest first. */
  readonly #shed = new Set<string>();
  #closed = false;

  constructor(storage: Storage, incarnation: string) {
    this.#storage = storage;
    this.#incarnation = incarnation;
  }

  /** The peer methods, by name, for the replica handler. */
  methods(): Record<string, (body: unknown) => unknown> {
    return {
      [BACKUP_METHODS.scan]: (body) => {
        const b = object(body);
        return this.page(optionalString(b.sid, 'sid'), pageBytes(b.b));
      },
      [BACKUP_METHODS.close]: (body) => {
        const sid = optionalString(object(body).sid, 'sid');
        if (sid !== undefined) this.#end(sid);
        return {};
      },
      [BACKUP_METHODS.restoreState]: (body) => {
        const set = object(body).set;
        if (set !== undefined && set !== null && typeof set !== 'string') {
          throw new KvError('KV_ERR_INVALID_ARGUMENT', 'backup: set must be a string or null');
        }
        return this.restoreState(set);
      },
    };
  }

  /**
   * The next page of session `sid` (undefined opens one): entries in key order, about
   * `maxBytes` of them (at least one when any remain). The session ends with the page whose
   * `more` is false. Throws KV_ERR_BACKUP for an unknown (ended, expired) session or when
   * MAX_SESSIONS are open.
   */
  page(sid: string | undefined, maxBytes: number): BackupPage {
    let id = sid;
    let s = id === undefined ? undefined : this.#sessions.get(id);
    if (id === undefined) {
      if (this.#closed) throw fail('this member is stopping');
      if (this.#sessions.size >= MAX_SESSIONS) this.#shedIdlest();
      id = nodeCrypto().randomBytes(12).toString('hex');
      const records = this.#storage.scan({ start: Buffer.alloc(0), end: null });
      const at = new Date().toISOString();
      s = { records, at, timer: this.#expiry(id), asked: performance.now(), held: null };
      this.#sessions.set(id, s);
    } else if (s === undefined) {
      if (this.#shed.has(id)) {
        throw fail(
          `session ${id} was closed for another backup: it asked for no page in ${SHED_IDLE_MS} ms while ${MAX_SESSIONS} were open (a reader stalled or too slow)`,
        );
      }
      throw fail(
        `session ${id.slice(0, 32)} is unknown (ended, or idle over ${SESSION_IDLE_MS} ms)`,
      );
    } else {
      s.timer.refresh();
      s.asked = performance.now();
    }
    const e: WireEntry[] = [];
    let bytes = 0;
    let more = true;
    while (e.length < MAX_PAGE_ENTRIES && (e.length === 0 || bytes < maxBytes)) {
      let next = s!.held;
      s!.held = null;
      if (next === null) {
        const r = s!.records.next();
        if (r.done) {
          more = false;
          break;
        }
        // Copies: the scan's buffers may be views into LMDB's memory map.
        if (!validWall(r.value.raw)) continue; // never sent on (see replica/scan.ts)
        void r.value.record; // a record that does not decode fails the backup: never copied
        next = [Buffer.from(r.value.key), Buffer.from(r.value.raw)];
      }
      if (e.length > 0 && bytes + next[0].length + next[1].length > maxBytes) {
        s!.held = next;
        break;
      }
      e.push(next);
      bytes += next[0].length + next[1].length;
    }
    if (!more) this.#end(id);
    return { sid: id, at: s!.at, inc: this.#incarnation, e, more };
  }

  /** This member's counts and restore marker; with `set` (an id, or null) stores it first. */
  async restoreState(set?: string | null): Promise<RestoreState> {
    if (set !== undefined) await writeStateDoc(this.#storage, 'restore', set);
    const { liveKeys, tombstones } = this.#storage.stats();
    const restoring = readStateDoc(this.#storage, 'restore') ?? null;
    return { keys: liveKeys, tombstones, restoring };
  }

  /**
   * MAX_SESSIONS are open: ends the one that asked for no page longest if that was SHED_IDLE_MS
   * ago or more, else throws (every one is being read).
   */
  #shedIdlest(): void {
    let idlest: [string, Session] | null = null;
    for (const e of this.#sessions) if (idlest === null || e[1].asked < idlest[1].asked) idlest = e;
    if (idlest === null || performance.now() - idlest[1].asked < SHED_IDLE_MS) {
      throw fail(
        `${MAX_SESSIONS} backups are reading this member already (each asked for a page within ${SHED_IDLE_MS} ms)`,
      );
    }
    this.#end(idlest[0]);
    this.#shed.add(idlest[0]);
    if (this.#shed.size > SHED_REMEMBERED) this.#shed.delete(this.#shed.values().next().value!);
  }

  #expiry(id: string): NodeJS.Timeout {
    return setTimeout(() => this.#end(id), SESSION_IDLE_MS).unref();
  }

  #end(id: string): void {
    const s = this.#sessions.get(id);
    if (!s) return;
    this.#sessions.delete(id);
    clearTimeout(s.timer);
    s.records.return(undefined); // releases the read snapshot
  }

  /** Ends every session and opens no more (before storage closes). */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#sessions.keys()]) this.#end(id);
  }
}

function object(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new KvError('KV_ERR_INVALID_ARGUMENT', 'backup: request must be a map');
  }
  return v as Record<string, unknown>;
}

function optionalString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > 64) {
    throw new KvError('KV_ERR_INVALID_ARGUMENT', `backup: ${what} must be a short string`);
  }
  return v;
}

function pageBytes(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_PAGE_BYTES) {
    throw new KvError('KV_ERR_INVALID_ARGUMENT', `backup: b must be 1 to ${MAX_PAGE_BYTES}`);
  }
  return v;
}
