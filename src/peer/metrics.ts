// Metrics owned by the peer transport (both the client and the server side).

import { Counter, Gauge, Registry } from 'prom-client';
import { ERROR_CODES, type ErrorCode, wireCode } from '../errors/index.ts';
import { HotCounter, HotGauge, HotHistogram } from '../observability/index.ts';

/** Which end of a peer connection a sample is about: this node calling out, or answering. */
export type PeerSide = 'client' | 'server';
const SIDES: readonly PeerSide[] = ['client', 'server'];

/**
 * Which of a peer address's connections a request takes (PeerPool). `control`: the failure
 * detector's probes. `small`: requests whose frame is at most LARGE_FRAME_BYTES (quorum reads,
 * small writes). `large`: bigger frames, and bulk transfers of any size (hints, streams,
 * anti-entropy).
 */
export type PeerLane = 'control' | 'small' | 'large';
export const PEER_LANES: readonly PeerLane[] = ['control', 'small', 'large'];

/** Why the peer server closed a connection before (or instead of) serving it. */
export type RejectReason =
  | 'limit'
  | 'evicted'
  | 'handshake_timeout'
  | 'hello_too_large'
  | 'unauthenticated'
  | 'buffer_full'
  | 'output_full';

export const REJECT_REASONS: readonly RejectReason[] = [
  'limit',
  'evicted',
  'handshake_timeout',
  'hello_too_large',
  'unauthenticated',
  'buffer_full',
  'output_full',
];

// Recorded on every request: the array-backed kinds (observability/hot-metrics.ts).
export interface PeerMetrics {
  /** Client: request() calls, by method, counted when called (fast failures included). */
  readonly requestsSent: HotCounter<string>;
  /** Client: the same calls by the lane (connection) they took. */
  readonly laneRequests: HotCounter<PeerLane>;
  /** Client: request() to settlement (result, remote error, timeout or failure), by method. */
  readonly duration: HotHistogram<string>;
  /** Server: request frames dispatched to the handler. */
  readonly requestsReceived: Counter;
  /** Errors by wire code: client = request() rejections, server = error responses and bad frames. */
  readonly errors: Counter<'code' | 'side'>;
  /** Client: outstanding requests; server: handlers not yet answered. */
  readonly inFlight: HotGauge<PeerSide>;
  /** Client: outbound connection attempts, by result (`ok` or `error`). */
  readonly connects: Counter<'result'>;
  /** Server: inbound connections accepted. */
  readonly accepted: Counter;
  /** Server: inbound connections closed by a guard (guard.ts RejectReason). */
  readonly rejected: Counter<'reason'>;
  /** Server: bytes received and not yet taken as whole frames, over every connection. */
  readonly bufferedBytes: Gauge;
  /** Server: the highest bufferedBytes since the start. */
  readonly bufferedBytesPeak: Gauge;
  /**
   * Server: what each server holds of replies not yet taken by the kernel (its PeerBuffers), read
   * at scrape time as `kvstore_peer_reply_bytes` and `_peak`: a reply costs no gauge update.
   */
  readonly replies: Set<{ readonly bytes: number; readonly peak: number }>;
  /** Open connections, by side. */
  readonly connections: HotGauge<PeerSide>;
  readonly sentBytes: HotCounter<PeerSide>;
  readonly receivedBytes: HotCounter<PeerSide>;
  /** Client: the outbound connections whose queued bytes `kvstore_peer_queued_bytes` reports. */
  readonly queues: Set<PeerQueue>;
  /** Client: requests refused before sending, by reason (`queue_full`). */
  readonly refused: Counter<'reason'>;
  /** Client: outbound connections closed because the peer read nothing for a peer timeout. */
  readonly stalled: Counter;
  /** Client: requests that timed out before their frame was sent (so it never was), by lane. */
  readonly dropped: Counter<'lane'>;
  /** Client: outbound connections closed because a request timed out with nothing received, by lane. */
  readonly silent: Counter<'lane'>;
  /** Client: requests waited for past their timeout while large answers arrived, by lane. */
  readonly waited: Counter<'lane'>;
}

