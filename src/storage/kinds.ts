// The kinds of the newest records of the keys written last: what a write that wins on its version
// alone needs to know of the record it replaces, without reading it (Storage.#applyOne).

import { halfSipHash } from './halfsiphash.ts';

/** No record: the key was never written, or its record was discarded. */
export const ABSENT = -3;
/** A tombstone (an expired record's too). */
export const TOMBSTONE = -2;
/** A live record without an expiry. */
export const LIVE = -1;
/**
 * What the counters and the tombstone and expiry indexes need of a record: ABSENT, TOMBSTONE,
 * LIVE, or a live record's expiry (ms since the epoch, >= 0: encodeRecord refuses a negative one).
 */
export type Kind = number;

export function kindOf(r: { readonly tombstone: boolean; readonly expiresAt?: number }): Kind {
  if (r.tombstone) return TOMBSTONE;
  return r.expiresAt ?? LIVE;
}

/** A live record's expiry, or undefined (no expiry, a tombstone, no record). */
export function expiryOf(kind: Kind): number | undefined {
  return kind >= 0 ? kind : undefined;
}

/**
 * What one entry is counted at besides its key's bytes (the bound is in these bytes). Kept at
 * what an entry cost when the kinds were a Map of key strings (20 MiB more heap after 300,000
 * writes of distinct 16-byte keys with 16 MiB allowed, about 105 bytes a key), so the bound holds
 * as many keys as it did; the table below takes less: 16 bytes and the key rounded up to 8 in its
 * ring (which keeps up to half as much again free), and 16 to 32 in its index (2 to 4 slots of 8
 * bytes): ~12 MiB for 160,000 keys of 16 bytes.
 */
const ENTRY_BYTES = 88;

/** An entry's header in the ring: its key's length (u32), its hash (i32), its kind (f64). */
const HEADER = 16;
/** In the length's place: the ring's rest, to its end, is unused (an entry does not wrap). */
const PAD = 0xffffffff;
/** The sizes the ring and the index start at (they grow as keys come). */
const MIN_RING = 4096;
const MIN_SLOTS = 256;

/** The bytes an entry takes in the ring: its header, its key rounded up to 8. */
function entrySize(keyBytes: number): number {
  return HEADER + ((keyBytes + 7) & ~7);
}

/**
 * This process's key for hashOf, random per process: with a fixed or guessable one, anyone can
 * make keys that share a hash (from FNV-1a's fixed basis, 12-byte keys by meeting in the middle,
 * ~100,000 steps a key; under a random basis, 300 such keys still had only 105 hashes in one
 * run), so one probe run in this index and the overlay's (QueuedWrites): 8,000 such keys took
 * ~1 s of the main thread in one table, and the work grows with the square of their number.
 * Nothing keeps these hashes beyond the process. Math.random (V8 seeds it from the OS at start;
 * nothing the node sends shows its output): node:crypto is loaded only when used (its memory,
 * docs/memory.md).
 */
const KEY0 = (Math.random() * 2 ** 32) | 0;
const KEY1 = (Math.random() * 2 ** 32) | 0;

/**
 * A 32-bit hash of a key's bytes: HalfSipHash-1-3 under this process's random key (the rounds
 * Linux's hsiphash and Rust's HashMap use for hash tables), so no client can make keys that share
 * one.
 */
export function hashOf(key: Uint8Array): number {
  return halfSipHash(key, KEY0, KEY1, 1, 3);
}

/**
 * Puts (v, hash) in the first free pair of an open-addressed index of (v, hash) pairs (v > 0; 0 is
 * a free pair) from the hash's place on (linear probing). The index must have a free pair.
 */
export function placeSlot(slots: Int32Array, v: number, hash: number): void {
  const mask = (slots.length >> 1) - 1;
  let i = hash & mask;
  while (slots[2 * i] !== 0) i = (i + 1) & mask;
  slots[2 * i] = v;
  slots[2 * i + 1] = hash;
}

