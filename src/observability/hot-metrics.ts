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
  /** The one label's name; '' for a metric without labels (its one cell is `labels('')`). */
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
  reset(): void {
    this.value = 0;
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
  readonly bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** One cell per label value, made on first use; the samples of each cell when scraped. */
abstract class HotMetric<L extends string, C extends { reset(): void }> implements Exposed {
  readonly name: string;
  readonly help: string;
  abstract readonly type: Kind;
  readonly aggregator = 'sum' as const;
  protected readonly labelName: string;
  readonly #cells = new Map<string, C>();
  readonly #make: () => C;

  constructor(c: HotMetricConfig<L>, make: () => C) {
    this.name = c.name;
    this.help = c.help;
    this.labelName = c.labelName;
    this.#make = make;
    for (const v of c.labelValues) this.#cells.set(v, make());
    register(this, c.registers);
  }

  protected cell(v: L): C {
    let cell = this.#cells.get(v);
    if (cell === undefined) {
      cell = this.#make();
      this.#cells.set(v, cell);
    }
    return cell;
  }

  /** The labels of the cell of label value `v`: none for a metric without labels. */
  protected own(v: string): Record<string, string> {
    return this.labelName === '' ? {} : { [this.labelName]: v };
  }

  /** Appends the samples of the cell of label value `v`. */
  protected abstract samples(out: Sample[], v: string, cell: C): void;

  async get() {
    const values: Sample[] = [];
    for (const [v, cell] of this.#cells) this.samples(values, v, cell);
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

abstract class HotValue<L extends string> extends HotMetric<L, ValueCell> {
  constructor(c: HotMetricConfig<L>) {
    super(c, () => new ValueCell());
  }

  protected samples(out: Sample[], v: string, cell: ValueCell): void {
    out.push({ value: cell.value, labels: this.own(v) });
  }
}

/** A counter with one label. */
export class HotCounter<L extends string> extends HotValue<L> {
  readonly type = 'counter' as const;

  /** The cell of label value `v` (created at zero on first use). */
  labels(v: L): CounterCell {
    return this.cell(v);
  }
}

/** A gauge with one label. */
export class HotGauge<L extends string> extends HotValue<L> {
  readonly type = 'gauge' as const;

  /** The cell of label value `v` (created at zero on first use). */
  labels(v: L): GaugeCell {
    return this.cell(v);
  }
}

/** A histogram with one label. */
export class HotHistogram<L extends string> extends HotMetric<L, HistogramData> {
  readonly type = 'histogram' as const;

  constructor(c: HotMetricConfig<L> & { readonly buckets: readonly number[] }) {
    const bounds = [...c.buckets].sort((a, b) => a - b);
    super(c, () => new HistogramData(bounds));
  }

  /** The cell of label value `v` (created empty on first use). */
  labels(v: L): HistogramCell {
    return this.cell(v);
  }

  protected samples(out: Sample[], v: string, cell: HistogramData): void {
    let cumulative = 0;
    for (let i = 0; i <= cell.bounds.length; i++) {
      cumulative += cell.counts[i]!;
      const le = i < cell.bounds.length ? cell.bounds[i]! : '+Inf';
      out.push({
        value: cumulative,
        labels: { le, ...this.own(v) },
        metricName: `${this.name}_bucket`,
      });
    }
    const labels = this.own(v);
    out.push({ value: cell.sum, labels, metricName: `${this.name}_sum` });
    out.push({ value: cell.count, labels, metricName: `${this.name}_count` });
  }
}
