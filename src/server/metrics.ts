// Metrics owned by the client-port server.

import { Counter, Gauge, type Registry } from 'prom-client';
import { ERROR_CODES, wireCode } from '../errors/index.ts';
import { HotCounter, HotHistogram } from '../observability/index.ts';
import { COMMAND_TYPES, type CommandType } from '../protocol/index.ts';

export interface ServerMetrics {
  readonly requests: HotCounter<CommandType>;
  readonly duration: HotHistogram<CommandType>;
  readonly errors: HotCounter<string>;
  readonly connections: Gauge;
  readonly connectionsTotal: Counter;
  readonly rejectedConnections: Counter;
  readonly idleClosed: Counter;
  readonly authFailures: Counter;
}

/** Latency buckets in seconds, from 100 µs to 10 s. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export function registerServerMetrics(registry: Registry): ServerMetrics {
  // Recorded for every command: the array-backed kind (see hot-metrics.ts).
  const requests = new HotCounter({
    name: 'kvstore_requests_total',
    help: 'Commands handled, by command (errors included).',
    labelName: 'command',
    labelValues: COMMAND_TYPES,
    registers: [registry],
  });
  const duration = new HotHistogram({
    name: 'kvstore_request_duration_seconds',
    help: 'Time from a command being decoded to its reply being ready, by command.',
    labelName: 'command',
    labelValues: COMMAND_TYPES,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const errors = new HotCounter({
    name: 'kvstore_errors_total',
    help: 'Error replies sent, by wire error code.',
    labelName: 'code',
    labelValues: (Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]).map(wireCode),
    registers: [registry],
  });
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
    idleClosed: new Counter({
      name: 'kvstore_connections_idle_closed_total',
      help: 'Client connections closed by the node after --client-idle-timeout-ms without traffic.',
      registers: [registry],
    }),
  };
}
