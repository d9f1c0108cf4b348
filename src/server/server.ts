// The client-port TCP listener: accepts connections, enforces the connection cap, drains on stop.

import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import type { Registry } from 'prom-client';
import pkg from '../../package.json' with { type: 'json' };
import { type Coordinator, MULTI_READ_BYTES } from '../coordinator/index.ts';
import { KvError, wireCode } from '../errors/index.ts';
import { atTurnEnd, listen, Slots, TurnBudget, turnPasses } from '../net/index.ts';
import { type Logger, LogThrottle } from '../observability/index.ts';
import {
  ARG_OVERHEAD,
  type ClientInfo,
  type CommandLimits,
  type RespLimits,
} from '../protocol/index.ts';
import { Authenticator } from './auth.ts';
import { WriteBudget } from './budget.ts';
import { ClientBuffers } from './buffers.ts';
import { ClientOutput } from './client-output.ts';
import {
  Connection,
  type ConnectionContext,
  type ScanTurns,
  WRITE_HIGH_WATER,
} from './connection.ts';
import type { UnauthenticatedLimits } from './framing.ts';
import { MAX_TLS_HANDSHAKES, TLS_HANDSHAKE_TIMEOUT_MS, TlsHandshakes } from './handshakes.ts';
import { registerServerMetrics, type ServerMetrics } from './metrics.ts';
import { output } from './output.ts';
import { ReplyBudget } from './reply-budget.ts';
import { REPLY_HIGH_WATER } from './reply-bytes.ts';
import { ScanCursorTable } from './scan-cursors.ts';
import { ServerStats } from './stats.ts';
import { NODE_TURN_BYTES } from './turn-budget.ts';

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: CommandLimits;
  readonly maxLineBytes: number;
  readonly maxPipeline: number;
  readonly maxConnections: number;
  readonly coordinator: Coordinator;
  readonly registry: Registry;
  readonly logger: Logger;
  /** Bytes of writes in flight on the whole node before connections stop reading. */
  readonly maxInflightWriteBytes?: number;
  /**
   * Bytes of unfinished requests held over all connections before a read that adds to them
   * closes its connection (raised to the largest single request: clientBufferLimitOf).
   */
  readonly maxClientBufferBytes?: number;
  /**
   * Bytes of replies held over all connections before the ones holding the most are closed
   * (raised to what one connection may hold: clientOutputLimitOf).
   */
  readonly maxClientOutputBytes?: number;
  /** Runs after connections were closed by that bound (a garbage collection); default none. */
  readonly collectGarbage?: () => void;
  /** Bytes of values the GETs of one EXEC may read (default MULTI_READ_BYTES). */
  readonly maxMultiReadBytes?: number;
  /** Required AUTH password; null or empty: none. */
  readonly password?: string | null;
  /** Serve TLS on the client port with this certificate and key (PEM); null: plain TCP. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Close connections idle (no command running, no bytes moving) this long; 0 or absent: never. */
  readonly idleTimeoutMs?: number;
  /**
   * The node's scan work per event-loop turn (replica's ScanWork): scan replies of many keys
   * count in it, and INFO's total_scan_records is its count. Absent: not counted.
   */
  readonly scans?: ScanTurns;
}

const STAR = 0x2a;
/** How long a refused connection may take to send its first byte (which picks the framing). */
const REFUSAL_WAIT_MS = 1000;
/** Refused connections waiting for that byte at once; beyond it they get the text reply at once. */
const MAX_REFUSALS_WAITING = 256;

/** Bytes a RESP bulk string may exceed --max-value-bytes by and still get VALUE_TOO_LARGE. */
const BULK_SLACK = 4096;

/**
 * RESP's bounds from the node's limits: a bulk string up to the largest key or value plus
 * slack, up to 1Mi arguments, at most max(64 MiB, one full SET) held per request, inline
 * requests up to 64 KiB (Redis's own inline limit).
 */
export function respLimitsOf(limits: CommandLimits): RespLimits {
  const maxBulkBytes = Math.max(limits.maxValueBytes, limits.maxKeyBytes) + BULK_SLACK;
  return {
    maxBulkBytes,
    maxArgs: 1024 * 1024,
    maxRequestBytes: Math.max(64 * 1024 * 1024, 2 * maxBulkBytes + 4 * ARG_OVERHEAD),
    maxInlineBytes: 64 * 1024,
  };
}

/** The default of --max-client-buffer-bytes. */
const DEFAULT_CLIENT_BUFFER_BYTES = 256 * 1024 * 1024;

