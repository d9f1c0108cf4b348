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
  /** Client connections refused or closed by a guard, by reason (RejectReason). */
  readonly rejectedConnections: Counter<'reason'>;
  /** Bytes of unfinished and parked requests held over every client connection (buffers.ts). */
  readonly bufferedBytes: Gauge;
  /** The highest bufferedBytes since the start. */
  readonly bufferedBytesPeak: Gauge;
  /** Bytes of replies held over every client connection, measured at scrape (client-output.ts). */
  readonly outputBytes: Gauge;
  /** Sets what outputBytes measures (the node's ClientOutput). */
  measureOutput(measure: () => number): void;
  /** Bytes of replies in the making over every connection, read at scrape (reply-budget.ts). */
  readonly replyReserved: Gauge;
  /** Connections waiting for the reply budget now. */
  readonly replyWaiting: Gauge;
  /** Connections that began to wait for the node-wide reply budget (reply-budget.ts). */
  readonly replyWaits: Counter;
  /** Large replies and commands that waited for a later event-loop turn (turn-budget.ts). */
  readonly turnWaits: Counter;
  /** Sets what the reply budget's gauges read (the node's ReplyBudget). */
  watchReplies(budget: { readonly reserved: number; readonly waiting: number }): void;
  readonly idleClosed: Counter;
  readonly authFailures: Counter;
}

/**
 * Why the node refused or closed a client connection: `limit`, over --max-connections at accept;
 * `buffer_full`, a read that would take the unfinished and parked requests held over
 * --max-client-buffer-bytes; `output_full`, among the connections holding the most replies
 * when those of all connections passed --max-client-output-bytes; `tls_handshake`, a TLS
 * handshake not finished in time or pushed out by newer ones; `http_request`, an HTTP request
 * sent to the client port (protocol/http-request.ts); `auth_timeout`, not authenticated within
 * AUTH_TIMEOUT_MS of opening (a password set); `evicted`, at --max-connections, the oldest
 * connection not yet authenticated (no password: that sent no request yet), closed for a new one.
 * (The peer port's reasons use the same words.)
 */
export type RejectReason =
  | 'limit'
  | 'evicted'
  | 'buffer_full'
  | 'output_full'
  | 'tls_handshake'
  | 'http_request'
  | 'auth_timeout';
export const REJECT_REASONS: readonly RejectReason[] = [
  'limit',
  'evicted',
  'buffer_full',
  'output_full',
  'tls_handshake',
  'http_request',
  'auth_timeout',
];

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
    help: 'Time from the read that completed a command to its reply being ready, by command.',
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
  const rejectedConnections = new Counter({
    name: 'kvstore_connections_rejected_total',
    help: 'Client connections refused or closed by a guard: limit (--max-connections reached, every open connection authenticated: the new one), evicted (--max-connections reached: the oldest connection not authenticated, or with no password that sent no request, closed for a new one), buffer_full (--max-client-buffer-bytes of unfinished and parked requests held), output_full (among the connections holding the most replies once all held --max-client-output-bytes, those not seen reading first), tls_handshake (a TLS handshake not finished within 10 s, or the oldest of more than 1,024 in progress), http_request (an HTTP request sent to the client port: nothing of it ran), auth_timeout (a password set, not authenticated within 10 s of connecting).',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of REJECT_REASONS) rejectedConnections.labels(reason).inc(0);
  let measure = () => 0;
  let replies = { reserved: 0, waiting: 0 };
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
    rejectedConnections,
    bufferedBytes: new Gauge({
      name: 'kvstore_client_buffered_bytes',
      help: 'Bytes of requests not yet started held over every client connection: unfinished ones (a text line or RESP request not yet whole), complete ones waiting in a connection backlog, and commands queued in an open MULTI.',
      registers: [registry],
    }),
    bufferedBytesPeak: new Gauge({
      name: 'kvstore_client_buffered_bytes_peak',
      help: 'The highest kvstore_client_buffered_bytes since the node started.',
      registers: [registry],
    }),
    outputBytes: new Gauge({
      name: 'kvstore_client_output_bytes',
      help: 'Bytes of replies held over every client connection: made and not yet written, and waiting in their sockets (bounded by --max-client-output-bytes).',
      registers: [registry],
      collect() {
        this.set(measure());
      },
    }),
    replyReserved: new Gauge({
      name: 'kvstore_client_reply_reserved_bytes',
      help: 'Bytes of replies in the making over every client connection: the most the commands running may answer (a GET counts --max-value-bytes until it answered) and replies made and not yet written to their sockets. No connection starts a command while it is at --max-client-output-bytes.',
      registers: [registry],
      collect() {
        this.set(replies.reserved);
      },
    }),
    replyWaiting: new Gauge({
      name: 'kvstore_client_reply_waiting_connections',
      help: 'Client connections waiting now for the replies in the making to fall under --max-client-output-bytes.',
      registers: [registry],
      collect() {
        this.set(replies.waiting);
      },
    }),
    measureOutput: (m) => {
      measure = m;
    },
    replyWaits: new Counter({
      name: 'kvstore_client_reply_waits_total',
      help: 'Times a client connection stopped taking commands because the replies in the making over every connection (kvstore_client_reply_reserved_bytes) reached --max-client-output-bytes, or others waited ahead of it; it resumes in turn as they are written.',
      registers: [registry],
    }),
    turnWaits: new Counter({
      name: 'kvstore_client_turn_waits_total',
      help: 'Times a client connection waited for a later event-loop turn to write a large reply (64 KiB or more) or to run a command after one, because the large replies made and written in this turn over every connection reached 8 MiB (small replies never wait); new connections are accepted and sockets read in between.',
      registers: [registry],
    }),
    watchReplies: (b) => {
      replies = b;
    },
    idleClosed: new Counter({
      name: 'kvstore_connections_idle_closed_total',
      help: 'Client connections closed by the node after --client-idle-timeout-ms without traffic.',
      registers: [registry],
    }),
  };
}
