// Counters and histograms for the per-request path. prom-client hashes and validates the label
// set on every inc()/observe() (about a tenth of a node's CPU under load when every command
// records two of them); these keep one preallocated cell per label value, so recording is an
// array update, and produce prom-client's value objects only when scraped. They register with a
// prom-client Registry like its own metrics and print the same exposition text.

import type { Metric, Registry } from 'prom-client';

interface Exposed {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{
    name: string;
    help: string;
    type: 'counter' | 'histogram';
    aggregator: 'sum';
    values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
  }>;
  reset(): void;
}

function register(metric: Exposed, registers: readonly Registry[]): void {
  // The registry reads only name, help, type, aggregator and get(): the shape above.
  for (const r of registers) r.registerMetric(metric as unknown as Metric);
}

export interface HotMetricConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelName: string;
  /** Every label value, known up front: each gets its cell (and a zero sample) at once. */
  readonly labelValues: readonly L[];
  readonly registers: readonly Registry[];
}

export interface CounterCell {
  inc(by?: number): void;
}

/** A counter with one label whose values are fixed up front. */
export class HotCounter<L extends string> implements Exposed {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  readonly #labelName: string;
  readonly #cells = new Map<string, { value: number; inc(by?: number): void }>();

  constructor(c: HotMetricConfig<L>) {
    this.name = c.name;
    this.help = c.help;
    this.#labelName = c.labelName;
    for (const v of c.labelValues) {
      const cell = {
        value: 0,
        inc(by = 1) {
          cell.value += by;
        },
      };
      this.#cells.set(v, cell);
    }
    register(this, c.registers);
  }

  /** The cell of label value `v`. Throws on a value not declared up front (a programming error). */
  labels(v: L): CounterCell {
    const cell = this.#cells.get(v);
    if (cell === undefined) throw new Error(`${this.name}: unknown ${this.#labelName} "${v}"`);
    return cell;
  }

  async get() {
    const values = [...this.#cells].map(([v, cell]) => ({
      value: cell.value,
      labels: { [this.#labelName]: v },
    }));
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }

  reset(): void {
    for (const cell of this.#cells.values()) cell.value = 0;
  }
}

export interface HistogramCell {
  observe(value: number): void;
}

class HistogramData implements HistogramCell {
  /** counts[i]: observations <= bounds[i] and > bounds[i-1]; the last one is +Inf only. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  observe(value: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** A histogram with one label whose values are fixed up front. */
export class HotHistogram<L extends string> implements Exposed {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #labelName: string;
  readonly #bounds: readonly number[];
  readonly #cells = new Map<string, HistogramData>();

  constructor(c: HotMetricConfig<L> & { readonly buckets: readonly number[] }) {
    this.name = c.name;
    this.help = c.help;
    this.#labelName = c.labelName;
    this.#bounds = [...c.buckets].sort((a, b) => a - b);
    for (const v of c.labelValues) this.#cells.set(v, new HistogramData(this.#bounds));
    register(this, c.registers);
  }

  /** The cell of label value `v`. Throws on a value not declared up front (a programming error). */
  labels(v: L): HistogramCell {
    const cell = this.#cells.get(v);
    if (cell === undefined) throw new Error(`${this.name}: unknown ${this.#labelName} "${v}"`);
    return cell;
  }

  async get() {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] =
      [];
    for (const [v, cell] of this.#cells) {
      let cumulative = 0;
      for (let i = 0; i <= this.#bounds.length; i++) {
        cumulative += cell.counts[i]!;
        const le = i < this.#bounds.length ? this.#bounds[i]! : '+Inf';
        values.push({
          value: cumulative,
          labels: { le, [this.#labelName]: v },
          metricName: `${this.name}_bucket`,
        });
      }
      const labels = { [this.#labelName]: v };
      values.push({ value: cell.sum, labels, metricName: `${this.name}_sum` });
      values.push({ value: cell.count, labels, metricName: `${this.name}_count` });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }

  reset(): void {
    for (const cell of this.#cells.values()) cell.reset();
  }
}
