// The peer-port TCP listener: accepts node-to-node connections and drains them on close.

import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Registry } from 'prom-client';
import { listen, Slots } from '../net/index.ts';
import { type Logger, LogThrottle } from '../observability/index.ts';
import { DEFAULT_MAX_FRAME_BYTES } from './frame.ts';
import { PeerBuffers } from './guard.ts';
import { type PeerMetrics, peerMetrics } from './metrics.ts';
import {
  type PeerHandler,
  ServerConnection,
  type ServerConnectionContext,
} from './server-connection.ts';

export interface PeerServerOptions {
  readonly host: string;
  /** 0 picks a free port; read it back from `PeerServer.port`. */
  readonly port: number;
  readonly handler: PeerHandler;
  readonly logger: Logger;
  /** Where the `kvstore_peer_*` metrics go; shared with the node's clients when the same. */
  readonly registry?: Registry;
  /** Unanswered requests per connection at which the server stops reading it. */
  readonly maxInFlightPerConnection?: number;
  /** Largest request body accepted and response body sent, in bytes. */
  readonly maxFrameBytes?: number;
  /** How long `close()` waits for in-flight handlers before destroying connections. */
  readonly closeTimeoutMs?: number;
  /** Serve TLS with these options (certificate, key; CA and requestCert for mutual TLS). */
  readonly tls?: TlsOptions | null;
  /**
   * Connections must authenticate (the handler sets `session.authenticated`) before anything
   * but a hello of at most `helloFrameBytes` (see ServerConnectionContext.requireAuth).
   */
  readonly requireAuth?: boolean;
  /** Largest frame before authentication. */
  readonly helloFrameBytes?: number;
  /** Time a connection has to finish TLS, and again to authenticate, before it is closed. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Most open connections (TLS handshakes included); at it, a new one takes the slot of the oldest
   * connection not yet authenticated, or is closed at once when all are (net/slots.ts).
   */
  readonly maxConnections?: number;
  /**
   * Bytes of unfinished frames held over all connections, and apart from them bytes of replies
   * not yet taken by the kernel; see PeerBuffers for who is closed.
   */
  readonly maxBufferedBytes?: number;
}

export const PEER_SERVER_DEFAULTS = {
  /** A fast peer keeps this many requests busy per connection; more waits in TCP buffers. */
  maxInFlightPerConnection: 1024,
  /** 64 MiB: room for a rebalance batch, small enough to refuse garbage lengths. */
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  /** Handlers are short (storage ops); a handler still running after 5 s is abandoned. */
  closeTimeoutMs: 5000,
  /** An `auth` proof is about 100 bytes: 4 KiB leaves room, and nothing for an attacker. */
  helloFrameBytes: 4096,
  /** A peer on the same network finishes TLS and authenticates in milliseconds. */
  handshakeTimeoutMs: 5000,
  /** A node has three connections per peer (PeerLane); 512 covers large clusters and restarts. */
  maxConnections: 512,
  /** Four maximum frames in flight at once; peers' usual frames are a few KiB. */
  maxBufferedBytes: 4 * DEFAULT_MAX_FRAME_BYTES,
} as const;

/**
 * The listening peer port. Every accepted connection is served by a ServerConnection: requests
 * are multiplexed by id, handlers run concurrently, responses go out in completion order.
 */
export class PeerServer {
  readonly #server: Server;
  readonly #connections = new Set<ServerConnection>();
  readonly #ctx: ServerConnectionContext;
  readonly #metrics: PeerMetrics;
  readonly #logger: Logger;
  readonly #closeTimeoutMs: number;
  #closing: Promise<void> | null = null;
  /** One warning per second at most while connections are dropped at the limit. */
  readonly #drops = new LogThrottle();
  /** Connection slots, held by the raw TCP sockets (before any TLS). */
  readonly #slots: Slots<Socket>;
  readonly #tls: boolean;
  /** TLS only: the raw socket under each connection in its handshake, by remote address:port. */
  readonly #raw = new Map<string, Socket>();

