// observability: the logger, the metrics registry, and the HTTP port serving /metrics and health.

import { collectDefaultMetrics, Registry } from 'prom-client';

export { type HttpEndpoint, type HttpOptions, startHttp } from './http.ts';
export { createLogger, type Logger } from './logger.ts';

/** A fresh registry with the default process metrics (one per node, so tests can run several). */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
