// Digest reads: a quorum read moves a record's value once, not once per replica it asks.

import {
  compareRecords,
  decodeRecord,
  isWholeAnswer,
  type StoredRecord,
  sameWrite,
} from '../storage/index.ts';

/**
 * Which replicas one quorum read asks for the record whole, and which for its header alone
 * (GetRequest.h: versions, flags and expiry, no value). This node's own record is always read
 * whole (it crosses no wire). Another replica is asked whole when the read needs a value
 * (`value`) and no whole ask is under way or answered (the first asked, or the next one asked
 * after it failed), and once more by speculation while no whole answer is in (the slow replica
 * speculation works around may be the one asked whole). Every other ask is for the header:
 * `heads` names them. Cassandra's data and digest reads.
 */
export class DigestPlan {
  /** The replicas asked for the header alone. */
  readonly heads = new Set<string>();
  readonly #self: string;
  readonly #value: boolean;
  /** Whole asks of other replicas under way or answered. */
  #live = 0;
  #answered = false;
  #speculated = false;

  /** `value`: the read answers a value (GET); false when versions do (EXISTS, REMOVE). */
  constructor(self: string, value: boolean) {
    this.#self = self;
    this.#value = value;
  }

  /**
   * Whether `name`'s ask goes for the record whole, counted as under way (this node's answers at
   * once); a header ask is added to `heads`. ask() follows a whole ask's outcome.
   */
  whole(name: string, speculative: boolean): boolean {
    if (name === this.#self) {
      this.#live++;
      this.#answered = true;
      return true;
    }
    if (
      this.#value &&
      (this.#live === 0 || (speculative && !this.#answered && !this.#speculated))
    ) {
      if (this.#live > 0) this.#speculated = true;
      this.#live++;
      return true;
    }
    this.heads.add(name);
    return false;
  }

  /** Asks `name` through `get` (true: header only) as whole() decides. */
  ask(
    name: string,
    speculative: boolean,
    get: (headers: boolean) => Promise<Buffer | null>,
  ): Promise<Buffer | null> {
    if (!this.whole(name, speculative)) return get(true);
    const call = get(false);
    if (name !== this.#self) {
      call.then(
        () => {
          this.#answered = true;
        },
        () => {
          this.#live--;
        },
      );
    }
    return call;
  }
}

/** The newest record among a quorum read's answers, and whether an answer held it whole. */
export interface Newest {
  /**
   * The newest record, or null when no replica asked holds the key. Decoded from a header (its
   * value empty) when `whole` is null: its versions, flags and expiry are right, its value not.
   */
  readonly record: StoredRecord | null;
  /** The newest record whole (encodeRecord bytes), or null when only headers held it. */
  readonly whole: Buffer | null;
  /** When `whole` is null: the replicas whose header is the newest, in answer order. */
  readonly holders: readonly string[];
}

const NONE: Newest = { record: null, whole: null, holders: [] };

/**
 * The newest record among `answers` (each replica's encodeRecord bytes, or null when it holds
 * none), where the replicas in `heads` were asked for headers only: their answers order like
 * the records they stand for, but are whole only when isWholeAnswer says so (a tombstone, or a
 * member that sends records whole). Answers of the same write are decoded once.
 */
export function newestOf(
  answers: ReadonlyMap<string, Buffer | null>,
  heads: ReadonlySet<string>,
): Newest {
  let record: StoredRecord | null = null;
  /** The bytes `record` was decoded from. */
  let from: Buffer | null = null;
  let whole: Buffer | null = null;
  let holders: string[] = [];
  for (const [name, raw] of answers) {
    if (raw === null) continue;
    const isWhole = !heads.has(name) || isWholeAnswer(raw);
    let order: number;
    if (from !== null && sameWrite(raw, from)) order = 0;
    else {
      const rec = decodeRecord(raw);
      order = record === null ? 1 : compareRecords(rec, record);
      if (order > 0) {
        record = rec;
        from = raw;
        whole = null;
        holders = [];
      }
    }
    if (order < 0) continue;
    if (!isWhole) holders.push(name);
    else if (whole === null) whole = raw;
  }
  if (record === null) return NONE;
  // Newest first seen as a header, then whole: the record is the whole one's.
  if (whole !== null && whole !== from) record = decodeRecord(whole);
  return { record, whole, holders: whole === null ? holders : [] };
}