  private constructor(opts: PeerServerOptions) {
    this.#metrics = peerMetrics(opts.registry);
    this.#logger = opts.logger;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? PEER_SERVER_DEFAULTS.closeTimeoutMs;
    const d = PEER_SERVER_DEFAULTS;
    const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? d.handshakeTimeoutMs;
    const maxBuffered = opts.maxBufferedBytes ?? d.maxBufferedBytes;
    // Changes with every reply: its gauges are read at scrape time.
    const replies = new PeerBuffers(maxBuffered, null);
    this.#metrics.replies.add(replies);
    this.#ctx = {
      handler: opts.handler,
      maxInFlight: opts.maxInFlightPerConnection ?? d.maxInFlightPerConnection,
      maxFrameBytes: opts.maxFrameBytes ?? d.maxFrameBytes,
      requireAuth: opts.requireAuth ?? false,
      helloFrameBytes: opts.helloFrameBytes ?? d.helloFrameBytes,
      handshakeTimeoutMs,
      buffers: new PeerBuffers(maxBuffered, {
        bytes: this.#metrics.bufferedBytes,
        peak: this.#metrics.bufferedBytesPeak,
      }),
      replies,
      metrics: this.#metrics,
      logger: opts.logger,
      protocolErrors: new LogThrottle(),
      outputFull: new LogThrottle(),
    };
    // allowHalfOpen: a client that half-closes still gets the answers to what it sent.
    const accept = (socket: Socket) => this.#accept(socket);
    this.#tls = opts.tls != null;
    // node:tls (with node:crypto and OpenSSL's set-up) is loaded by a node that uses TLS only.
    this.#server = opts.tls
      ? process
          .getBuiltinModule('node:tls')
          .createServer(
            { allowHalfOpen: true, handshakeTimeout: handshakeTimeoutMs, ...opts.tls },
            accept,
          )
      : createServer({ allowHalfOpen: true });
    // Every TCP connection, TLS handshakes included, holds a slot from its accept (for TLS, this
    // listener runs after the one that starts the handshake: closing the socket ends both).
    this.#slots = new Slots<Socket>(opts.maxConnections ?? d.maxConnections);
    this.#server.on('connection', (socket: Socket) => {
      if (this.#slot(socket) && !this.#tls) accept(socket);
    });
    // Node leaves the socket open when this event has a listener: close it, or a handshake that
    // timed out or whose client left held one of the maxConnections slots for good.
    // Anyone who reaches the port can fail a handshake at will: said once a second at most.
    const failed = new LogThrottle();
    this.#server.on('tlsClientError', (err, tls) => {
      const since = failed.take();
      if (since >= 0) opts.logger.warn({ err, since }, 'peer TLS handshake failed');
      tls.destroy();
    });
    this.#server.on('error', (err) => opts.logger.error({ err }, 'peer listener error'));
  }

  /** Starts listening; resolves once bound, rejects if the address is taken or invalid. */
  static async start(opts: PeerServerOptions): Promise<PeerServer> {
    const s = new PeerServer(opts);
    await listen(s.#server, opts.port, opts.host);
    return s;
  }

  /** The bound port (useful when 0 was asked). */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Bytes of unfinished frames held over all connections now. */
  get bufferedBytes(): number {
    return this.#ctx.buffers.bytes;
  }

  /**
   * Gives a new TCP connection a slot (Slots.take), counting and saying what it cost; false
   * when it was closed instead (at the limit, or while closing).
   */
  #slot(socket: Socket): boolean {
    if (this.#closing !== null) {
      socket.destroy();
      return false;
    }
    const taken = this.#slots.take(socket);
    const outcome = taken.outcome;
    if (outcome === 'limit') socket.destroy();
    else {
      socket.once('close', () => this.#slots.free(socket));
      if (taken.outcome === 'evicted') taken.evicted.destroy();
      if (this.#tls) {
        const key = `${socket.remoteAddress}:${socket.remotePort}`;
        this.#raw.set(key, socket);
        socket.once('close', () => {
          if (this.#raw.get(key) === socket) this.#raw.delete(key);
        });
      }
    }
    if (outcome === 'open') return true;
    this.#metrics.rejected.labels(outcome).inc();
    const since = this.#drops.take();
    if (since >= 0) {
      // closed: which connection made room, the oldest not authenticated, or the new one.
      const closed = outcome === 'evicted' ? 'oldest unauthenticated' : 'new';
      this.#logger.warn({ max: this.#slots.limit, closed, since }, 'peer connection limit reached');
    }
    return outcome === 'evicted';
  }

  /** The raw socket holding `socket`'s slot (itself, or for TLS the one under it). */
  #rawOf(socket: Socket): Socket | undefined {
    if (!this.#tls) return socket;
    return this.#raw.get(`${socket.remoteAddress}:${socket.remotePort}`);
  }

  /** Connections open now, plus closed ones whose handlers have not settled yet. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  #accept(socket: Socket): void {
    if (this.#closing !== null) {
      socket.destroy();
      return;
    }
    const raw = this.#rawOf(socket);
    const conn = new ServerConnection(socket, this.#ctx, () => {
      if (raw !== undefined) this.#slots.prove(raw);
    });
    this.#connections.add(conn);
    this.#metrics.accepted.inc();
    this.#metrics.connections.labels('server').inc();
    socket.once('close', () => this.#metrics.connections.labels('server').dec());
    conn.done.then(() => this.#connections.delete(conn));
  }

  /**
   * Stops accepting, stops reading every connection (requests not yet dispatched are dropped;
   * their callers see the connection close), waits for the running handlers to answer, then
   * ends the connections. Connections still busy after `closeTimeoutMs` are destroyed and their
   * late results dropped. Resolves when the listener and every socket are closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const listenerClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const conns = [...this.#connections];
    for (const c of conns) c.drain();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      Promise.all(conns.map((c) => c.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.#closeTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      this.#logger.warn({ connections: this.#connections.size }, 'peer server close timed out');
      await Promise.all(conns.map((c) => c.destroy()));
    }
    await listenerClosed;
    this.#metrics.replies.delete(this.#ctx.replies);
  }
}
