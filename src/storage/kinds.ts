// The kinds of the newest records of the keys written last: what a write that wins on its version
// alone needs to know of the record it replaces, without reading it (Storage.#applyOne).

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
 * What one entry costs besides its key's characters: the key string's header (V8 keeps the one
 * the store made for the overlay), the map's entry and its share of the map's table. Measured:
 * 20 MiB more heap after 300,000 writes of distinct 16-byte keys with 16 MiB allowed, about 105
 * bytes a key.
 */
const ENTRY_BYTES = 88;

/**
 * Kinds by key (the key's latin1 string), of the keys written last, within a bound of bytes (each
 * key counted as its length plus ENTRY_BYTES); past it the entries made first are dropped, down to
 * 7/8 of it. A key's entry is its newest record's kind only as long as every change of the key's
 * record sets it (Storage: each write it applies and each discard), which is why nothing else may
 * write the store's data table.
 *
 * The map grows as keys come (an empty one is a few hundred bytes). The bound starts at
 * `maxBytes` and follows what the map is worth: when it is reached after the map learnt as many
 * keys as it holds since the last look, the writes since then decide (#resize). When they went
 * to many more keys than `maxBytes` holds (a bulk load of distinct keys, random writes over a key
 * space far larger), the map answers few of them for an insert and a drop each, and the bound
 * halves (down to a sixteenth of `maxBytes`); when they come back to its keys, it doubles back
 * (up to `maxBytes`). And idle() lets it all go on a quiet process when it was full of keys that
 * did not come back. (bench/results/2026-12-07-s33-recent-kinds-memory.md: what it held through
 * a bulk load of 1M keys had cost ~0.3x the raw data in RSS after idle.)
 */
export class RecentKinds {
  readonly #kinds = new Map<string, Kind>();
  readonly #maxBytes: number;
  /** The bound now: between a sixteenth of maxBytes and maxBytes. */
  #bound: number;
  #bytes = 0;
  /** Writes answered from the map (get() found the key), since the last idle(). */
  #hits = 0;
  /** Keys the map learnt (set() of a key it did not hold), since the last idle(). */
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

  get(k: string): Kind | undefined {
    const kind = this.#kinds.get(k);
    if (kind !== undefined) this.#hits++;
    return kind;
  }

  set(k: string, kind: Kind): void {
    if (this.#maxBytes <= 0) return;
    const size = this.#kinds.size;
    // A key known already keeps its place (the order is of first writes): one map operation.
    this.#kinds.set(k, kind);
    if (this.#kinds.size === size) return;
    this.#added++;
    this.#bytes += k.length + ENTRY_BYTES;
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
    const released = { keys: this.#kinds.size, bytes: this.#bytes };
    this.#kinds.clear();
    this.#bytes = 0;
    this.#bound = this.#maxBytes; // the next burst is judged afresh
    return released;
  }

  /** How many keys it knows (for tests and metrics). */
  get size(): number {
    return this.#kinds.size;
  }

  /** The bound in bytes now (for tests). */
  get bound(): number {
    return this.#bound;
  }

  #drop(): void {
    this.#dropped = true;
    // Judged over a whole turnover (as many keys learnt as it holds): a shorter look at a map
    // learning a new set of keys would see mostly new keys, and halve it before they come back.
    const added = this.#added - this.#addedJudged;
    if (added >= this.#kinds.size) {
      this.#resize(this.#hits - this.#hitsJudged, added);
      this.#hitsJudged = this.#hits;
      this.#addedJudged = this.#added;
    }
    const target = (this.#bound * 7) / 8;
    for (const k of this.#kinds.keys()) {
      if (this.#bytes <= target) return;
      this.#kinds.delete(k);
      this.#bytes -= k.length + ENTRY_BYTES;
    }
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
