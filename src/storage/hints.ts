// Hinted handoff store: writes meant for an unreachable replica, kept durably until delivered.

import type { Database } from 'lmdb';
import { runSteps, runStepsInSlices } from './steps.ts';
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
 * target's hints read in the order they were written. Bounded by count and by bytes: a new hint
 * that would take the store past `maxHints` hints or `maxBytes` bytes is refused (the caller
 * counts it as dropped; anti-entropy, rebalancing and read repair remain).
 */
export class HintStore {
  readonly maxHints: number;
  /** Most bytes of hints (see `bytes`) kept. */
  readonly maxBytes: number;
  readonly #db: Database<Buffer, Buffer>;
  readonly #storage: Storage;
  #count: number;
  #bytes: number;
  readonly #byTarget = new Map<string, number>();
  #seq: bigint;

  /** Counts the stored hints at once (see open() for a count a stop signal can end). */
  constructor(
    storage: Storage,
    maxHints: number,
    maxBytes = Number.POSITIVE_INFINITY,
    count = true,
  ) {
    this.#storage = storage;
    this.maxHints = maxHints;
    this.maxBytes = maxBytes;
    this.#db = storage.hintsTable;
    this.#count = 0;
    this.#bytes = 0;
    this.#seq = 0n;
    if (count) runSteps(this.#countStored());
  }

  /**
   * The hint store, its totals counted a slice at a time (about 20 ms of work each; the event
   * loop turns between slices, so a SIGTERM handler runs): a count of many hints on a slow disk
   * reads every one of them. Rejects with `signal`'s reason once it aborts.
   */
  static async open(
    storage: Storage,
    maxHints: number,
    maxBytes: number,
    signal: AbortSignal,
  ): Promise<HintStore> {
    const store = new HintStore(storage, maxHints, maxBytes, false);
    await runStepsInSlices(store.#countStored(), signal);
    return store;
  }

  /** Counts the stored hints, a step per hint (a read of the disk each, when not cached). */
  *#countStored(): Generator<void, void> {
    // The totals are counted from the stored hints, so they are exact after any stop or crash.
    // Keys only, and each value's length from a read into lmdb-js's reused buffer: a range with
    // values would copy every one of them into its own Buffer (1 GiB of hints: 1 GiB allocated).
    for (const key of this.#db.getKeys({})) {
      this.#count++;
      this.#counted(targetOf(key), 1);
      const seq = key.readBigUInt64BE(key.length - 8);
      if (seq >= this.#seq) this.#seq = seq + 1n;
      this.#bytes += sizeOf(key, this.#db.getBinaryFast(key)?.length ?? 0);
      yield;
    }
  }

  get count(): number {
    return this.#count;
  }

  /** Bytes the stored hints take: each one's id, key and record (LMDB's own overhead aside). */
  get bytes(): number {
    return this.#bytes;
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
   * is full (each hint is kept if it fits, by count and by bytes, beside those kept before it).
   */
  async add(hints: readonly { target: string; key: Buffer; raw: Buffer }[]): Promise<number> {
    const taken: { id: Buffer; target: string; key: Buffer; raw: Buffer }[] = [];
    let bytes = 0;
    for (const h of hints) {
      if (this.#count + taken.length >= this.maxHints) break;
      const id = this.#id(h.target, this.#seq);
      const size = sizeOf(id, 2 + h.key.length + h.raw.length);
      if (this.#bytes + bytes + size > this.maxBytes) continue;
      this.#seq++;
      bytes += size;
      taken.push({ id, target: h.target, key: h.key, raw: h.raw });
    }
    if (taken.length === 0) return 0;
    await this.#storage.transact(() => {
      for (const h of taken) {
        const value = Buffer.allocUnsafe(2 + h.key.length + h.raw.length);
        value.writeUInt16BE(h.key.length, 0);
        h.key.copy(value, 2);
        h.raw.copy(value, 2 + h.key.length);
        this.#db.putSync(h.id, value);
      }
    });
    this.#count += taken.length;
    this.#bytes += bytes;
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
   * Up to `limit` hints for `target`, oldest first (after the hint whose id is `after`, when
   * given), and no more than `maxBytes` of them (stored bytes) past the first: a delivery of
   * large values reads only what it sends.
   */
  list(
    target: string,
    limit: number,
    maxBytes = Number.POSITIVE_INFINITY,
    after: Buffer | null = null,
  ): Hint[] {
    const prefix = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([0])]);
    const end = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([1])]);
    // The smallest id above `after` is `after` and a 0 byte.
    const start = after === null ? prefix : Buffer.concat([after, Buffer.from([0])]);
    const out: Hint[] = [];
    let bytes = 0;
    for (const { key, value } of this.#db.getRange({ start, end, limit })) {
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

  /** Deletes delivered (or expired) hints, as list() gave them; resolves once durable. */
  async remove(hints: readonly Hint[]): Promise<void> {
    if (hints.length === 0) return;
    const removed: Hint[] = [];
    await this.#storage.transact(() => {
      for (const h of hints) if (this.#db.removeSync(h.id)) removed.push(h);
    });
    // Counted once committed: a transaction that fails removed nothing. A hint's bytes never
    // change once stored (its id is not reused), so those list() read are the ones removed.
    this.#count -= removed.length;
    for (const h of removed) {
      this.#bytes -= sizeOf(h.id, 2 + h.key.length + h.raw.length);
      this.#counted(h.target, -1);
    }
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

/** The bytes a stored hint counts toward HintStore.bytes: its id and its value. */
function sizeOf(id: Buffer, valueLength: number): number {
  return id.length + valueLength;
}

/** The member a hint id (`target \0 seq`) is for. */
function targetOf(id: Buffer): string {
  return id.toString('utf8', 0, id.length - 9);
}
