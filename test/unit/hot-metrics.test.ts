import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotGauge, HotHistogram } from '../../src/observability/index.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const LABELS = ['get', 'put'] as const;

/** The same observations into prom-client's own metrics and ours: the exposition must match. */
function both() {
  const theirs = new Registry();
  const ours = new Registry();
  const config = { help: 'h', registers: [theirs] };
  const c1 = new Counter({ name: 'c_total', labelNames: ['command'], ...config });
  const h1 = new Histogram({
    name: 'h_seconds',
    labelNames: ['command'],
    buckets: BUCKETS,
    ...config,
  });
  const zero = () => {
    for (const l of LABELS) {
      c1.labels(l).inc(0);
      h1.zero({ command: l });
    }
  };
  zero();
  const hot = { help: 'h', labelName: 'command', labelValues: LABELS, registers: [ours] };
  const c2 = new HotCounter({ name: 'c_total', ...hot });
  const h2 = new HotHistogram({ name: 'h_seconds', buckets: BUCKETS, ...hot });
  return {
    theirs,
    ours,
    zero,
    inc: (l: (typeof LABELS)[number], by?: number) => {
      c1.labels(l).inc(by);
      c2.labels(l).inc(by);
    },
    observe: (l: (typeof LABELS)[number], v: number) => {
      h1.labels(l).observe(v);
      h2.labels(l).observe(v);
    },
  };
}

describe('hot metrics', () => {
  it('print what prom-client prints for a histogram without labels', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const h1 = new Histogram({
      name: 'p_seconds',
      help: 'h',
      buckets: BUCKETS,
      registers: [theirs],
    });
    const h2 = new HotHistogram({
      name: 'p_seconds',
      help: 'h',
      labelName: '',
      labelValues: [''],
      buckets: BUCKETS,
      registers: [ours],
    }).labels('');
    expect((await ours.metrics()).split('\n')).toEqual((await theirs.metrics()).split('\n'));
    for (const v of [0.0005, 0.02, 0.02, 5]) {
      h1.observe(v);
      h2.observe(v);
    }
    const text = await ours.metrics();
    expect(text).toContain('p_seconds_bucket{le="0.1"} 3');
    expect(text.split('\n')).toEqual((await theirs.metrics()).split('\n'));
  });

  it('print exactly what prom-client prints for the same observations', async () => {
    const m = both();
    expect((await m.ours.metrics()).split('\n')).toEqual((await m.theirs.metrics()).split('\n'));
    const values = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.7, 1, 3, 1e9];
    for (const [i, v] of values.entries()) {
      m.observe(i % 3 === 0 ? 'put' : 'get', v);
      m.inc('get');
    }
    m.inc('put', 5);
    expect((await m.ours.metrics()).split('\n')).toEqual((await m.theirs.metrics()).split('\n'));
    m.ours.resetMetrics();
    m.theirs.resetMetrics();
    // prom-client forgets the label sets on reset; ours keep every declared one at zero.
    m.zero();
    m.inc('put');
    m.observe('get', 0.02);
    expect((await m.ours.metrics()).split('\n')).toEqual((await m.theirs.metrics()).split('\n'));
  });

  it('print gauges and label values first seen later like prom-client', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const g1 = new Gauge({ name: 'g', help: 'h', labelNames: ['side'], registers: [theirs] });
    const g2 = new HotGauge<string>({
      name: 'g',
      help: 'h',
      labelName: 'side',
      labelValues: [],
      registers: [ours],
    });
    const c1 = new Counter({
      name: 'm_total',
      help: 'h',
      labelNames: ['method'],
      registers: [theirs],
    });
    const c2 = new HotCounter<string>({
      name: 'm_total',
      help: 'h',
      labelName: 'method',
      labelValues: [],
      registers: [ours],
    });
    for (const [side, op] of [
      ['client', 'inc'],
      ['server', 'inc'],
      ['client', 'inc'],
      ['client', 'dec'],
    ] as const) {
      g1.labels(side)[op]();
      g2.labels(side)[op]();
    }
    g1.labels('server').set(7);
    g2.labels('server').set(7);
    for (const m of ['get', 'put', 'get']) {
      c1.labels(m).inc();
      c2.labels(m).inc();
    }
    expect((await ours.metrics()).split('\n')).toEqual((await theirs.metrics()).split('\n'));
  });
});
