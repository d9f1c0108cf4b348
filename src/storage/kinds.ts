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
 * Kinds by key (the key's latin1 string), of the keys written last, within `maxBytes` (each key
 * counted as its length plus ENTRY_BYTES); past that the entries made first are dropped, down to
 * 7/8 of it. A key's entry is its newest record's kind only as long as every change of the key's
 * record sets it (Storage: each write it applies and each discard), which is why nothing else may
 * write the store's data table. The map grows as keys come (an empty one is a few hundred bytes),
 * and idle() lets it all go when, since the last look, it dropped keys to make room and answered
 * fewer writes than it learnt keys.
 */
export class RecentKinds {
  readonly #kinds = new Map<string, Kind>();
  readonly #maxBytes: number;
  #bytes = 0;
  /** Writes answered from the map (get() found the key), since the last idle(). */
  #hits = 0;
  /** Keys the map learnt (set() of a key it did not hold), since the last idle(). */
  #added = 0;
  /** Whether it dropped keys to make room, since the last idle(). */
  #dropped = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
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
    if (this.#bytes > this.#maxBytes) this.#drop();
  }

  /**
   * For a process gone idle. When, since the last look, the map was full (it dropped keys to make
   * room) and answered fewer writes than it learnt keys, the writes went to many more keys than it
   * holds (a bulk load of more keys than it holds, or writes spread wide): it saved little, and the
   * next burst would find few of its keys either, while it holds its memory on a quiet process.
   * So it lets every entry go (the next writes read their old records, and it fills again).
   * Otherwise it keeps them for the next burst: writes that came back to its keys, or every key
   * written since the last look (it dropped none: a load of fewer keys, which later writes may
   * well update). Either way the counts start again. Returns the keys and bytes let go.
   */
  idle(): { keys: number; bytes: number } {
    const unpaid = this.#dropped && this.#hits < this.#added;
    this.#hits = 0;
    this.#added = 0;
    this.#dropped = false;
    if (!unpaid) return { keys: 0, bytes: 0 };
    const released = { keys: this.#kinds.size, bytes: this.#bytes };
    this.#kinds.clear();
    this.#bytes = 0;
    return released;
  }

  /** How many keys it knows (for tests and metrics). */
  get size(): number {
    return this.#kinds.size;
  }

  #drop(): void {
    this.#dropped = true;
    const target = (this.#maxBytes * 7) / 8;
    for (const k of this.#kinds.keys()) {
      if (this.#bytes <= target) return;
      this.#kinds.delete(k);
      this.#bytes -= k.length + ENTRY_BYTES;
    }
  }
}
