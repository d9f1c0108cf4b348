// Reads every member's snapshot session and merges them by key, keeping each key's newest record.

import { KvError } from '../errors/index.ts';
import { readScanReply } from '../replica/index.ts';
import { compareRecords, decodeRecord, type StoredRecord } from '../storage/index.ts';
import type { BackupEntry } from './format.ts';
import { BACKUP_METHODS, type BackupPage, MAX_PAGE_ENTRIES } from './sessions.ts';

/** Bytes of records a member sends per page. */
const PAGE_BYTES = 1024 * 1024;

/** Sends one backup peer method to `member` (this node's own sessions directly); the raw reply. */
export type MemberCall = (member: string, method: string, body: unknown) => Promise<unknown>;

/** One member's session as the merge reads it. */
class Cursor {
  readonly member: string;
  sid: string | undefined = undefined;
  at = '';
  incarnation = '';
  entries: BackupEntry[] = [];
  records: StoredRecord[] = [];
  i = 0;
  more = true;

  constructor(member: string) {
    this.member = member;
  }

  get head(): BackupEntry | undefined {
    return this.entries[this.i];
  }

  /** Fetches the next page when this one is used up and more remain. */
  async fill(call: MemberCall): Promise<void> {
    if (this.i < this.entries.length || !this.more) return;
    const body = { ...(this.sid ? { sid: this.sid } : {}), b: PAGE_BYTES };
    const reply = await call(this.member, BACKUP_METHODS.scan, body);
    const page = readScanReply(reply, MAX_PAGE_ENTRIES);
    const { sid, at, inc } = reply as Partial<BackupPage>;
    if (typeof sid !== 'string' || typeof at !== 'string' || typeof inc !== 'string') {
      throw new KvError('KV_ERR_PEER_PROTOCOL', `backup: ${this.member} sent a malformed page`);
    }
    const last = this.entries.at(-1)?.[0];
    if (last && page.e.length > 0 && Buffer.compare(last, page.e[0]![0]) >= 0) {
      throw new KvError('KV_ERR_PEER_PROTOCOL', `backup: ${this.member} sent keys out of order`);
    }
    this.sid = sid;
    this.at = at;
    this.incarnation = inc;
    this.entries = page.e;
    this.records = page.records;
    this.i = 0;
    this.more = page.more;
  }
}

/** A merged record and whether it is a tombstone. */
export interface MergedRecord {
  readonly entry: BackupEntry;
  readonly tombstone: boolean;
}

/**
 * Opens a session on each of `members` and yields every key any of them holds, once, ascending,
 * with the newest record (highest version) among them: the members' snapshots merged. `opened`
 * is called once every session has its first page (their snapshot times known). On any failure
 * (a member unreachable, a session expired) it throws; `close` ends the sessions still open.
 */
export class SnapshotMerge {
  readonly #cursors: Cursor[];
  readonly #call: MemberCall;

  constructor(members: readonly string[], call: MemberCall) {
    this.#cursors = members.map((m) => new Cursor(m));
    this.#call = call;
  }

  /** Every member's snapshot time and incarnation (after the first page). */
  snapshots(): { member: string; at: string; incarnation: string }[] {
    return this.#cursors.map((c) => ({ member: c.member, at: c.at, incarnation: c.incarnation }));
  }

  /** Opens every session (in parallel, so the snapshots are taken close together). */
  async open(): Promise<void> {
    await Promise.all(this.#cursors.map((c) => c.fill(this.#call)));
  }

  async *records(): AsyncGenerator<MergedRecord> {
    for (;;) {
      await Promise.all(this.#cursors.map((c) => c.fill(this.#call)));
      let min: Buffer | undefined;
      for (const c of this.#cursors) {
        const h = c.head;
        if (h && (min === undefined || Buffer.compare(h[0], min) < 0)) min = h[0];
      }
      if (min === undefined) return;
      let best: { entry: BackupEntry; record: StoredRecord } | undefined;
      for (const c of this.#cursors) {
        const h = c.head;
        if (!h?.[0].equals(min)) continue;
        const record = c.records[c.i] ?? decodeRecord(h[1]);
        c.i++;
        if (!best || compareRecords(record, best.record) > 0) {
          best = { entry: h, record };
        }
      }
      yield { entry: best!.entry, tombstone: best!.record.tombstone };
    }
  }

  /** Ends the sessions that are still open (best effort). */
  async close(): Promise<void> {
    await Promise.all(
      this.#cursors
        .filter((c) => c.more && c.sid !== undefined)
        .map((c) =>
          this.#call(c.member, BACKUP_METHODS.close, { sid: c.sid }).catch(() => {
            // Closing: the session expires on its own.
          }),
        ),
    );
  }
}
