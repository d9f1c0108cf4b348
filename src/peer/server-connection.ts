// One inbound peer connection: decode request frames, run handlers concurrently, reply by id.

import type { Socket } from 'node:net';
import { KvError, toKvError, wireCode } from '../errors/index.ts';
import type { Logger, LogThrottle } from '../observability/index.ts';
import {
  decodeRequest,
  encodeErrorFrame,
  encodeResultFrame,
  type RequestMessage,
} from './codec.ts';
import { FRAME_HEADER_BYTES, FrameDecoder } from './frame.ts';
import { FrameWriter } from './frame-writer.ts';
import type { BufferHolder, PeerBuffers } from './guard.ts';
import type { PeerMetrics, RejectReason } from './metrics.ts';
import { tunePeerSocket } from './socket.ts';

/** What a handler learns about the request besides method and body. */
export interface PeerRequestContext {
  /** `address:port` of the calling socket (an IP, not a node name). */
  readonly remote: string;
  /**
   * State of this connection that handlers may keep (the cluster-secret check marks it
   * authenticated, and keeps its handshake's nonces in `handshake`). Handlers are called in frame
   * order, so what one sets synchronously is seen by the next request of the same connection.
   */
  readonly session: { authenticated: boolean; handshake?: unknown };
}

/**
 * Serves one request. The result (or the resolved value) is sent back as the response. A thrown
 * or rejected KvError is sent with its code and message; anything else as KV_ERR_INTERNAL (and
 * logged). A result that cannot be encoded, or encodes to more than the frame limit, is sent as
 * KV_ERR_INTERNAL or KV_ERR_PEER_PROTOCOL respectively. Handlers of one connection run
 * concurrently; their responses go out in completion order.
 */
export type PeerHandler = (
  method: string,
  body: unknown,
  ctx: PeerRequestContext,
) => unknown | Promise<unknown>;

export interface ServerConnectionContext {
  readonly handler: PeerHandler;
  readonly maxInFlight: number;
  readonly maxFrameBytes: number;
  /**
   * Connections start unauthenticated: until a request leaves `session.authenticated` true, frames
   * are limited to `helloFrameBytes`, one request is handled at a time, a request the handler
   * refuses closes the connection after its reply, and `handshakeTimeoutMs` after the start an
   * unauthenticated connection is closed. False: connections are authenticated from the start.
   */
  readonly requireAuth: boolean;
  readonly helloFrameBytes: number;
  readonly handshakeTimeoutMs: number;
  /** The node-wide count of buffered bytes; a read that would take it over the limit closes. */
  readonly buffers: PeerBuffers;
  /**
   * The node-wide count of replies not yet taken by the kernel; a reply that would take it over
   * the limit closes the connection holding the most (`output_full`).
   */
  readonly replies: PeerBuffers;
  readonly metrics: PeerMetrics;
  readonly logger: Logger;
  /** Malformed frames are logged at most once a second, node-wide (a stranger can send many). */
  readonly protocolErrors: LogThrottle;
  /** So are connections closed for their unsent replies (output_full). */
  readonly outputFull: LogThrottle;
}

/**
 * Frames dispatched in one go; the next ones are dispatched in a microtask, after the replies
 * that handlers made at once were written, so a read of many requests stops at UNSENT_PAUSE_BYTES.
 */
const DISPATCH_CHUNK = 4;
/** Unsent reply bytes at which a connection dispatches no more requests until its socket drains. */
const UNSENT_PAUSE_BYTES = 1024 * 1024;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Reads request frames and dispatches them while fewer than `maxInFlight` are unanswered; at the
 * limit, or while the socket's write buffer needs draining, it stops pulling frames and pauses
 * the socket (so at most `maxInFlight` handlers of this connection run at once, and the bytes
 * held are bounded by one read). A malformed or oversize frame closes the connection without a
 * reply (there is no trustworthy id to answer). After the client half-closes, requests already
 * received are answered, then the socket is ended. See ServerConnectionContext.requireAuth for
 * what an unauthenticated connection may do.
 */
export class ServerConnection implements BufferHolder {
  readonly #socket: Socket;
  readonly #ctx: ServerConnectionContext;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  readonly #requestContext: PeerRequestContext;
  readonly #closed = Promise.withResolvers<void>();
  readonly #done = Promise.withResolvers<void>();
  #inFlight = 0;
  #pumping = false;
  #ending = false;
  #draining = false;
  #ended = false;
  #isClosed = false;
  #handshakeTimer: NodeJS.Timeout | null = null;
  /** A microtask is queued to dispatch the frames after a DISPATCH_CHUNK. */
  #continuing = false;
  /** Its replies in the node-wide count: closed when they take it over (output_full). */
  readonly #replyHolder: BufferHolder = { evict: () => this.#closeNotReading() };
  /** Called once, when the connection is first authenticated after a valid request; then null. */
  #onProven: (() => void) | null;