/**
 * The node-wide bound on unfinished request bytes: `configured`, raised to the largest single
 * request the node accepts (a RESP request as its limit counts it, or a text line and its `\r`),
 * so that one request of the largest size always fits while no other is held. With the default
 * key and value limits that is 64 MiB (RESP's request limit); a larger --max-value-bytes or
 * --max-line-bytes raises it.
 */
export function clientBufferLimitOf(
  configured: number,
  resp: RespLimits,
  maxLineBytes: number,
): number {
  return Math.max(configured, resp.maxRequestBytes, maxLineBytes + 1);
}

/**
 * The longest text line the node reads: `configured`, raised to the longest valid command line,
 * so that no command within the key and value limits is refused as LINE_TOO_LONG. The config
 * asks for the key and value limits and 8 bytes (a PUT); a SETEX of the longest key and value
 * needs 21 (`SETEX `, two spaces, 13 digits of seconds), a paged RANGE three keys (start, end
 * and cursor) and its words, and `AUTH` the password.
 */
export function textLineLimitOf(
  configured: number,
  limits: CommandLimits,
  passwordBytes: number,
): number {
  const key = limits.maxKeyBytes;
  const setex = 'SETEX  9007199254740 '.length + key + limits.maxValueBytes;
  const range = 'RANGE   LIMIT  CURSOR '.length + String(limits.maxScanKeys).length + 3 * key;
  return Math.max(configured, setex, range, 'AUTH '.length + passwordBytes);
}

/** The default of --max-client-output-bytes. */
const DEFAULT_CLIENT_OUTPUT_BYTES = 128 * 1024 * 1024;

/**
 * The node-wide bound on replies held: `configured`, raised to the most one connection may
 * hold (its replies in the making up to REPLY_HIGH_WATER, one more command's reply as large as
 * --max-multi-read-bytes, and a full write buffer: 81 MiB with the defaults), so that a
 * connection alone is never closed for what its own bounds allow.
 */
export function clientOutputLimitOf(configured: number, maxMultiReadBytes: number): number {
  return Math.max(configured, REPLY_HIGH_WATER + maxMultiReadBytes + WRITE_HIGH_WATER);
}

/** Longest bulk string and text line of a connection that has not authenticated (Redis's 16 KiB). */
const UNAUTHENTICATED_BYTES = 16 * 1024;
/** Most arguments of one request before authentication (Redis's bound). */
const UNAUTHENTICATED_ARGS = 10;

/**
 * What a connection may make the node hold of one request before it authenticated: enough for
 * `AUTH`, `HELLO 3 AUTH default <password> SETNAME <name>`, PING and QUIT (the only commands it
 * may run), so a stranger without the password cannot make the node hold --max-value-bytes (text)
 * or 64 MiB (RESP) per connection. A password longer than 15 KiB raises the bound with it.
 */
export function unauthenticatedLimitsOf(
  limits: RespLimits,
  maxLineBytes: number,
  passwordBytes: number,
): UnauthenticatedLimits {
  const bytes = Math.max(UNAUTHENTICATED_BYTES, passwordBytes + 1024);
  return {
    resp: {
      maxBulkBytes: Math.min(bytes, limits.maxBulkBytes),
      maxArgs: Math.min(UNAUTHENTICATED_ARGS, limits.maxArgs),
      maxRequestBytes: Math.min(4 * bytes, limits.maxRequestBytes),
      maxInlineBytes: Math.min(bytes, limits.maxInlineBytes),
      unauthenticated: true,
    },
    lineBytes: Math.min(bytes, maxLineBytes),
  };
}

/** The listening client port. */
export class KvServer {
  readonly #server: Server;
  readonly #connections = new Set<Connection>();
  /**
   * --max-connections slots: at the limit a connection that has not proven itself (authenticated,
   * or with no password sent a request) is closed for a new one (net/slots.ts).
   */
  readonly #slots: Slots<Connection>;
  readonly #ctx: ConnectionContext;
  readonly #metrics: ServerMetrics;
  readonly #opts: ServerOptions;
  /** Every socket the listener accepted, served or not (a TLS handshake, a refusal). */
  readonly #sockets = new Set<Socket>();
  /** TLS only: the connections still in their handshake. */
  readonly #handshakes: TlsHandshakes | null;
  #refusalsWaiting = 0;
  /** The last snapshot of the connections (#clientSnapshot) and the turn it was taken in. */
  #clients: readonly ClientInfo[] | null = null;
  #clientsPass = -1;
  #clientIds = 0;
  #accepted = 0;
  #rejected = 0;
  readonly #stats = new ServerStats();

