// rebalance: moving data on ring changes and decommission, hinted handoff, anti-entropy, tombstone collection.

export {
  ANTI_ENTROPY_METHODS,
  AntiEntropy,
  type AntiEntropyMetrics,
  type AntiEntropyOptions,
  DIGEST_BUCKETS,
  DIGEST_BYTES,
  DIGEST_KEYS,
  registerAntiEntropyMetrics,
} from './anti-entropy.ts';
export { dropAll, dropHints } from './drop.ts';
export {
  type CollectorOptions,
  collectedAfter,
  collectTombstones,
  type GcOptions,
  startCollector,
} from './gc.ts';
export { Hints, type HintsOptions, recentRecord } from './hints.ts';
export { Rebalancer, type RebalancerOptions } from './manager.ts';
export { type RebalanceMetrics, registerRebalanceMetrics } from './metrics.ts';
export type { StreamProgress } from './progress.ts';
export { ProgressCounter } from './progress.ts';
export {
  copyTimeoutMs,
  expiredLaterMs,
  lateLandingMs,
  readWaitMs,
  repairWithinMs,
} from './transfer.ts';