  /**
   * `onProven` is called once the connection has authenticated (with `requireAuth`), or has sent
   * its first well-formed request (without): a member, or whoever speaks the protocol as one.
   */
  constructor(socket: Socket, ctx: ServerConnectionContext, onProven: () => void = () => {}) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#onProven = onProven;
    this.#decoder = new FrameDecoder(ctx.requireAuth ? ctx.helloFrameBytes : ctx.maxFrameBytes);
    this.#writer = new FrameWriter(
      socket,
      (n) => ctx.metrics.sentBytes.labels('server').inc(n),
      () => this.#accountReplies(),
    );
    this.#requestContext = {
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      session: { authenticated: !ctx.requireAuth },
    };
    if (ctx.requireAuth) {
      this.#handshakeTimer = setTimeout(
        () => this.#reject('handshake_timeout'),
        ctx.handshakeTimeoutMs,
      );
      this.#handshakeTimer.unref();
    }
    tunePeerSocket(socket);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => {
      this.#accountReplies();
      this.#pump();
    });
    socket.on('end', () => {
      this.#ending = true;
      this.#pump();
    });
    socket.on('error', (err) =>
      ctx.logger.debug({ err, remote: this.#requestContext.remote }, 'peer socket error'),
    );
    socket.on('close', () => this.#onClose());
  }

  /** Resolves once the socket is closed and every handler it started has settled. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Takes no further requests; ends the socket once every started handler answered. */
  drain(): void {
    this.#draining = true;
    this.#socket.pause();
    this.#checkIdle();
  }

  /** Closes the socket now (late handler results are dropped); resolves once it is closed. */
  destroy(): Promise<void> {
    this.#socket.destroy();
    return this.#closed.promise;
  }

  get #stopped(): boolean {
    return this.#draining || this.#isClosed || this.#socket.destroyed;
  }

  #onData(chunk: Buffer): void {
    this.#ctx.metrics.receivedBytes.labels('server').inc(chunk.length);
    if (this.#stopped) return;
    if (!this.#ctx.buffers.admit(this, chunk.length)) {
      this.#reject('buffer_full');
      return;
    }
    this.#decoder.push(chunk);
    this.#pump();
  }

  get #authenticated(): boolean {
    return this.#requestContext.session.authenticated;
  }

  /** Reports this connection's buffered bytes to the node-wide count. */
  #account(): void {
    const now = this.#isClosed || this.#socket.destroyed ? 0 : this.#decoder.bufferedBytes;
    this.#ctx.buffers.set(this, now);
  }

  /** Reports this connection's replies not yet taken by the kernel to the node-wide count. */
  #accountReplies(): void {
    const now = this.#isClosed || this.#socket.destroyed ? 0 : this.#socket.writableLength;
    this.#ctx.replies.set(this.#replyHolder, now);
  }

  /** Closed to make room for another connection's read (PeerBuffers.admit). */
  evict(): void {
    this.#reject('buffer_full');
  }

  /** Closes the connection now for `reason` (counted in kvstore_peer_connections_rejected_total). */
  #reject(reason: RejectReason): void {
    if (this.#isClosed || this.#socket.destroyed) return;
    this.#ctx.metrics.rejected.labels(reason).inc();
    this.#ctx.logger.debug(
      { remote: this.#requestContext.remote, reason },
      'peer connection refused',
    );
    this.#socket.destroy();
    // Its bytes leave the node-wide count now, not at 'close' (a later tick): a connection read
    // in between must not be refused for bytes that are already being let go.
    this.#account();
    this.#accountReplies();
  }

  /**
   * Dispatches buffered frames up to the in-flight limit, DISPATCH_CHUNK at a time, while fewer
   * than UNSENT_PAUSE_BYTES of replies wait to be sent; then adjusts reading. Not re-entrant.
   */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    let chunk = 0;
    try {
      while (
        !this.#stopped &&
        this.#inFlight < this.#limit &&
        this.#socket.writableLength < UNSENT_PAUSE_BYTES
      ) {
        if (chunk === DISPATCH_CHUNK) {
          this.#continueSoon();
          break;
        }
        const frame = this.#nextFrame();
        if (frame === null) break;
        this.#dispatch(frame);
        chunk++;
      }
    } finally {
      this.#pumping = false;
    }
    this.#account();
    this.#updateFlow();
    this.#checkIdle();
  }

  /** Dispatches more in a microtask: after the replies the handlers made at once are written. */
  #continueSoon(): void {
    if (this.#continuing) return;
    this.#continuing = true;
    queueMicrotask(() => {
      this.#continuing = false;
      this.#pump();
    });
  }

  /** Requests handled at once: one until authenticated. */
  get #limit(): number {
    return this.#authenticated ? this.#ctx.maxInFlight : 1;
  }

  #nextFrame(): Buffer | null {
    try {
      return this.#decoder.next();
    } catch (err) {
      if (!this.#authenticated) this.#reject('hello_too_large');
      else this.#protocolError(toKvError(err, 'peer'));
      return null;
    }
  }

  #dispatch(frame: Buffer): void {
    let req: RequestMessage;
    try {
      req = decodeRequest(frame);
    } catch (err) {
      this.#protocolError(toKvError(err, 'peer'));
      return;
    }
    this.#inFlight++;
    this.#ctx.metrics.requestsReceived.inc();
    this.#ctx.metrics.inFlight.labels('server').inc();
    let result: unknown;
    const wasAuthenticated = this.#authenticated;
    try {
      result = this.#ctx.handler(req.m, req.b, this.#requestContext);
    } catch (err) {
      this.#fail(req, err);
      return;
    }
    if (!wasAuthenticated) this.#afterHello();
    if (this.#onProven !== null && this.#authenticated) {
      const proven = this.#onProven;
      this.#onProven = null;
      proven();
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.#reply(req, value),
        (err: unknown) => this.#fail(req, err),
      );
    } else {
      this.#reply(req, result);
    }
  }

  #reply(req: RequestMessage, result: unknown): void {
    let frame: Buffer;
    try {
      frame = encodeResultFrame(req.i, result);
    } catch (err) {
      this.#fail(req, err);
      return;
    }
    const bytes = frame.length - FRAME_HEADER_BYTES;
    if (bytes > this.#ctx.maxFrameBytes) {
      const msg = `peer: result of ${req.m} is ${bytes} bytes, over the frame limit`;
      this.#fail(req, new KvError('KV_ERR_PEER_PROTOCOL', msg));
      return;
    }
    this.#settle(frame);
  }

  /** After the first request of an unauthenticated connection: full limits, or the way out. */
  #afterHello(): void {
    if (!this.#authenticated) return;
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#decoder.maxFrameBytes = this.#ctx.maxFrameBytes;
  }

  #fail(req: RequestMessage, err: unknown): void {
    const e = toKvError(err, 'peer');
    if (!this.#authenticated && !this.#draining) {
      // Refused before authentication: answer, read nothing more, close once answered.
      this.#ctx.metrics.rejected.labels('unauthenticated').inc();
      this.#draining = true;
      this.#socket.pause();
    }
    if (e.code === 'KV_ERR_INTERNAL') {
      this.#ctx.logger.error({ err: e, method: req.m }, 'peer handler failed');
    }
    this.#ctx.metrics.errors.labels(wireCode(e.code), 'server').inc();
    this.#settle(encodeErrorFrame(req.i, e));
  }

  #settle(frame: Buffer): void {
    this.#inFlight--;
    this.#ctx.metrics.inFlight.labels('server').dec();
    if (!this.#isClosed) this.#send(frame);
    if (this.#isClosed) this.#maybeDone();
    else this.#pump();
  }

  /** Closed for its unsent replies: they held the most when the node-wide count was full. */
  #closeNotReading(): void {
    const since = this.#ctx.outputFull.take();
    if (since >= 0) {
      const { remote } = this.#requestContext;
      const unsent = this.#socket.writableLength;
      this.#ctx.logger.warn({ remote, unsent, since }, 'peer replies not read, connection closed');
    }
    this.#reject('output_full');
  }

  /** Writes a reply, unless it takes the node-wide count over the limit and this holds the most. */
  #send(frame: Buffer): void {
    if (this.#socket.destroyed) return;
    if (!this.#ctx.replies.admit(this.#replyHolder, frame.length)) {
      this.#closeNotReading();
      return;
    }
    this.#writer.write(frame);
    this.#accountReplies();
  }

  #protocolError(err: KvError): void {
    if (!this.#authenticated) this.#ctx.metrics.rejected.labels('unauthenticated').inc();
    this.#ctx.metrics.errors.labels(wireCode(err.code), 'server').inc();
    const since = this.#ctx.protocolErrors.take();
    if (since >= 0) {
      this.#ctx.logger.warn(
        { err, remote: this.#requestContext.remote, since },
        'peer protocol error, closing connection',
      );
    }
    this.#socket.destroy();
  }

  #updateFlow(): void {
    if (this.#stopped) return;
    const full = this.#inFlight >= this.#limit || this.#writer.needsDrain;
    if (full) this.#socket.pause();
    else if (this.#socket.isPaused()) this.#socket.resume();
  }

  /** Ends the socket when nothing is in flight and no more requests will be taken. */
  #checkIdle(): void {
    if (this.#inFlight > 0 || this.#isClosed || this.#ended) return;
    if (this.#draining || this.#ending) {
      this.#ended = true;
      // On a drain, close once the answers are handed to the kernel: a peer that never closes
      // its side must not hold the node's stop. Input is read and dropped until then (unread
      // input would turn the close into a reset).
      this.#socket.resume();
      this.#socket.end(() => {
        if (this.#draining) this.#socket.destroy();
      });
    }
  }

  #onClose(): void {
    this.#isClosed = true;
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    this.#decoder.reset();
    this.#account();
    this.#accountReplies();
    this.#closed.resolve();
    this.#maybeDone();
  }

  #maybeDone(): void {
    if (this.#isClosed && this.#inFlight === 0) this.#done.resolve();
  }
}
