// Counters, gauges and histograms for the per-request paths. prom-client hashes and validates
// the label set on every inc()/observe() (about a tenth of a node's CPU under load when every
// command records two of them); these keep one cell per label value, so recording is a map
// lookup and an add, and produce prom-client's value objects only when scraped. They register
// with a prom-client Registry like its own metrics and print the same exposition text
// (test/unit/hot-metrics.test.ts compares them). One label each: that is all these paths need.

import type { Metric, Registry } from 'prom-client';

type Kind = 'counter' | 'gauge' | 'histogram';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface Exposed {
  readonly name: string;
  readonly help: string;
  readonly type: Kind;
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: Kind; aggregator: 'sum'; values: Sample[] }>;
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
  /** Label values exposed from the start (at zero); others get their cell on first use. */
  readonly labelValues: readonly L[];
  readonly registers: readonly Registry[];
}

export interface CounterCell {
  inc(by?: number): void;
}

export interface GaugeCell extends CounterCell {
  dec(by?: number): void;
  set(value: number): void;
}

class ValueCell implements GaugeCell {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
  set(value: number): void {
    this.value = value;
  }
}

/** A counter or a gauge with one label: one number per label value. */
class HotValue<L extends string> implements Exposed {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly aggregator = 'sum' as const;
  readonly #labelName: string;
  readonly #cells = new Map<string, ValueCell>();

  constructor(type: 'counter' | 'gauge', c: HotMetricConfig<L>) {
    this.type = type;
    this.name = c.name;
    this.help = c.help;
    this.#labelName = c.labelName;
    for (const v of c.labelValues) this.#cells.set(v, new ValueCell());
    register(this, c.registers);
  }

  protected cell(v: L): ValueCell {
    let cell = this.#cells.get(v);
    if (cell === undefined) {
      cell = new ValueCell();
      this.#cells.set(v, cell);
    }
    return cell;
  }

  async get() {
    const values: Sample[] = [];
    for (const [v, cell] of this.#cells) {
      values.push({ value: cell.value, labels: { [this.#labelName]: v } });
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
    for (const cell of this.#cells.values()) cell.value = 0;
  }
}

/** A counter with one label. */
export class HotCounter<L extends string> extends HotValue<L> {
  constructor(c: HotMetricConfig<L>) {
    super('counter', c);
  }

  /** The cell of label value `v` (created at zero on first use). */
  labels(v: L): CounterCell {
    return this.cell(v);
  }
}

/** A gauge with one label. */
export class HotGauge<L extends string> extends HotValue<L> {
  constructor(c: HotMetricConfig<L>) {
    super('gauge', c);
  }

  /** The cell of label value `v` (created at zero on first use). */
  labels(v: L): GaugeCell {
    return this.cell(v);
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

/** A histogram with one label. */
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

  /** The cell of label value `v` (created empty on first use). */
  labels(v: L): HistogramCell {
    let cell = this.#cells.get(v);
    if (cell === undefined) {
      cell = new HistogramData(this.#bounds);
      this.#cells.set(v, cell);
    }
    return cell;
  }

  async get() {
    const values: Sample[] = [];
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
