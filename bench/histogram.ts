// Fixed-bucket log-linear latency histogram (HdrHistogram-like, <1% error), mergeable across threads.

/** 2^SUB_BITS linear sub-buckets per power of two; the upper half of them is used above 2^SUB_BITS. */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const HALF = SUB >> 1;
/** Largest recordable value is 2^MAX_EXP - 1 nanoseconds (about 18 minutes); larger ones clamp. */
const MAX_EXP = 40;
const MAX_VALUE = 2 ** MAX_EXP - 1;
/** Number of buckets: values 0..SUB-1 exactly, then HALF buckets per further power of two. */
export const BUCKET_COUNT = (MAX_EXP - SUB_BITS + 2) * HALF;

/** floor(log2(v)) for an integer 1 <= v < 2^53. */
function exponent(v: number): number {
  if (v < 0x80000000) return 31 - Math.clz32(v);
  const hi = Math.floor(v / 0x100000000);
  return hi === 0 ? 31 : 63 - Math.clz32(hi);
}

/** The bucket a value (nanoseconds) falls into. */
export function bucketOf(ns: number): number {
  const v = ns <= 0 ? 0 : ns >= MAX_VALUE ? MAX_VALUE : Math.floor(ns);
  if (v < SUB) return v;
  const shift = exponent(v) - (SUB_BITS - 1);
  return shift * HALF + Math.floor(v / 2 ** shift);
}

/** The middle of a bucket's value range (its exact value for the first SUB buckets). */
export function bucketValue(index: number): number {
  if (index < SUB) return index;
  const shift = Math.floor(index / HALF) - 1;
  const lower = (index - shift * HALF) * 2 ** shift;
  return lower + (2 ** shift - 1) / 2;
}

/** Latency summary in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
}

/** Counts per bucket in a preallocated array; record() never allocates. */
export class Histogram {
  readonly counts: Float64Array;
  total = 0;
  sumNs = 0;
  maxNs = 0;

  constructor(counts: Float64Array = new Float64Array(BUCKET_COUNT)) {
    this.counts = counts;
    for (let i = 0; i < counts.length; i++) this.total += counts[i]!;
  }

  record(ns: number): void {
    this.counts[bucketOf(ns)]! += 1;
    this.total += 1;
    this.sumNs += ns;
    if (ns > this.maxNs) this.maxNs = ns;
  }

  /** Records the same value n times (replies that arrived in one read share their receive time). */
  recordMany(ns: number, n: number): void {
    this.counts[bucketOf(ns)]! += n;
    this.total += n;
    this.sumNs += ns * n;
    if (ns > this.maxNs) this.maxNs = ns;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.sumNs = 0;
    this.maxNs = 0;
  }

  /** Adds another histogram's counts (e.g. one received from a worker thread). */
  merge(other: { counts: Float64Array; sumNs: number; maxNs: number }): void {
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const c = other.counts[i]!;
      this.counts[i]! += c;
      this.total += c;
    }
    this.sumNs += other.sumNs;
    if (other.maxNs > this.maxNs) this.maxNs = other.maxNs;
  }

  /** The value (ns) at quantile q in [0, 1]: the middle of the bucket holding the q-th sample. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketValue(i), this.maxNs);
    }
    return this.maxNs;
  }

  summary(): LatencySummary {
    const us = (ns: number) => Math.round(ns / 10) / 100;
    return {
      count: this.total,
      meanUs: us(this.total === 0 ? 0 : this.sumNs / this.total),
      p50Us: us(this.quantile(0.5)),
      p90Us: us(this.quantile(0.9)),
      p99Us: us(this.quantile(0.99)),
      p999Us: us(this.quantile(0.999)),
      maxUs: us(this.maxNs),
    };
  }
}
