// The operator's own Prometheus metrics (prefix kvstore_operator_).

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { PHASES, type Phase } from './api/v1alpha1/index.ts';

export interface OperatorMetrics {
  /** One reconcile finished: result is `success` or `error`. */
  reconciled(result: 'success' | 'error', seconds: number): void;
  /** Sets the number of KVClusters in each phase (every phase is reported, 0 when none). */
  setPhases(counts: ReadonlyMap<Phase, number>): void;
  setQueueDepth(depth: number): void;
  setLeader(leading: boolean): void;
  watchRestarted(informer: string): void;
}

/** Registers the operator metrics in `registry`. */
export function createOperatorMetrics(registry: Registry): OperatorMetrics {
  const reconciles = new Counter({
    name: 'kvstore_operator_reconciles_total',
    help: 'Reconciles of KVClusters, by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'kvstore_operator_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff.',
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'kvstore_operator_reconcile_duration_seconds',
    help: 'Time of one reconcile.',
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const clusters = new Gauge({
    name: 'kvstore_operator_clusters',
    help: 'KVClusters by phase.',
    labelNames: ['phase'] as const,
    registers: [registry],
  });
  const depth = new Gauge({
    name: 'kvstore_operator_queue_depth',
    help: 'KVClusters waiting to be reconciled.',
    registers: [registry],
  });
  const leader = new Gauge({
    name: 'kvstore_operator_leader',
    help: 'Whether this process holds the leader Lease (1) or not (0).',
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'kvstore_operator_watch_restarts_total',
    help: 'Informer restarts after list/watch errors.',
    labelNames: ['informer'] as const,
    registers: [registry],
  });
  for (const p of PHASES) clusters.labels(p).set(0);
  reconciles.labels('success').inc(0);
  reconciles.labels('error').inc(0);
  return {
    reconciled(result, seconds) {
      reconciles.labels(result).inc();
      if (result === 'error') errors.inc();
      duration.observe(seconds);
    },
    setPhases(counts) {
      for (const p of PHASES) clusters.labels(p).set(counts.get(p) ?? 0);
    },
    setQueueDepth: (n) => depth.set(n),
    setLeader: (leading) => leader.set(leading ? 1 : 0),
    watchRestarted: (informer) => restarts.labels(informer).inc(),
  };
}
