// Hybrid logical clock: versions that order writes across nodes and survive clock skew.

/** A record version. Compared by wall, then logical, then node name; higher wins. */
export interface Version {
  /** Milliseconds since the epoch (48 bits). */
  readonly wall: number;
  /**
   * Within one millisecond (16 bits): the microseconds past it times SUB_MS_STEP when made
   * (HybridClock), and a counter above that.
   */
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

/** Largest logical counter (16 bits); the next tick carries into the wall time. */
export const MAX_LOGICAL = 0xffff;

/**
 * Largest wall time a valid version may carry: 2^47 - 1 ms, the year 6429. The record format has
 * 48 bits; the half above this is never valid, so the clock's carries (+1 ms when the counter
 * overflows) can never run out of the field. A version above it is corrupt or hostile: the clock
 * never adopts it, peers refuse it, and a write replaces such a record whatever its version.
 */
export const MAX_VALID_WALL = 2 ** 47 - 1;

/**
 * Logical units per microsecond. A version's logical part starts at the microseconds past its
 * millisecond times this (at most 999 * 64 = 63,936 < MAX_LOGICAL), so versions that nodes on
 * one clock make a microsecond or more apart are ordered as they were made; 64 versions fit in
 * one microsecond before the counter reaches the next one's range (still increasing).
 */
export const SUB_MS_STEP = 64;

/** performance.timeOrigin, read once: a getter (a call) on every version otherwise. */
const TIME_ORIGIN = performance.timeOrigin;

/**
 * Microseconds past the millisecond `ms` (read from Date.now() just before), 0 to 999, from
 * `performance.timeOrigin + performance.now()` (wall time with microseconds). Clamped, so a
 * difference between the two clocks (a step of the wall clock since the process started) only
 * makes it 0 or 999, never a value outside the millisecond.
 */
export function microsPast(ms: number): number {
  const us = Math.floor((TIME_ORIGIN + performance.now() - ms) * 1000);
  return Math.max(0, Math.min(us, 999));
}

/**
 * A reading of the clocks as one number for HybridClock.nowAt: `wallMs` (a Date.now()) plus the
 * fraction of its millisecond past it that `monoMs` (a performance.now() read right after it)
 * puts it at, clamped as microsPast clamps it.
 */
export function readingAt(wallMs: number, monoMs: number): number {
  const past = TIME_ORIGIN + monoMs - wallMs;
  return wallMs + Math.max(0, Math.min(past, 0.999));
}

/** Default of --max-clock-offset-ms (CockroachDB's default maximum offset). */
export const DEFAULT_MAX_CLOCK_OFFSET_MS = 500;

/** Whether `v` is a version a node may hold or make: wall and logical within their ranges. */
export function isValidVersion(v: Version): boolean {
  return (
    Number.isInteger(v.wall) &&
    v.wall >= 0 &&
    v.wall <= MAX_VALID_WALL &&
    Number.isInteger(v.logical) &&
    v.logical >= 0 &&
    v.logical <= MAX_LOGICAL
  );
}

/**
 * The clock of one node. `now()` is strictly increasing for this node even if the wall clock goes
 * backwards; `observe()` moves it past a version seen from elsewhere (or read from disk at start),
 * so a write made after reading version v always gets a version above v.
 *
 * Remote versions are first checked with `aheadMs()`: one more than `maxOffsetMs` ahead of this
 * node's physical clock is refused by the peer boundary (replica/), never observed, the way
 * CockroachDB refuses timestamps beyond its maximum clock offset. `observe()` itself never adopts
 * an invalid version (see MAX_VALID_WALL), so nothing can push the clock out of its range.
 */
export class HybridClock {
  readonly node: string;
  /** How far ahead of the physical clock a remote version may be, in ms. */
  readonly maxOffsetMs: number;
  #wall = 0;
  #logical = 0;
  readonly #physical: () => number;
  readonly #micros: (ms: number) => number;

  /**
   * `physical`: the wall clock in ms. `micros`: the microseconds past a millisecond it returned
   * (default microsPast with Date.now, else none: 0).
   */
  constructor(
    node: string,
    physical: () => number = Date.now,
    maxOffsetMs: number = DEFAULT_MAX_CLOCK_OFFSET_MS,
    micros: (ms: number) => number = physical === Date.now ? microsPast : () => 0,
  ) {
    this.node = node;
    this.#physical = physical;
    this.maxOffsetMs = maxOffsetMs;
    this.#micros = micros;
  }

  /**
   * A new version, above every version this clock made or observed. Its logical part starts at
   * the microseconds past the millisecond (SUB_MS_STEP), so that a write one node makes after
   * another node's write, in the same millisecond, still gets the higher version (a client
   * writing through one node and then another: versions counted whole milliseconds and that
   * tie went by node name).
   */
  now(): Version {
    const pt = this.#physical();
    return this.#next(pt, this.#micros(pt) * SUB_MS_STEP);
  }

  /**
   * now() from a reading of the wall clock the caller made and checked (ClockCheck.check: the
   * wall clock read between two reads of the monotonic clock): `at` is that Date.now() with the
   * fraction of its millisecond from the monotonic read after it (readingAt). The version is then
   * made from the very reading the check found unstepped, with no read of the clocks of its own
   * (two per version else: a SET read the clocks seven times).
   */
  nowAt(at: number): Version {
    const pt = Math.floor(at);
    const us = Math.floor((at - pt) * 1000);
    return this.#next(pt, Math.min(us, 999) * SUB_MS_STEP);
  }

  #next(pt: number, sub: number): Version {
    if (pt > this.#wall) {
      this.#wall = pt;
      this.#logical = sub;
    } else if (pt === this.#wall && sub > this.#logical) {
      this.#logical = sub;
    } else if (this.#logical < MAX_LOGICAL) {
      this.#logical++;
    } else {
      this.#wall++;
      this.#logical = 0;
    }
    return { wall: this.#wall, logical: this.#logical, node: this.node };
  }

  /**
   * Moves the clock to at least `v`, so the next `now()` is above it. Returns false, and leaves
   * the clock alone, for an invalid version (isValidVersion).
   */
  observe(v: Version): boolean {
    if (!isValidVersion(v)) return false;
    if (v.wall > this.#wall || (v.wall === this.#wall && v.logical > this.#logical)) {
      this.#wall = v.wall;
      this.#logical = v.logical;
    }
    return true;
  }

  /**
   * The time expiry is judged by (ms since the epoch): the physical clock, or the clock's own
   * wall time when that is ahead (a version observed from a node up to --max-clock-offset-ms
   * ahead). It never goes back while the process runs, so a key seen expired stays expired.
   */
  wallNow(): number {
    const pt = this.#physical();
    if (pt > this.#wall) return pt;
    return this.#wall;
  }

  /**
   * How many ms this clock is ahead of the physical clock (negative when behind): at most
   * --max-clock-offset-ms from versions observed (remote ones beyond it are refused), more only
   * when it made versions under a wall clock that was ahead then and is stepped back since.
   * `physicalMs`: the physical clock as the caller just read it (by default, read now).
   */
  leadMs(physicalMs: number = this.#physical()): number {
    return this.#wall - physicalMs;
  }

  /** How many ms `v` is ahead of this node's physical clock (negative when behind). */
  aheadMs(v: Version): number {
    return v.wall - this.#physical();
  }
}
