// The last few minutes of the client port's traffic, sampled from the node's own metrics.

import type { Registry } from 'prom-client';

/** One interval between two samples: rates, latency quantiles and errors, by label. */
export interface TrafficPoint {
  /** End of the interval (ms since the epoch). */
  readonly t: number;
  /** Commands per second, by command (commands with none left out). */
  readonly rate: Record<string, number>;
  /** Latency quantiles in seconds, by command: the upper bound of the bucket holding it. */
  readonly p50: Record<string, number>;
  readonly p99: Record<string, number>;
  /** Error replies in the interval, by wire code (codes with none left out). */
  readonly errors: Record<string, number>;
}

interface Snapshot {
  readonly t: number;
  readonly requests: Map<string, number>;
  /** Cumulative bucket counts by command, in the order of `bounds`. */
  readonly buckets: Map<string, number[]>;
  readonly bounds: number[];
  readonly errors: Map<string, number>;
}

type MetricValue = { value: number; labels: Record<string, string | number>; metricName?: string };

async function values(registry: Registry, name: string): Promise<MetricValue[]> {
  const m = registry.getSingleMetric(name);
  if (!m) return [];
  return ((await m.get()) as { values: MetricValue[] }).values;
}

async function snapshot(registry: Registry): Promise<Snapshot> {
  const requests = new Map<string, number>();
  for (const v of await values(registry, 'kvstore_requests_total'))
    requests.set(String(v.labels.command), v.value);
  const errors = new Map<string, number>();
  for (const v of await values(registry, 'kvstore_errors_total'))
    errors.set(String(v.labels.code), v.value);
  const buckets = new Map<string, number[]>();
  const bounds: number[] = [];
  for (const v of await values(registry, 'kvstore_request_duration_seconds')) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const cmd = String(v.labels.command);
    const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
    const list = buckets.get(cmd) ?? [];
    if (list.length === 0) buckets.set(cmd, list);
    list.push(v.value);
    if (buckets.size === 1) bounds.push(le);
  }
  return { t: Date.now(), requests, buckets, bounds, errors };
}

/** The upper bound of the bucket where the q-quantile of the interval's observations falls. */
function quantile(bounds: readonly number[], delta: readonly number[], q: number): number {
  const total = delta.at(-1) ?? 0;
  const want = q * total;
  for (let i = 0; i < delta.length; i++) {
    if (delta[i]! >= want) {
      const b = bounds[i]!;
      // Beyond the last finite bound: report that bound (the histogram knows no more).
      return Number.isFinite(b) ? b : (bounds.at(-2) ?? 0);
    }
  }
  return 0;
}

function point(a: Snapshot, b: Snapshot): TrafficPoint {
  const seconds = Math.max(0.001, (b.t - a.t) / 1000);
  const rate: Record<string, number> = {};
  const p50: Record<string, number> = {};
  const p99: Record<string, number> = {};
  for (const [cmd, n] of b.requests) {
    const d = n - (a.requests.get(cmd) ?? 0);
    if (d <= 0) continue;
    rate[cmd] = Math.round((d / seconds) * 10) / 10;
    const now = b.buckets.get(cmd);
    const before = a.buckets.get(cmd);
    if (!now) continue;
    const delta = now.map((c, i) => c - (before?.[i] ?? 0));
    p50[cmd] = quantile(b.bounds, delta, 0.5);
    p99[cmd] = quantile(b.bounds, delta, 0.99);
  }
  const errors: Record<string, number> = {};
  for (const [code, n] of b.errors) {
    const d = n - (a.errors.get(code) ?? 0);
    if (d > 0) errors[code] = d;
  }
  return { t: b.t, rate, p50, p99, errors };
}

/**
 * Samples the request and error metrics every `intervalMs` and keeps `keep` intervals (with the
 * defaults, 5 s and 5 minutes). Stops with stop().
 */
export class TrafficHistory {
  readonly #registry: Registry;
  readonly #keep: number;
  readonly #snapshots: Snapshot[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(registry: Registry, intervalMs = 5000, keep = 60) {
    this.#registry = registry;
    this.#keep = keep;
    void this.#sample();
    this.#timer = setInterval(() => void this.#sample(), intervalMs);
    this.#timer.unref();
  }

  async #sample(): Promise<void> {
    this.#snapshots.push(await snapshot(this.#registry));
    if (this.#snapshots.length > this.#keep + 1) this.#snapshots.shift();
  }

  /** The intervals kept, oldest first, plus the one from the last sample until now. */
  async points(): Promise<TrafficPoint[]> {
    const s = [...this.#snapshots];
    const now = await snapshot(this.#registry);
    // The interval still open counts once it is long enough to give a rate worth showing.
    if (s.length === 0 || now.t - s.at(-1)!.t >= 1000) s.push(now);
    const out: TrafficPoint[] = [];
    for (let i = 1; i < s.length; i++) out.push(point(s[i - 1]!, s[i]!));
    return out;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
