import { KvError } from '../errors/index.ts';
import { keyToken, TOKEN_SPACE, vnodeToken } from './hash.ts';
import { xxh64 } from './xxh64.ts';

/**
 * Virtual nodes per member when not configured: 1024, the smallest power of two that keeps
 * max/min load per member <= 1.25 with margin for 3..10 members, both as primary and as one of
 * 3 replicas, and not only for the names the tests use. Measured on the exact token-space share
 * (Ring.share), N = 3..10:
 * - `kvstore-0..N-1`: worst primary max/min 1.326 at 256 (fails), 1.197 at 512, 1.118 at 1024;
 * - 40 other name sets (`set<k>-0..N-1`, 320 rings): at 512, 2 rings exceed 1.25 (worst
 *   1.320); at 1024 none does (worst 1.194). Replica (n = 3) load is always more even.
 * Cost of 1024: a 5-member ring is 5120 entries (40 KB), built in ~10 ms; owners() does one
 * more binary-search step than at 512.
 */
export const DEFAULT_VNODES = 1024;
/**
 * The most ring entries (members x vnodes) whose walks Ring.ownersShared keeps: 16 members at
 * the default vnodes, under 1 MiB when every entry was asked for.
 */
const SHARED_WALK_ENTRIES = 16 * DEFAULT_VNODES;

/** Upper bound on vnodes: each entry is 8 bytes, so at most 512 KB of ring per member. */
const MAX_VNODES = 65_536;

/** Version of the token scheme, hashed into Ring.id so rings built by other schemes never match. */
const SCHEME = 1;

export interface RingOptions {
  /** Virtual nodes (tokens) per member, an integer in 1..65536. Default DEFAULT_VNODES. */
  vnodes?: number;
}

/**
 * A token range whose owners differ between two rings: the tokens t with start < t <= end,
 * wrapping past 2^32 - 1 to 0 when start >= end; start === end is the whole token space.
 * `before` and `after` are the first n owners (primary first) in the old and new ring.
 */
export interface TokenRangeChange {
  start: number;
  end: number;
  before: string[];
  after: string[];
}

/** Whether `token` lies in the range (start, end] (wrapping; start === end is everything). */
export function rangeContains(start: number, end: number, token: number): boolean {
  return start < end ? token > start && token <= end : token > start || token <= end;
}

/**
 * The entries' indices ordered by token, ties by index. Up to 2^21 entries (2048 members at the
 * default vnodes) each is one float64, token * count + index, exact below 2^53,
 * sorted by the typed array's native numeric sort: no JS comparator, whose ~10^4 calls per
 * 1024-vnode member made V8 optimize it at every node's start (TurboFan, whose code is about
 * 5 MiB of the node binary's pages, then resident in a node that serves nothing yet).
 */
function sortedEntries(raw: Uint32Array): ArrayLike<number> {
  const count = raw.length;
  if (count > 2 ** 21) {
    const order = Array.from({ length: count }, (_, e) => e);
    return order.sort((x, y) => raw[x]! - raw[y]! || x - y);
  }
  const keys = new Float64Array(count);
  for (let e = 0; e < count; e++) keys[e] = raw[e]! * count + e;
  keys.sort();
  const order = new Uint32Array(count);
  for (let k = 0; k < count; k++) order[k] = keys[k]! % count;
  return order;
}
/**
 * A consistent-hash ring. Scheme (every node must compute the same ring):
 * - members are deduplicated and sorted by UTF-16 code units (Array.prototype.sort default);
 * - member m gets the tokens vnodeToken(m, i) = xxh32(utf8(`${m}#${i}`)) for 0 <= i < vnodes;
 * - all tokens are sorted ascending; equal tokens (collisions) are ordered by member name;
 * - a token t belongs to the first ring entry whose token is >= t (wrapping to the first entry),
 *   so an entry with token e owns (previous entry's token, e];
 * - the owners of t are the first n distinct members met walking clockwise from that entry.
 * The ring is immutable; membership changes build a new Ring.
 */
