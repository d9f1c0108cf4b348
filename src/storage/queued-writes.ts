// The writes LMDB has not committed yet, by key bytes: the store's overlay (Storage.#queued).

import { hashOf, placeSlot } from './kinds.ts';
import type { Queued } from './scan.ts';

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
    this.#keys = Buffer.allocUnsafeSlow(8 * slots);
  }

  /** Keys with a write. */
  get size(): number {
    return this.#live;
  }

  /** The bytes of its index, entry ends and key buffer (its writes' records not counted). */
  get tableBytes(): number {
    return this.#slots.byteLength + this.#ends.byteLength + this.#keys.length;
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

  /** `hash`: hashOf(key), when the caller has it already. */
  set(key: Uint8Array, value: Queued, hash = hashOf(key)): void {
    const e = this.#find(key, hash);
    if (e >= 0) {
      if (this.#values[e] === undefined) this.#live++;
      this.#values[e] = value;
      return;
    }
    this.#add(key, hash, value);
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

  #add(key: Uint8Array, hash: number, value: Queued): void {
    const e = this.#count;
    if (4 * (e + 1) > this.#slots.length) this.#grow();
    if (e === this.#ends.length) {
      const ends = new Int32Array(2 * e);
      ends.set(this.#ends);
      this.#ends = ends;
    }
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