/** An outbound connection's bytes written and not yet taken by the kernel. */
export interface PeerQueue {
  readonly address: string;
  readonly queuedBytes: number;
  readonly lane: PeerLane;
}

/** Latency buckets in seconds, from 100 µs to 10 s (the same as the client port's). */
export const PEER_LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

const byRegistry = new WeakMap<Registry, PeerMetrics>();

/**
 * The peer metrics registered on `registry`, created on first use: every server, client and pool
 * of a node shares one set. Without a registry, a private one is used (nothing is exported).
 */
export function peerMetrics(registry: Registry = new Registry()): PeerMetrics {
  let metrics = byRegistry.get(registry);
  if (metrics === undefined) {
    metrics = register(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}

function counter<T extends string>(
  name: string,
  help: string,
  labels: T[],
  registry: Registry,
): Counter<T> {
  return new Counter({ name, help, labelNames: labels, registers: [registry] });
}

function register(registry: Registry): PeerMetrics {
  const registers = [registry];
  const queues = new Set<PeerQueue>();
  // Read at scrape time from the sockets, so sending costs nothing extra.
  new Gauge({
    name: 'kvstore_peer_queued_bytes',
    help: 'Bytes of requests to peers not yet taken by the kernel (waiting in the client or in the socket), over the outbound connections of each lane (at most 128 MiB per connection).',
    labelNames: ['lane'],
    registers,
    collect() {
      const bytes = new Map<PeerLane, number>(PEER_LANES.map((l) => [l, 0]));
      for (const q of queues) bytes.set(q.lane, bytes.get(q.lane)! + q.queuedBytes);
      for (const [lane, n] of bytes) this.labels(lane).set(n);
    },
  });
  const replies = new Set<{ readonly bytes: number; readonly peak: number }>();
  new Gauge({
    name: 'kvstore_peer_reply_bytes',
    help: 'Replies to inbound peer connections made and not yet taken by the kernel.',
    registers,
    collect() {
      let n = 0;
      for (const r of replies) n += r.bytes;
      this.set(n);
    },
  });
  new Gauge({
    name: 'kvstore_peer_reply_bytes_peak',
    help: 'The highest kvstore_peer_reply_bytes since the node started.',
    registers,
    collect() {
      let n = 0;
      for (const r of replies) n = Math.max(n, r.peak);
      this.set(n);
    },
  });
  const metrics: PeerMetrics = {
    requestsSent: new HotCounter<string>({
      name: 'kvstore_peer_requests_sent_total',
      help: 'Requests sent to peers, by method (including ones that failed).',
      labelName: 'method',
      labelValues: [],
      registers,
    }),
    laneRequests: new HotCounter<PeerLane>({
      name: 'kvstore_peer_lane_requests_total',
      help: 'Requests sent to peers, by the lane (connection) they took: control (probes), small (frames up to 64 KiB), large (bigger frames, hints, streams, anti-entropy).',
      labelName: 'lane',
      labelValues: PEER_LANES,
      registers,
    }),
    duration: new HotHistogram<string>({
      name: 'kvstore_peer_request_duration_seconds',
      help: 'Time from sending a peer request to its result or error, by method.',
      labelName: 'method',
      labelValues: [],
      buckets: PEER_LATENCY_BUCKETS,
      registers,
    }),
    requestsReceived: new Counter({
      name: 'kvstore_peer_requests_received_total',
      help: 'Requests received from peers and passed to the handler.',
      registers,
    }),
    errors: counter(
      'kvstore_peer_errors_total',
      'Peer errors by wire code; side=client: failed requests, side=server: error responses.',
      ['code', 'side'],
      registry,
    ),
    inFlight: new HotGauge({
      name: 'kvstore_peer_requests_in_flight',
      help: 'Peer requests not answered yet; side=client: sent, side=server: being handled.',
      labelName: 'side',
      labelValues: SIDES,
      registers,
    }),
    connects: counter(
      'kvstore_peer_connects_total',
      'Outbound peer connection attempts (first connects and reconnects), by result.',
      ['result'],
      registry,
    ),
    accepted: new Counter({
      name: 'kvstore_peer_connections_accepted_total',
      help: 'Inbound peer connections accepted.',
      registers,
    }),
    rejected: counter(
      'kvstore_peer_connections_rejected_total',
      'Inbound peer connections closed by a guard: limit (--max-peer-connections: the new one, every open one authenticated), evicted (the oldest connection not yet authenticated, closed at that limit for a new one), handshake_timeout, hello_too_large (a frame over the pre-authentication limit), unauthenticated (a request or proof refused before authentication), buffer_full (unfinished frames over --max-peer-buffer-bytes), output_full (unsent replies over it).',
      ['reason'],
      registry,
    ),
    bufferedBytes: new Gauge({
      name: 'kvstore_peer_buffered_bytes',
      help: 'Bytes received on inbound peer connections and not yet taken as whole frames.',
      registers,
    }),
    bufferedBytesPeak: new Gauge({
      name: 'kvstore_peer_buffered_bytes_peak',
      help: 'The highest kvstore_peer_buffered_bytes since the node started.',
      registers,
    }),
    replies,
    connections: new HotGauge({
      name: 'kvstore_peer_connections',
      help: 'Open peer connections; side=client: outbound, side=server: inbound.',
      labelName: 'side',
      labelValues: SIDES,
      registers,
    }),
    sentBytes: new HotCounter({
      name: 'kvstore_peer_sent_bytes_total',
      help: 'Bytes written to peer sockets.',
      labelName: 'side',
      labelValues: SIDES,
      registers,
    }),
    receivedBytes: new HotCounter({
      name: 'kvstore_peer_received_bytes_total',
      help: 'Bytes read from peer sockets.',
      labelName: 'side',
      labelValues: SIDES,
      registers,
    }),
    queues,
    refused: counter(
      'kvstore_peer_requests_refused_total',
      'Peer requests refused before sending, by reason: queue_full (the bytes queued to that peer are at the bound, it is not reading fast enough).',
      ['reason'],
      registry,
    ),
    stalled: new Counter({
      name: 'kvstore_peer_connections_stalled_total',
      help: 'Outbound peer connections closed because the peer took no queued byte for a peer timeout while the queue was at the bound.',
      registers,
    }),
    dropped: counter(
      'kvstore_peer_requests_dropped_total',
      'Peer requests that timed out while their frame still waited to be written (the peer was slow or not reading): never sent, by lane (control, small, large).',
      ['lane'],
      registry,
    ),
    silent: counter(
      'kvstore_peer_connections_silent_total',
      'Outbound peer connections closed because their oldest waiting request timed out with nothing received on them since it was sent (a link that was down leaves a connection in TCP retransmission backoff; the next request connects afresh), by lane (control, small, large).',
      ['lane'],
      registry,
    ),
    waited: counter(
      'kvstore_peer_requests_waited_total',
      'Peer requests whose timeout ran out while answers of 64 KiB or more were arriving on their connection at 4 Mbit/s or faster (their own, or ones ahead of them), or while their frame waited behind others leaving that fast, waited for past it, answered or not, by lane (control, small, large).',
      ['lane'],
      registry,
    ),
  };
  zero(metrics);
  return metrics;
}

/** Exposes every bounded series at 0 so rates and alerts work before the first event. */
function zero(m: PeerMetrics): void {
  for (const side of SIDES) {
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      m.errors.labels(wireCode(code), side).inc(0);
    }
  }
  for (const reason of REJECT_REASONS) m.rejected.labels(reason).inc(0);
  m.connects.labels('ok').inc(0);
  m.connects.labels('error').inc(0);
  m.refused.labels('queue_full').inc(0);
  for (const lane of PEER_LANES) m.dropped.labels(lane).inc(0);
  for (const lane of PEER_LANES) m.silent.labels(lane).inc(0);
  for (const lane of PEER_LANES) m.waited.labels(lane).inc(0);
}
