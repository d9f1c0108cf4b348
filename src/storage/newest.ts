// A bound on the newest version of each key, by hash bucket: which writes win on their version
// alone without reading the record they replace (Storage.#applyOne).

import { compareVersions, type Version } from './hlc.ts';

/** Buckets (a power of two): 576 KiB of bounds, allocated at the first write (an empty store has none). */
const BUCKETS = 1 << 15;

/**
 * For every key, a version at or above every version the store holds of it: the largest version
 * written to any key of its hash bucket since the bucket was first written, and for a bucket not
 * written yet the store's newest version (`floor()`, which is at or above every version stored).
 * So a write above its key's bound is above every stored version of that key, although not
 * above the store's newest: a replica's write from another coordinator often is not (a write
 * that this node's own coordinator made since is newer), and it then wins without an LMDB read.
 * Exact as long as every write stored goes through `wrote` (Storage.#applyOne is the only
 * writer of the data table) and `floor()` never goes back; discards only lower what is stored.
 */
export class NewestVersions {
  // Each bucket's bound as typed arrays (a wall of -1: none yet), not Version objects: one
  // cache miss per write at most, rather than the reference and then the object. Null until the
  // first write records a bound: every bucket is then unwritten, and an empty node (which may
  // never take a write) does not hold the tables (256 KiB of walls filled with -1, 256 KiB of
  // node references in V8's heap, 64 KiB of logicals).
  #walls: Float64Array | null = null;
  #logicals = new Uint16Array(0);
  #nodes: string[] = [];
  readonly #floor: () => Version;

  constructor(floor: () => Version) {
    this.#floor = floor;
  }

  /** The bucket of `key` (FNV-1a of its bytes). */
  bucket(key: Buffer): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193);
    return (h >>> 0) & (BUCKETS - 1);
  }

  /** True when `v` is above every version stored of the keys of bucket `b`. */
  above(b: number, v: Version): boolean {
    const wall = this.#walls === null ? -1 : this.#walls[b]!;
    if (wall < 0) return compareVersions(v, this.#floor()) > 0;
    if (v.wall !== wall) return v.wall > wall;
    const logical = this.#logicals[b]!;
    if (v.logical !== logical) return v.logical > logical;
    return v.node > this.#nodes[b]!;
  }

  /**
   * Records a write of version `v` stored at a key of bucket `b`, which was `above(b, v)` or not
   * (called before the store's newest version moves to `v`).
   */
  wrote(b: number, v: Version, above: boolean): void {
    if (above) this.#set(b, v);
    else if (this.#walls === null || this.#walls[b]! < 0) this.#set(b, this.#floor());
  }

  /** The bytes the bounds take: 0 until the first write. */
  get bytes(): number {
    // The node names' array holds a reference (8 bytes) per bucket.
    return this.#walls === null
      ? 0
      : this.#walls.byteLength + this.#logicals.byteLength + 8 * BUCKETS;
  }

  #set(b: number, v: Version): void {
    if (this.#walls === null) {
      this.#walls = new Float64Array(BUCKETS).fill(-1);
      this.#logicals = new Uint16Array(BUCKETS);
      this.#nodes = new Array<string>(BUCKETS).fill('');
    }
    this.#walls[b] = v.wall;
    this.#logicals[b] = v.logical;
    this.#nodes[b] = v.node;
  }
}
