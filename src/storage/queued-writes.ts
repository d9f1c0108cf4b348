// The writes LMDB has not committed yet, by key bytes: the store's overlay (Storage.#queued).

import { ABSENT, hashOf, type Kind, placeSlot, TOMBSTONE } from './kinds.ts';
import type { Queued } from './scan.ts';

/**
 * What a record counts in (Storage's key counters): none (no record, or not told), a tombstone,
 * a live record, a live record with an expiry.
 */
export const NONE = 0;
export const TOMB = 1;
export const LIVE_ONLY = 2;
export const LIVE_EXPIRING = 3;
export type KindClass = 0 | 1 | 2 | 3;

/** The class of a record of kind `kind` (kinds.ts; NaN: not told). */
function classOf(kind: Kind): KindClass {
  if (kind === ABSENT || Number.isNaN(kind)) return NONE;
  if (kind === TOMBSTONE) return TOMB;
  return kind >= 0 ? LIVE_EXPIRING : LIVE_ONLY;
}

/** The slots an empty table starts with (pairs: an entry's number + 1, its hash). */
const MIN_SLOTS = 64;

/**
 * One batch's writes, the last of each key, keyed by the key's bytes, in the order each key was
 * first set. A Map of the keys' latin1 strings cost a fresh string per write (made, hashed, kept
 * until LMDB committed, then rebuilt as a Buffer for LMDB): `#queue`'s Map.set alone was ~10% of
 * the main thread under durable SETs at pipeline 16 (bench/results/2026-12-07-s35-overlay-by-bytes.md).
 * Here a key's bytes are copied once into one buffer (the keys side by side, an entry's end in
 * #ends), found by an open-addressed index of (entry + 1, hash) pairs (linear probing, at most
 * half full); LMDB is given views of that buffer. A delete of an entry (delete(), rare: a batch
 * committed after an older one failed) leaves its key in place with no value.
 */
export class QueuedWrites {
  #keys: Buffer;
  #keyBytes = 0;
  /** Where entry i's key ends in #keys (it starts where entry i - 1's ends). */
  #ends: Int32Array;
  #values: (Queued | undefined)[] = [];
  /**
   * Entry i's key's record class (KindClass) before the table's first write of it, times 4, plus
   * the one after its last write: what the counters of a batch given to LMDB in slices follow
   * (hand-over.ts).
   */
  #classes: Uint8Array;
  /** Entries made (deleted ones included). */
  #count = 0;
  /** Entries with a value. */
  #live = 0;
  #slots: Int32Array;

  /** `expected`: about how many keys it will hold (it grows past that as needed). */
  constructor(expected = 0) {
    let slots = MIN_SLOTS;
    while (slots < 2 * expected) slots *= 2;
    this.#slots = new Int32Array(2 * slots);
    this.#ends = new Int32Array(slots / 2);
    this.#classes = new Uint8Array(slots / 2);
    this.#keys = Buffer.allocUnsafeSlow(8 * slots);
  }

  /** Keys with a write. */
  get size(): number {
    return this.#live;
  }

  /** The bytes of its index, entry ends and key buffer (its writes' records not counted). */
  get tableBytes(): number {
    const ends = this.#ends.byteLength + this.#classes.byteLength;
    return this.#slots.byteLength + ends + this.#keys.length;
  }

  /** Entries made, deleted ones included: keyAt and valueAt take 0 to entries - 1. */
  get entries(): number {
    return this.#count;
  }

  /** Entry i's key: a view of the table's bytes, valid for good (they are never overwritten). */
  keyAt(i: number): Buffer {
    return this.#keys.subarray(i === 0 ? 0 : this.#ends[i - 1]!, this.#ends[i]!);
  }

  /** Entry i's write, or undefined when it was deleted. */
  valueAt(i: number): Queued | undefined {
    return this.#values[i];
  }

  get(key: Uint8Array): Queued | undefined {
    if (this.#live === 0) return undefined;
    const e = this.#find(key, hashOf(key));
    return e < 0 ? undefined : this.#values[e];
  }

  /** Entry i's key's class before the table's first write of it (NONE when not told). */
  beforeAt(i: number): KindClass {
    return (this.#classes[i]! >> 2) as KindClass;
  }

  /** Entry i's key's class after its last write (NONE when not told). */
  afterAt(i: number): KindClass {
    return (this.#classes[i]! & 3) as KindClass;
  }

  /**
   * `hash`: hashOf(key), when the caller has it already. `was` and `next`: the key's kinds before
   * and after this write (kinds.ts), for the counters of a hand-over in slices.
   */
  set(
    key: Uint8Array,
    value: Queued,
    hash = hashOf(key),
    was = Number.NaN,
    next = Number.NaN,
  ): void {
    const e = this.#find(key, hash);
    if (e >= 0) {
      if (this.#values[e] === undefined) this.#live++;
      this.#values[e] = value;
      this.#classes[e] = (this.#classes[e]! & ~3) | classOf(next);
      return;
    }
    this.#add(key, hash, value, was, next);
  }

  delete(key: Uint8Array): void {
    if (this.#live === 0) return;
    const e = this.#find(key, hashOf(key));
    if (e < 0 || this.#values[e] === undefined) return;
    this.#values[e] = undefined;
    this.#live--;
  }

  /** The keys with a write and their writes, in the order the keys were first set. */
  *[Symbol.iterator](): Generator<[Buffer, Queued]> {
    for (let i = 0; i < this.#count; i++) {
      const v = this.#values[i];
      if (v !== undefined) yield [this.keyAt(i), v];
    }
  }

  /** The entry holding `key`, or -1. */
  #find(key: Uint8Array, hash: number): number {
    const slots = this.#slots;
    const mask = (slots.length >> 1) - 1;
    const len = key.length;
    const keys = this.#keys;
    const ends = this.#ends;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = slots[2 * i]!;
      if (v === 0) return -1;
      if (slots[2 * i + 1] !== hash) continue;
      const e = v - 1;
      const from = e === 0 ? 0 : ends[e - 1]!;
      if (ends[e]! - from !== len) continue;
      let j = 0;
      while (j < len && keys[from + j] === key[j]) j++;
      if (j === len) return e;
    }
  }

  #add(key: Uint8Array, hash: number, value: Queued, was: number, next: number): void {
    const e = this.#count;
    if (4 * (e + 1) > this.#slots.length) this.#grow();
    if (e === this.#ends.length) {
      const ends = new Int32Array(2 * e);
      ends.set(this.#ends);
      this.#ends = ends;
      const classes = new Uint8Array(2 * e);
      classes.set(this.#classes);
      this.#classes = classes;
    }
    this.#classes[e] = (classOf(was) << 2) | classOf(next);
    const from = this.#keyBytes;
    const to = from + key.length;
    if (to > this.#keys.length) {
      // Views given out keep the old buffer; its bytes stay as they were.
      const keys = Buffer.allocUnsafeSlow(Math.max(2 * this.#keys.length, to));
      this.#keys.copy(keys, 0, 0, from);
      this.#keys = keys;
    }
    this.#keys.set(key, from);
    this.#keyBytes = to;
    this.#ends[e] = to;
    this.#values.push(value);
    this.#count = e + 1;
    this.#live++;
    placeSlot(this.#slots, e + 1, hash);
  }

  /** Doubles the index and places every entry again (their hashes are kept in the old one). */
  #grow(): void {
    const old = this.#slots;
    this.#slots = new Int32Array(2 * old.length);
    for (let i = 0; i < old.length; i += 2)
      if (old[i] !== 0) placeSlot(this.#slots, old[i]!, old[i + 1]!);
  }
}
