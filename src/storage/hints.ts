// Hinted handoff store: writes meant for an unreachable replica, kept durably until delivered.

import type { Database } from 'lmdb';
import type { Storage } from './store.ts';

/** A write to deliver to `target` later. `raw` is the record in encodeRecord format. */
export interface Hint {
  /** Where the hint lives in the store; pass back to remove(). */
  readonly id: Buffer;
  readonly target: string;
  readonly key: Buffer;
  readonly raw: Buffer;
}

/**
 * Hints in their own LMDB table of the node's environment, keyed by `target \0 seq` so that one
 * target's hints read in the order they were written. Bounded: beyond `maxHints` new hints are
 * refused (the caller counts them as dropped; anti-entropy by rebalancing and read repair remain).
 */
export class HintStore {
  readonly maxHints: number;
  readonly #db: Database<Buffer, Buffer>;
  readonly #storage: Storage;
  #count: number;
  readonly #byTarget = new Map<string, number>();
  #seq: bigint;

  constructor(storage: Storage, maxHints: number) {
    this.#storage = storage;
    this.maxHints = maxHints;
    this.#db = storage.root.openDB<Buffer, Buffer>({
      name: 'hints',
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    this.#count = 0;
    this.#seq = 0n;
    for (const { key } of this.#db.getRange({})) {
      this.#count++;
      this.#counted(targetOf(key), 1);
      const seq = key.readBigUInt64BE(key.length - 8);
      if (seq >= this.#seq) this.#seq = seq + 1n;
    }
  }

  get count(): number {
    return this.#count;
  }

  /** Hints held, by the member they are for (members with none are left out). */
  countsByTarget(): Record<string, number> {
    return Object.fromEntries(this.#byTarget);
  }

  #counted(target: string, n: number): void {
    const left = (this.#byTarget.get(target) ?? 0) + n;
    if (left > 0) this.#byTarget.set(target, left);
    else this.#byTarget.delete(target);
  }

  /**
   * Stores hints durably. Resolves with how many were stored: fewer than given when the store
   * is full.
   */
  async add(hints: readonly { target: string; key: Buffer; raw: Buffer }[]): Promise<number> {
    const room = Math.max(0, this.maxHints - this.#count);
    const taken = hints.slice(0, room);
    if (taken.length === 0) return 0;
    await this.#storage.transact(() => {
      for (const h of taken) {
        const id = this.#id(h.target, this.#seq++);
        const value = Buffer.allocUnsafe(2 + h.key.length + h.raw.length);
        value.writeUInt16BE(h.key.length, 0);
        h.key.copy(value, 2);
        h.raw.copy(value, 2 + h.key.length);
        this.#db.putSync(id, value);
      }
    });
    this.#count += taken.length;
    for (const h of taken) this.#counted(h.target, 1);
    return taken.length;
  }

  /** Targets that have hints waiting. */
  targets(): string[] {
    const out: string[] = [];
    let after: Buffer | null = null;
    for (;;) {
      let first: Buffer | undefined;
      for (const { key } of this.#db.getRange(after ? { start: after, limit: 1 } : { limit: 1 })) {
        first = key;
      }
      if (!first) return out;
      const target = targetOf(first);
      out.push(target);
      after = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([1])]);
    }
  }

  /**
   * Up to `limit` hints for `target`, oldest first, and no more than `maxBytes` of them (stored
   * bytes) past the first: a delivery of large values reads only what it sends.
   */
  list(target: string, limit: number, maxBytes = Number.POSITIVE_INFINITY): Hint[] {
    const prefix = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([0])]);
    const end = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([1])]);
    const out: Hint[] = [];
    let bytes = 0;
    for (const { key, value } of this.#db.getRange({ start: prefix, end, limit })) {
      // Stopped here, not after reading `limit` hints of any size and dropping the rest.
      if (out.length > 0 && bytes + value.length > maxBytes) break;
      bytes += value.length;
      const keyLen = value.readUInt16BE(0);
      out.push({
        id: key,
        target,
        key: value.subarray(2, 2 + keyLen),
        raw: value.subarray(2 + keyLen),
      });
    }
    return out;
  }

  /** Deletes delivered (or expired) hints; resolves once durable. */
  async remove(ids: readonly Buffer[]): Promise<void> {
    if (ids.length === 0) return;
    const removed: string[] = [];
    await this.#storage.transact(() => {
      for (const id of ids) if (this.#db.removeSync(id)) removed.push(targetOf(id));
    });
    // Counted once committed: a transaction that fails removed nothing.
    this.#count -= removed.length;
    for (const target of removed) this.#counted(target, -1);
  }

  #id(target: string, seq: bigint): Buffer {
    const t = Buffer.from(target, 'utf8');
    const id = Buffer.allocUnsafe(t.length + 9);
    t.copy(id, 0);
    id[t.length] = 0;
    id.writeBigUInt64BE(seq, t.length + 1);
    return id;
  }
}

/** The member a hint id (`target \0 seq`) is for. */
function targetOf(id: Buffer): string {
  return id.toString('utf8', 0, id.length - 9);
}