/**
 * Kinds by key (its bytes), of the keys written last, within a bound of bytes (each key counted
 * as its length plus ENTRY_BYTES); past it the entries made first are dropped, down to 7/8 of it.
 * A key's entry is its newest record's kind only as long as every change of the key's record sets
 * it (Storage: each write it applies and each discard), which is why nothing else may write the
 * store's data table.
 *
 * Keyed by the bytes, not a string of them: a write's key arrives as bytes, and a Map's lookup
 * with a fresh string (hashed, then compared with the stored string, a heap object of its own)
 * was 16-19% of the main thread under durable SETs at pipeline 16 (bench/results/
 * 2026-12-07-s34-kinds-by-bytes.md). The entries sit in a ring of bytes in the order they were
 * first set (header, then the key), the oldest dropped first; an open-addressed index of their
 * places (linear probing, kept at most half full, deletes by backward shift) finds them by hash,
 * its hashes beside the places so a probe reads the ring only for a likely match. No objects for
 * the garbage collector to trace, whatever the keys.
 *
 * The table grows as keys come (an empty one is a few KiB). The bound starts at `maxBytes` and
 * follows what the table is worth: when it is reached after the table learnt as many keys as it
 * holds since the last look, the writes since then decide (#resize). When they went to many more
 * keys than `maxBytes` holds (a bulk load of distinct keys, random writes over a key space far
 * larger), the table answers few of them for an insert and a drop each, and the bound halves
 * (down to a sixteenth of `maxBytes`), and the ring and index shrink to what is left; when they
 * come back to its keys, it doubles back (up to `maxBytes`). And idle() lets it all go on a quiet
 * process when it was full of keys that did not come back.
 * (bench/results/2026-12-07-s33-recent-kinds-memory.md: what the Map held through a bulk load of
 * 1M keys had cost ~0.3x the raw data in RSS after idle.)
 */
