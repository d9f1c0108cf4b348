// Metrics owned by the client-port server.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ERROR_CODES, wireCode } from '../errors/index.ts';
import { COMMAND_TYPES } from '../protocol/index.ts';

export interface ServerMetrics {
  readonly requests: Counter<'command'>;
  readonly duration: Histogram<'command'>;
  readonly errors: Counter<'code'>;
  readonly connections: Gauge;
  readonly connectionsTotal: Counter;
  readonly rejectedConnections: Counter;
  readonly authFailures: Counter;
}

/** Latency buckets in seconds, from 100 µs to 10 s. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export function registerServerMetrics(registry: Registry): ServerMetrics {
  const requests = new Counter({
    name: 'kvstore_requests_total',
    help: 'Commands handled, by command (errors included).',
    labelNames: ['command'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'kvstore_request_duration_seconds',
    help: 'Time from a command being decoded to its reply being ready, by command.',
    labelNames: ['command'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'kvstore_errors_total',
    help: 'Error replies sent, by wire error code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  for (const c of COMMAND_TYPES) {
    requests.labels(c).inc(0);
    duration.zero({ command: c });
  }
  for (const code of Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]) {
    errors.labels(wireCode(code)).inc(0);
  }
  return {
    requests,
    duration,
    errors,
    connections: new Gauge({
      name: 'kvstore_connections',
      help: 'Open client connections.',
      registers: [registry],
    }),
    connectionsTotal: new Counter({
      name: 'kvstore_connections_accepted_total',
      help: 'Client connections accepted since start.',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'kvstore_auth_failures_total',
      help: 'AUTH commands with a wrong password.',
      registers: [registry],
    }),
    rejectedConnections: new Counter({
      name: 'kvstore_connections_rejected_total',
      help: 'Client connections refused because --max-connections was reached.',
      registers: [registry],
    }),
  };
}