export class Ring {
  /** Member names, sorted (UTF-16 code units) and unique. */
  readonly members: readonly string[];
  readonly vnodes: number;
  /** 16 hex digits identifying the ring: equal for the same member set, vnodes and scheme. */
  readonly id: string;
  /** Entry tokens, ascending; ties ordered by member name. */
  readonly #tokens: Uint32Array;
  /** Index into `members` of each entry, parallel to #tokens. */
  readonly #owner: Uint32Array;
  /** Per member: the walk epoch that last chose it (avoids a per-call "seen" set). */
  readonly #seen: Uint32Array;
  #epoch = 0;
  /** ownersShared's walks, per owner count: one per entry, made when first asked for. */
  readonly #walks = new Map<number, (readonly string[] | undefined)[]>();

  constructor(members: readonly string[], opts: RingOptions = {}) {
    const vnodes = opts.vnodes ?? DEFAULT_VNODES;
    if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > MAX_VNODES) {
      throw invalid(`vnodes must be an integer in 1..${MAX_VNODES}, got ${vnodes}`);
    }
    const names = [...new Set(members)].sort();
    for (const name of names) {
      if (typeof name !== 'string' || name.length === 0) {
        throw invalid(`member names must be non-empty strings, got ${JSON.stringify(name)}`);
      }
    }
    this.members = Object.freeze(names);
    this.vnodes = vnodes;
    this.id = xxh64(JSON.stringify([SCHEME, vnodes, names]))
      .toString(16)
      .padStart(16, '0');