export class RecentKinds {
  readonly #maxBytes: number;
  /** The bound now: between a sixteenth of maxBytes and maxBytes. */
  #bound: number;
  /** The keys' bytes as the bound counts them. */
  #bytes = 0;
  #count = 0;
  /** The ring: entries from #head (the oldest) to #tail, #used bytes of it (pads included). */
  #ring = new Uint8Array(0);
  #ringU32 = new Uint32Array(0);
  #ringI32 = new Int32Array(0);
  #ringF64 = new Float64Array(0);
  #head = 0;
  #tail = 0;
  #used = 0;
  /**
   * The index: pairs of an entry's place in the ring / 8 + 1 (0: empty) and its hash, side by
   * side (a probe reads one cache line).
   */
  #slots = new Int32Array(0);
  /** Writes answered from the table (get() found the key), since the last idle(). */
  #hits = 0;
  /** Keys the table learnt (set() of a key it did not hold), since the last idle(). */
  #added = 0;
  /** Whether it dropped keys to make room, since the last idle(). */
  #dropped = false;
  /** #hits and #added when the bound was last judged (#drop). */
  #hitsJudged = 0;
  #addedJudged = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
    this.#bound = maxBytes;
  }

  /** `hash`: hashOf(key), when the caller has it already. */
  get(key: Uint8Array, hash = hashOf(key)): Kind | undefined {
    if (this.#count === 0) return undefined;
    const at = this.#find(key, hash);
    if (at < 0) return undefined;
    this.#hits++;
    return this.#ringF64[this.#slots[at]!]!; // the place / 8 + 1: the kind's f64
  }

  /** `hash`: hashOf(key), when the caller has it already. */
  set(key: Uint8Array, kind: Kind, hash = hashOf(key)): void {
    if (this.#maxBytes <= 0) return;
    const at = this.#count === 0 ? -1 : this.#find(key, hash);
    if (at >= 0) {
      // A key known already keeps its place (the order is of first writes).
      this.#ringF64[this.#slots[at]!] = kind;
      return;
    }
    this.#insert(key, hash, kind);
    this.#added++;
    this.#bytes += key.length + ENTRY_BYTES;
    if (this.#bytes > this.#bound) this.#drop();
  }

  /**
   * For a process gone idle. When, since the last look, the map was full (it dropped keys to make
   * room) and answered fewer writes than it learnt keys, the writes went to many more keys than it
   * holds (a bulk load of more keys than it holds, or writes spread wide): it saved little, and the
   * next burst would find few of its keys either, while it holds its memory on a quiet process.
   * So it lets every entry go (the next writes read their old records, and it fills again, from
   * maxBytes).
   * Otherwise it keeps them for the next burst: writes that came back to its keys, or every key
   * written since the last look (it dropped none: a load of fewer keys, which later writes may
   * well update). Either way the counts start again. Returns the keys and bytes let go.
   */
  idle(): { keys: number; bytes: number } {
    const unpaid = this.#dropped && this.#hits < this.#added;
    this.#hits = 0;
    this.#added = 0;
    this.#hitsJudged = 0;
    this.#addedJudged = 0;
    this.#dropped = false;
    if (!unpaid) return { keys: 0, bytes: 0 };
    const released = { keys: this.#count, bytes: this.#bytes };
    this.#release();
    this.#bound = this.#maxBytes; // the next burst is judged afresh
    return released;
  }

  /** How many keys it knows (for tests and metrics). */
  get size(): number {
    return this.#count;
  }

  /** The bytes its ring and index take (0 for an empty table: they grow from nothing as keys come). */
  get tableBytes(): number {
    return this.#ring.byteLength + this.#slots.byteLength;
  }

  /** The bound in bytes now (for tests). */
  get bound(): number {
    return this.#bound;
  }

  #drop(): void {
    this.#dropped = true;
    // Judged over a whole turnover (as many keys learnt as it holds): a shorter look at a table
    // learning a new set of keys would see mostly new keys, and halve it before they come back.
    const added = this.#added - this.#addedJudged;
    if (added >= this.#count) {
      this.#resize(this.#hits - this.#hitsJudged, added);
      this.#hitsJudged = this.#hits;
      this.#addedJudged = this.#added;
    }
    const target = (this.#bound * 7) / 8;
    while (this.#count > 0 && this.#bytes > target) this.#dropOldest();
    if (this.#count === 0) this.#release();
    // What is left may be far smaller than the ring and index (the bound halved): they shrink.
    else if (4 * this.#liveBytes() < this.#ring.length && this.#ring.length > MIN_RING)
      this.#rebuild(0);
  }

  /** Drops the entry at the ring's head (and a pad before it). */
  #dropOldest(): void {
    if (this.#ringU32[this.#head >> 2] === PAD) this.#advance(this.#ring.length - this.#head);
    const w = this.#head >> 3;
    const len = this.#ringU32[w * 2]!;
    const hash = this.#ringI32[w * 2 + 1]!;
    const slots = this.#slots;
    const mask = (slots.length >> 1) - 1;
    let i = hash & mask;
    while (slots[2 * i] !== w + 1) i = (i + 1) & mask;
    this.#deleteSlot(i);
    this.#count--;
    this.#bytes -= len + ENTRY_BYTES;
    this.#advance(entrySize(len));
  }

  #advance(n: number): void {
    this.#used -= n;
    this.#head += n;
    if (this.#head === this.#ring.length) this.#head = 0;
  }

  /** Where the index holds the place of `key` (an even index into #slots), or -1. */
  #find(key: Uint8Array, hash: number): number {
    const slots = this.#slots;
    const mask = (slots.length >> 1) - 1;
    const len = key.length;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = slots[2 * i]!;
      if (v === 0) return -1;
      if (slots[2 * i + 1] !== hash) continue;
      const w = v - 1;
      if (this.#ringU32[w * 2] !== len) continue;
      const ring = this.#ring;
      const from = w * 8 + HEADER;
      let j = 0;
      while (j < len && ring[from + j] === key[j]) j++;
      if (j === len) return 2 * i;
    }
  }

  /** Adds an entry for `key` (not held) at the ring's tail, growing the ring and index to fit. */
  #insert(key: Uint8Array, hash: number, kind: Kind): void {
    const size = entrySize(key.length);
    if (4 * (this.#count + 1) > this.#slots.length) this.#rebuild(size);
    let room = this.#ring.length - this.#used;
    const toEnd = this.#ring.length - this.#tail;
    // An entry does not wrap: the rest of the ring, when too short, is padded over.
    const pad = this.#tail >= this.#head && toEnd < size ? toEnd : 0;
    if (room < size + pad) {
      this.#rebuild(size);
      room = this.#ring.length - this.#used;
    } else if (pad > 0) {
      this.#ringU32[this.#tail >> 2] = PAD;
      this.#used += pad;
      this.#tail = 0;
    }
    const o = this.#tail;
    const w = o >> 3;
    this.#ringU32[w * 2] = key.length;
    this.#ringI32[w * 2 + 1] = hash;
    this.#ringF64[w + 1] = kind;
    this.#ring.set(key, o + HEADER);
    this.#used += size;
    this.#tail = o + size === this.#ring.length ? 0 : o + size;
    placeSlot(this.#slots, w + 1, hash);
    this.#count++;
  }

  /** Empties slot `i`, shifting back the entries after it that probed past it (no tombstones). */
  #deleteSlot(i: number): void {
    const slots = this.#slots;
    const mask = (slots.length >> 1) - 1;
    let hole = i;
    for (let j = (i + 1) & mask; slots[2 * j] !== 0; j = (j + 1) & mask) {
      const home = slots[2 * j + 1]! & mask;
      // Entry j may move to the hole when its home is not in (hole, j] (cyclically).
      if (hole <= j ? home <= hole || home > j : home <= hole && home > j) {
        slots[2 * hole] = slots[2 * j]!;
        slots[2 * hole + 1] = slots[2 * j + 1]!;
        hole = j;
      }
    }
    slots[2 * hole] = 0;
  }

  /** The ring's bytes the entries take (no pads). */
  #liveBytes(): number {
    let n = 0;
    this.#forEach((w) => {
      n += entrySize(this.#ringU32[w * 2]!);
    });
    return n;
  }

  /** Calls `f` with each entry's place / 8, oldest first. */
  #forEach(f: (w: number) => void): void {
    let o = this.#head;
    let left = this.#used;
    while (left > 0) {
      if (this.#ringU32[o >> 2] === PAD) {
        left -= this.#ring.length - o;
        o = 0;
        continue;
      }
      const size = entrySize(this.#ringU32[o >> 2]!);
      f(o >> 3);
      left -= size;
      o += size;
      if (o === this.#ring.length) o = 0;
    }
  }

  /**
   * Copies the entries, oldest first, to a new ring from its start, with room for them and one
   * more of `extra` bytes, and half as much again (it grows by half); and a new index at most
   * half full with one more entry (a power of two: it doubles).
   */
  #rebuild(extra: number): void {
    const live = this.#liveBytes();
    const ringBytes = Math.max(MIN_RING, Math.ceil((1.5 * (live + extra)) / 8) * 8);
    let slotCount = MIN_SLOTS;
    while (slotCount < 2 * (this.#count + 1)) slotCount *= 2;
    const ring = new Uint8Array(ringBytes);
    const u32 = new Uint32Array(ring.buffer);
    const slots = new Int32Array(2 * slotCount);
    const mask = slotCount - 1;
    let o = 0;
    this.#forEach((w) => {
      const size = entrySize(this.#ringU32[w * 2]!);
      ring.set(this.#ring.subarray(w * 8, w * 8 + size), o);
      const hash = this.#ringI32[w * 2 + 1]!;
      let i = hash & mask;
      while (slots[2 * i] !== 0) i = (i + 1) & mask;
      slots[2 * i] = (o >> 3) + 1;
      slots[2 * i + 1] = hash;
      o += size;
    });
    this.#ring = ring;
    this.#ringU32 = u32;
    this.#ringI32 = new Int32Array(ring.buffer);
    this.#ringF64 = new Float64Array(ring.buffer);
    this.#head = 0;
    this.#tail = o;
    this.#used = o;
    this.#slots = slots;
  }

  /** Lets every entry go, and the ring's and index's memory. */
  #release(): void {
    this.#count = 0;
    this.#bytes = 0;
    this.#ring = new Uint8Array(0);
    this.#ringU32 = new Uint32Array(0);
    this.#ringI32 = new Int32Array(0);
    this.#ringF64 = new Float64Array(0);
    this.#head = 0;
    this.#tail = 0;
    this.#used = 0;
    this.#slots = new Int32Array(0);
  }

  /**
   * The bound from the writes since it was last judged: `hits` answered, `added` keys learnt.
   * With writes spread evenly over a key space, the share answered grows with the keys held, so
   * at maxBytes the map would answer about `hits * maxBytes / bound` of the `hits + added`. A
   * quarter or more: the bound doubles back towards maxBytes. Under a quarter (a bulk load of
   * distinct keys answers none; random writes over more than 4 times the keys maxBytes holds,
   * where even the whole map saved nothing measurable: 0.90-1.48x the store's CPU per write in
   * session 32 and 0.95-1.66x in session 33 with about a sixth answered at 1M keys): it halves,
   * down to a sixteenth of maxBytes. One threshold, not two: between two, a map halved by a bulk
   * load would stay small under writes its whole size answers well.
   */
  #resize(hits: number, added: number): void {
    const atMax = hits * this.#maxBytes;
    const asked = (hits + added) * this.#bound;
    this.#bound =
      4 * atMax >= asked
        ? Math.min(this.#maxBytes, this.#bound * 2)
        : Math.max(this.#maxBytes / 16, this.#bound / 2);
  }
}