  private constructor(opts: ServerOptions) {
    this.#opts = opts;
    this.#metrics = registerServerMetrics(opts.registry);
    this.#slots = new Slots<Connection>(opts.maxConnections);
    const respLimits = respLimitsOf(opts.limits);
    const passwordBytes = Buffer.byteLength(opts.password ?? '');
    const maxLineBytes = textLineLimitOf(opts.maxLineBytes, opts.limits, passwordBytes);
    if (maxLineBytes > opts.maxLineBytes) {
      opts.logger.info(
        { configured: opts.maxLineBytes, limit: maxLineBytes },
        'text line bound raised to the longest valid command',
      );
    }
    const configured = opts.maxClientBufferBytes ?? DEFAULT_CLIENT_BUFFER_BYTES;
    const bufferLimit = clientBufferLimitOf(configured, respLimits, maxLineBytes);
    if (bufferLimit > configured) {
      opts.logger.info(
        { configured, limit: bufferLimit },
        'client buffer bound raised to the largest single request',
      );
    }
    const maxMultiReadBytes = opts.maxMultiReadBytes ?? MULTI_READ_BYTES;
    const configuredOutput = opts.maxClientOutputBytes ?? DEFAULT_CLIENT_OUTPUT_BYTES;
    const outputLimit = clientOutputLimitOf(configuredOutput, maxMultiReadBytes);
    if (outputLimit > configuredOutput) {
      opts.logger.info(
        { configured: configuredOutput, limit: outputLimit },
        'client output bound raised to what one connection may hold',
      );
    }
    // A client that reads its replies holds at most a full write buffer and one more value.
    const outputFloor = WRITE_HIGH_WATER + opts.limits.maxValueBytes;
    const clientOutput = new ClientOutput(
      outputLimit,
      outputFloor,
      this.#metrics,
      opts.logger,
      opts.collectGarbage,
    );
    this.#metrics.measureOutput(() => clientOutput.measure());
    // Replies in the making share the bound of replies held: together at most twice it.
    const replies = new ReplyBudget(outputLimit, () => this.#metrics.replyWaits.inc());
    this.#metrics.watchReplies(replies);
    this.#ctx = {
      coordinator: opts.coordinator,
      limits: opts.limits,
      maxLineBytes,
      respLimits,
      unauthenticatedLimits: unauthenticatedLimitsOf(respLimits, maxLineBytes, passwordBytes),
      maxPipeline: opts.maxPipeline,
      metrics: this.#metrics,
      logger: opts.logger,
      commandFailures: new LogThrottle(),
      httpRequests: new LogThrottle(),
      nextClientId: () => ++this.#clientIds,
      serverFacts: () => ({
        version: pkg.version,
        port: this.port,
        connectedClients: this.#connections.size,
        uptimeSeconds: Math.floor(process.uptime()),
        totalConnections: this.#accepted,
        rejectedConnections: this.#rejected,
        totalCommands: this.#stats.commands,
        opsPerSec: this.#stats.opsPerSec,
        netOutputBytes: output.written,
        scanRecords: opts.scans?.records ?? 0,
        memory: this.#stats.memory(),
      }),
      stats: this.#stats,
      clients: {
        list: (fresh) => this.#clientSnapshot(fresh === true),
        kill: (id) => {
          for (const c of this.#connections) {
            if (c.id !== id) continue;
            c.kill();
            return true;
          }
          return false;
        },
      },
      // Up to ~20 MB of resume keys at the largest key size; a scan idle for 10 minutes ends.
      scanCursors: new ScanCursorTable({ max: 10_000, ttlMs: 10 * 60_000 }),
      auth: new Authenticator(opts.password ?? null),
      budget: new WriteBudget(opts.maxInflightWriteBytes ?? 64 * 1024 * 1024),
      buffers: new ClientBuffers(bufferLimit, this.#metrics, opts.logger),
      clientOutput,
      replies,
      turns: new TurnBudget(NODE_TURN_BYTES, () => this.#metrics.turnWaits.inc()),
      ...(opts.scans ? { scans: opts.scans } : {}),
      idleTimeoutMs: opts.idleTimeoutMs ?? 0,
      maxMultiReadBytes,
    };
    const accept = (socket: Socket) => this.#accept(socket);
    const handshakeDropped = () => this.#metrics.rejectedConnections.labels('tls_handshake').inc();
    this.#handshakes = opts.tls ? new TlsHandshakes(MAX_TLS_HANDSHAKES, handshakeDropped) : null;
    // node:tls (with node:crypto and OpenSSL's set-up) is loaded by a node that serves TLS only.
    this.#server = opts.tls
      ? process.getBuiltinModule('node:tls').createServer(
          {
            allowHalfOpen: true,
            cert: opts.tls.cert,
            key: opts.tls.key,
            handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
          },
          accept,
        )
      : createServer({ allowHalfOpen: true }, accept);
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      this.#handshakes?.begin(socket);
    });
    this.#server.on('error', (err) => opts.logger.error({ err }, 'client listener error'));
    // A client that fails the TLS handshake is its own problem; the listener carries on. Node
    // leaves the socket open when this event has a listener (a handshake that timed out, or a
    // client gone before it finished, held its descriptor for good): close it.
    this.#server.on('tlsClientError', (err: NodeJS.ErrnoException, tls: Socket) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') handshakeDropped();
      opts.logger.debug({ err }, 'client TLS handshake failed');
      tls.destroy();
    });
  }

  /**
   * Every connection's CLIENT LIST facts, taken once per event-loop turn: the CLIENT LIST and
   * KILL calls of one turn share it (and CLIENT LIST its text), those of connections resumed at
   * the turn's end (net/turn.ts) too. A pass is queued so that the turn's count moves on.
   */
  #clientSnapshot(fresh: boolean): readonly ClientInfo[] {
    const pass = turnPasses();
    if (fresh || this.#clients === null || this.#clientsPass !== pass) {
      this.#clients = [...this.#connections].map((c) => c.info());
      this.#clientsPass = pass;
      atTurnEnd(() => {});
    }
    return this.#clients;
  }

  /** Starts listening; resolves with the server once bound, rejects if the port is taken. */
  static async start(opts: ServerOptions): Promise<KvServer> {
    const s = new KvServer(opts);
    await listen(s.#server, opts.port, opts.host);
    return s;
  }

  /** The bound port (useful when 0 was asked). */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  #accept(socket: Socket): void {
    this.#handshakes?.done(socket);
    if (this.#slots.full) {
      this.#refuse(socket);
      return;
    }
    const conn = new Connection(socket, this.#ctx, () => this.#slots.prove(conn));
    const taken = this.#slots.take(conn);
    if (taken.outcome === 'evicted') {
      this.#metrics.rejectedConnections.labels('evicted').inc();
      taken.evicted.displace();
    }
    this.#accepted++;
    this.#connections.add(conn);
    this.#metrics.connections.inc();
    this.#metrics.connectionsTotal.inc();
    socket.once('close', () => {
      this.#slots.free(conn);
      this.#connections.delete(conn);
      this.#metrics.connections.dec();
    });
  }

  /**
   * Answers a connection over --max-connections with `ERR MAX_CLIENTS` and closes it. The reply
   * is framed like the client's first byte (`-ERR ...` for RESP, which starts with `*`); a
   * client silent for REFUSAL_WAIT_MS, or one refused while many wait, gets the text line.
   */
  #refuse(socket: Socket): void {
    this.#metrics.rejectedConnections.labels('limit').inc();
    this.#rejected++;
    const err = new KvError('KV_ERR_MAX_CLIENTS', 'server: too many client connections');
    const line = `ERR ${wireCode(err.code)} ${err.message}`;
    socket.on('error', () => {});
    let answered = false;
    const answer = (resp: boolean) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      this.#refusalsWaiting--;
      if (socket.destroyed) return;
      socket.end(resp ? `-${line}\r\n` : `${line}\n`, () => socket.destroy());
    };
    this.#refusalsWaiting++;
    const timer = setTimeout(() => answer(false), REFUSAL_WAIT_MS);
    // Flowing, so later input is read and dropped (unread input would reset the reply away).
    socket.on('data', (chunk: Buffer) => answer(chunk[0] === STAR));
    socket.once('end', () => answer(false));
    socket.once('close', () => answer(false));
    if (this.#refusalsWaiting > MAX_REFUSALS_WAITING) answer(false);
  }

  /**
   * Stops accepting and drains every connection: idle ones close at once, busy ones once their
   * in-flight commands are answered. After `timeoutMs` whatever is left (a client that does not
   * read, a reply that cannot be delivered) is destroyed, as is every socket that never became a
   * connection (a TLS handshake, a refusal). Resolves when every socket is closed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.#stats.stop();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const drained = Promise.all([...this.#connections].map((c) => c.drain()));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    const late = await Promise.race([drained.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.#opts.logger.warn({ connections: this.#connections.size }, 'shutdown timed out');
      for (const c of this.#connections) c.destroy();
    }
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
