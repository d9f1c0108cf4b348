// observability: the logger, the metrics registry, and the HTTP port serving /metrics and health.

import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export { FAILURE_LOG_EVERY_MS, FailureLog, type FailureLogOptions } from './failure-log.ts';
export {
  type CounterCell,
  type HistogramCell,
  HotCounter,
  HotGauge,
  HotHistogram,
} from './hot-metrics.ts';
export {
  type AdminRoute,
  type AuthCheck,
  type BodyReader,
  type HttpEndpoint,
  type HttpOptions,
  queryBytes,
  type Readiness,
  type StaticPage,
  type StreamRoute,
  startHttp,
} from './http.ts';
export { createLogger, isoTime, type Logger } from './logger.ts';
export { LogThrottle } from './throttle.ts';

/** A gauge that reads 1 while `on()` is true and 0 otherwise, read when scraped. */
export function flagGauge(registry: Registry, name: string, help: string, on: () => boolean): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(on() ? 1 : 0);
    },
  });
}

const NON_COUNTER_TOTALS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** A fresh registry with the default process metrics (one per node, so tests can run several). */
export function createRegistry(): Registry {
  const registry = new Registry();
  // The event-loop lag histogram (nodejs_eventloop_lag_*) samples every 100 ms: prom-client's
  // 10 ms woke an idle node 100 times a second, a third of its idle CPU (29 against 19-21
  // clock ticks per 30 s). The price: a stall is recorded up to 100 ms short (10 ms before),
  // and one under 100 ms may fall between samples.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  // prom-client names these gauges `*_total`, which promtool rejects (a suffix reserved for
  // counters). The per-type gauges `nodejs_active_{handles,requests,resources}` remain; sum them.
  for (const name of NON_COUNTER_TOTALS) registry.removeSingleMetric(name);
  return registry;
}
