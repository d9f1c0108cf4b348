// server: the client port: TCP listener, per-connection decoding, ordered replies, backpressure.

export { LATENCY_BUCKETS, registerServerMetrics, type ServerMetrics } from './metrics.ts';
export { KvServer, type ServerOptions } from './server.ts';