    const count = names.length * vnodes;
    const raw = new Uint32Array(count);
    for (let m = 0; m < names.length; m++) {
      for (let i = 0; i < vnodes; i++) raw[m * vnodes + i] = vnodeToken(names[m]!, i);
    }
    // Entry e belongs to member floor(e / vnodes); names are sorted, so a lower member index is
    // a lower name and ordering ties by index orders them by name.
    const order = sortedEntries(raw);
    this.#tokens = new Uint32Array(count);
    this.#owner = new Uint32Array(count);
    for (let k = 0; k < count; k++) {
      const e = order[k]!;
      this.#tokens[k] = raw[e]!;
      this.#owner[k] = Math.floor(e / vnodes);
    }
    this.#seen = new Uint32Array(names.length);
  }

  /**
   * The first min(n, members.length) distinct members clockwise from keyToken(key); [0] is the
   * primary. An empty ring, or n = 0, gives []. n must be a non-negative integer.
   */
  owners(key: Uint8Array, n: number): string[] {
    return this.ownersOfToken(keyToken(key), n);
  }

  /**
   * owners() as an array shared by every key of the same ring entry (frozen: never to be
   * changed), made once per entry and count: a placement per request (Topology.place) then
   * walks the ring and allocates nothing. Rings of more than SHARED_WALK_ENTRIES entries walk
   * per call (what the walks would keep grows with the entries).
   */
  ownersShared(key: Uint8Array, n: number): readonly string[] {
    const want = clampCount(n, this.members.length);
    if (want === 0) return [];
    const tokens = this.#tokens;
    let e = lowerBound(tokens, keyToken(key) >>> 0);
    if (e === tokens.length) e = 0;
    if (tokens.length > SHARED_WALK_ENTRIES) return this.#walk(e, want);
    let walks = this.#walks.get(want);
    if (walks === undefined) {
      walks = new Array<readonly string[] | undefined>(tokens.length);
      this.#walks.set(want, walks);
    }
    let owners = walks[e];
    if (owners === undefined) {
      owners = Object.freeze(this.#walk(e, want));
      walks[e] = owners;
    }
    return owners;
  }

  /** owners() for a token (an integer in 0..2^32 - 1; other numbers are taken modulo 2^32). */
  ownersOfToken(token: number, n: number): string[] {
    const want = clampCount(n, this.members.length);
    if (want === 0) return [];
    return this.#walk(lowerBound(this.#tokens, token >>> 0), want);
  }

  /**
   * Fraction (0..1) of the token space for which `member` is among the first n owners
   * (n = 1: its primary share). Summed over members it is min(n, members.length).
   * 0 for a name that is not a member.
   */
  share(member: string, n = 1): number {
    const want = clampCount(n, this.members.length);
    if (want === 0 || !this.members.includes(member)) return 0;
    const tokens = this.#tokens;
    const last = tokens.length - 1;
    let owned = 0;
    for (let e = 0; e <= last; e++) {
      const width =
        e === 0 ? tokens[0]! - tokens[last]! + TOKEN_SPACE : tokens[e]! - tokens[e - 1]!;
      if (width > 0 && this.#walk(e, want).includes(member)) owned += width;
    }
    return owned / TOKEN_SPACE;
  }

  /**
   * The token ranges where the set of the first n owners differs between this ring and `next`
   * (compared as sets: a reordering alone moves no data), ordered by `start`, so a range that
   * wraps past 2^32 - 1 to 0 comes last. Adjacent ranges with the same `before` and `after`
   * are merged. Both rings empty, or identical owner sets everywhere, gives [].
   * Within a range every token has the same `before` and the same `after`.
   */
  diff(next: Ring, n: number): TokenRangeChange[] {
    clampCount(n, 0);
    const bounds = mergeUnique(this.#tokens, next.#tokens);
    const changes: TokenRangeChange[] = [];
    for (let k = 0; k < bounds.length; k++) {
      const end = bounds[k]!;
      const before = this.ownersOfToken(end, n);
      const after = next.ownersOfToken(end, n);
      if (sameSet(before, after)) continue;
      const prev = changes.at(-1);
      const start = bounds[k === 0 ? bounds.length - 1 : k - 1]!;
      if (
        prev &&
        prev.end === start &&
        sameList(prev.before, before) &&
        sameList(prev.after, after)
      ) {
        prev.end = end;
      } else {
        changes.push({ start, end, before, after });
      }
    }
    // The segment ending at the lowest boundary starts at the highest one: it wraps, so it goes
    // last, merged with the range that ends at the highest boundary when their owners agree.
    const first = changes[0];
    if (first && changes.length > 1 && first.start === bounds.at(-1)) {
      changes.shift();
      const last = changes.at(-1)!;
      if (
        last.end === first.start &&
        sameList(last.before, first.before) &&
        sameList(last.after, first.after)
      ) {
        last.end = first.end;
      } else {
        changes.push(first);
      }
    }
    return changes;
  }

  /** The first `want` distinct members from entry `start` (wrapping); want <= members.length. */
  #walk(start: number, want: number): string[] {
    const tokens = this.#tokens;
    const owner = this.#owner;
    const seen = this.#seen;
    const members = this.members;
    const epoch = this.#nextEpoch();
    const result: string[] = [];
    let e = start === tokens.length ? 0 : start;
    for (;;) {
      const m = owner[e]!;
      if (seen[m] !== epoch) {
        seen[m] = epoch;
        result.push(members[m]!);
        if (result.length === want) return result;
      }
      e = e + 1 === tokens.length ? 0 : e + 1;
    }
  }

  #nextEpoch(): number {
    this.#epoch = (this.#epoch + 1) >>> 0;
    if (this.#epoch === 0) {
      this.#seen.fill(0);
      this.#epoch = 1;
    }
    return this.#epoch;
  }
}

function invalid(message: string): KvError {
  return new KvError('KV_ERR_INVALID_ARGUMENT', `ring: ${message}`);
}

/** min(n, size) after checking that n is a non-negative integer. */
function clampCount(n: number, size: number): number {
  if (!Number.isInteger(n) || n < 0) {
    throw invalid(`owner count must be a non-negative integer, got ${n}`);
  }
  return Math.min(n, size);
}

/**
 * Index of the first element >= value, or sorted.length when there is none. Branchless
 * (the conditional compiles to a select): ~40% faster than the textbook loop on random tokens.
 */
function lowerBound(sorted: Uint32Array, value: number): number {
  let base = 0;
  let size = sorted.length;
  while (size > 1) {
    const half = size >>> 1;
    base = sorted[base + half]! < value ? base + half : base;
    size -= half;
  }
  return size === 1 && sorted[base]! < value ? base + 1 : base;
}

/** The distinct values of two ascending arrays, ascending. */
function mergeUnique(a: Uint32Array, b: Uint32Array): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const v = j >= b.length || (i < a.length && a[i]! <= b[j]!) ? a[i++]! : b[j++]!;
    if (out.length === 0 || out[out.length - 1] !== v) out.push(v);
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
