// Hybrid logical clock: versions that order writes across nodes and survive clock skew.

/** A record version. Compared by wall, then logical, then node name; higher wins. */
export interface Version {
  /** Milliseconds since the epoch (48 bits). */
  readonly wall: number;
  /** Counter within one millisecond (16 bits). */
  readonly logical: number;
  /** The node that made the version: breaks ties deterministically. */
  readonly node: string;
}

/** Negative when a < b, positive when a > b, 0 only for the same version. */
export function compareVersions(a: Version, b: Version): number {
  if (a.wall !== b.wall) return a.wall - b.wall;
  if (a.logical !== b.logical) return a.logical - b.logical;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

const MAX_LOGICAL = 0xffff;

/**
 * The clock of one node. `now()` is strictly increasing for this node even if the wall clock goes
 * backwards; `observe()` moves it past a version seen from elsewhere (or read from disk at start),
 * so a write made after reading version v always gets a version above v.
 */
export class HybridClock {
  readonly node: string;
  #wall = 0;
  #logical = 0;
  readonly #physical: () => number;

  constructor(node: string, physical: () => number = Date.now) {
    this.node = node;
    this.#physical = physical;
  }

  /** A new version, above every version this clock made or observed. */
  now(): Version {
    const pt = this.#physical();
    if (pt > this.#wall) {
      this.#wall = pt;
      this.#logical = 0;
    } else if (this.#logical < MAX_LOGICAL) {
      this.#logical++;
    } else {
      this.#wall++;
      this.#logical = 0;
    }
    return { wall: this.#wall, logical: this.#logical, node: this.node };
  }

  /** Moves the clock to at least `v`, so the next `now()` is above it. */
  observe(v: Version): void {
    if (v.wall > this.#wall || (v.wall === this.#wall && v.logical > this.#logical)) {
      this.#wall = v.wall;
      this.#logical = v.logical;
    }
  }
}
