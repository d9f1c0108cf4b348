// The client side of one peer: a persistent multiplexed connection with timeouts and backoff.

import { connect, type Socket } from 'node:net';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Registry } from 'prom-client';
import { KvError, toKvError, wireCode } from '../errors/index.ts';
import type { CounterCell, Logger } from '../observability/index.ts';
import { type PeerAddress, parsePeerAddress } from './address.ts';
import {
  decodeResponse,
  encodeRequestFrame,
  MAX_REQUEST_ID,
  type ResponseMessage,
  setRequestDeadline,
  setRequestId,
} from './codec.ts';
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder } from './frame.ts';
import { FrameWriter } from './frame-writer.ts';
import { type PeerLane, type PeerMetrics, peerMetrics } from './metrics.ts';
import { PeerRefusals } from './refusals.ts';
import { retransmitting, tunePeerSocket, unacknowledgedBytes, unsentBytes } from './socket.ts';

export interface PeerClientOptions {
  /** `host:port` of the peer's peer port (`[addr]:port` for IPv6). */
  readonly address: string;
  readonly logger: Logger;
  /** Where the `kvstore_peer_*` metrics go; shared with the node's server when the same. */
  readonly registry?: Registry;
  /** Default per-request timeout in ms (request() may override it). */
  readonly timeoutMs?: number;
  /** How long a TCP connect may take before it counts as failed, in ms. */
  readonly connectTimeoutMs?: number;
  /** Outstanding requests at which further request() calls are refused. */
  readonly maxInFlight?: number;
  /** Largest request body sent and response body accepted, in bytes. */
  readonly maxFrameBytes?: number;
  /**
   * Bytes of requests written and not yet taken by the kernel (the peer is not reading) at
   * which further request() calls are refused; a frame into an empty queue is always sent.
   */
  readonly maxQueuedBytes?: number;
  /** Wait after the first failed connect, doubled per further failure, in ms. */
  readonly initialBackoffMs?: number;
  /** Cap of the reconnect wait, in ms. */
  readonly maxBackoffMs?: number;
  /**
   * Run on every new connection before anything else is sent (the cluster-secret challenge and
   * proof, auth/peer.ts): its `ask` requests go out at once, every other request waits (counted
   * in `maxQueuedBytes`) until it resolves. When it rejects, the connection is closed, the
   * waiting requests fail with its error (a KvError) or KV_ERR_PEER_UNAVAILABLE, and the next
   * attempt waits `maxBackoffMs`, doubled per further refusal in a row up to
   * REFUSED_BACKOFF_FACTOR times it (with jitter in [50%, 100%]), or until warm().
   */
  readonly handshake?: (ask: (method: string, body: unknown) => Promise<unknown>) => Promise<void>;
  /** Where refused handshakes are logged: shared by the clients of one address (PeerPool). */
  readonly refusals?: PeerRefusals;
  /** Connect with TLS using these options (CA, client certificate); null: plain TCP. */
  readonly tls?: TlsConnectionOptions | null;
  /** The lane this client serves (PeerPool), as its metrics label it. */
  readonly lane?: PeerLane;
  /**
   * Longest a request is waited for, from when it was sent, while its answer is arriving past its
   * timeout (see FLOOR_RATE); a request whose own timeout is longer is never waited for past it.
   * The node sets it so that a read repair of what a read got lands within --tombstone-grace-ms
   * minus --max-clock-offset-ms of the read (rebalance/transfer.ts readWaitMs).
   */
  readonly maxWaitMs?: number;
}

/** What one request may set (PeerClient.request, requestFrame; PeerPool.request passes them on). */
export interface PeerRequestOptions {
  /** Its timeout instead of the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Longest it is waited for from when it was sent, if less than the client's `maxWaitMs`. */
  readonly maxWaitMs?: number;
  /**
   * Its body's first key is `d`, its deadline (ms since the epoch: ApplyRequest.d), which the
   * client sets as it hands the frame to its socket, to about when it stops waiting for the answer
   * (#lookAgainAt): then, plus the bytes ahead of it the peer has not read yet at FLOOR_RATE, plus
   * the timeout; no later than sent plus the longest it is waited for. Before, a copy queued
   * behind others to a member over a slow link carried the deadline of when it was made, and was
   * refused as expired when it got there.
   */
  readonly deadline?: boolean;
  /**
   * Its body's deadline when it is fixed (ms since the epoch: a tombstone's copy, copies
   * coalesced in a turn, a repair): the peer refuses it past then (KV_ERR_EXPIRED), so it is not
   * waited for behind other frames past it, only while answers arrive (ARRIVING_WINDOW_MS).
   */
  readonly landBy?: number;
}

export const PEER_CLIENT_DEFAULTS = {
  /** Quorum operations answer in ms; 2 s means the peer is stuck, not slow. */
  timeoutMs: 2000,
  /** Same as a request: a peer that cannot accept in 2 s is treated as down. */
  connectTimeoutMs: 2000,
  /** Four times the server's per-connection limit: room for bursts, still bounded memory. */
  maxInFlight: 4096,
  /** Matches the server's frame limit. */
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  /**
   * Two largest frames: toward a peer that reads, the queue only holds what the network has not
   * carried yet; toward one that does not (stopped, stuck: its receive window full), every write
   * would stay queued until memory runs out, timed out or not.
   */
  maxQueuedBytes: 2 * DEFAULT_MAX_FRAME_BYTES,
  /** First retry soon (a restarting pod), then back off to one attempt per 2 s. */
  initialBackoffMs: 50,
  maxBackoffMs: 2000,
  lane: 'small',
  maxWaitMs: Number.POSITIVE_INFINITY,
} as const;

/**
 * Bytes per second an answer is given time for, 4 Mbit/s (10 s for 4 MiB on top of a 2 s peer
 * timeout): the bulk transfers' timeouts by size (rebalance/transfer.ts), and the least rate at
 * which answers arriving on a connection keep its requests from timing out (ARRIVING_WINDOW_MS).
 */
export const FLOOR_RATE = 512 * 1024;

/**
 * A request whose timeout runs out while a large answer (ARRIVING_FRAME_BYTES) is arriving on its
 * connection is not failed: its answer is that one, or behind it (a connection's answers come one
 * after the other), and their size was not known when it was sent. It is looked at again after
 * this long, and waited for another such window as long as the large answers' bytes received in
 * the last one came at FLOOR_RATE or faster; else it fails then (an answer that stopped coming, a
 * member stopped or cut off halfway, or one slower than the floor), as it does at maxWaitMs.
 * "Arriving" at its timeout: bytes received lately bought time that is not over yet, each byte
 * 1/FLOOR_RATE s from its arrival or from the end of the time bought before, at most this far
 * ahead. An answer at the floor rate or faster is therefore waited for about its bytes at
 * FLOOR_RATE, as a copy of those bytes is (transfer.ts); a member that sends nothing fails its
 * requests at their timeout exactly as before. A GET of a 4 MiB value from a member behind
 * 8 Mbit/s (over 4 s on the wire) failed every time at the 2 s peer timeout, half received.
 */
const ARRIVING_WINDOW_MS = 1000;

/**
 * The looks a request waiting behind other frames judges its connection's progress from
 * (#lookAgainAt): from any of its last three to now (up to about 3 s: looks are
 * ARRIVING_WINDOW_MS apart), and from the other requests' looks on its connection in the last 3 s
 * since it was sent (its second look too then judges more than a second), not only from its last.
 * A busy socket's bytes leave in steps
 * (the kernel takes them as about a third of its send buffer frees: 326-456 KB measured through
 * the tests' shaper), against FLOOR_RATE's 524 KB a second: a second that held one step failed
 * a 4 MiB copy behind others on a connection that carried 0.9-1.8 MB/s (slow-link.test's lanes
 * case: 4 runs of 6 lost a write so). Over 2-3 s a step is a quarter to a third of the floor's
 * bytes. A member that stops reading while requests are waited for fails them within about 3 s
 * (1 s before); one that reads nothing from the start, at their timeout or a second later, as
 * before: the first look is from when it was sent, and later ones never reach back past it.
 */
const PROGRESS_LOOKS = 3;

/**
 * Answers at least this large count as arriving (ARRIVING_WINDOW_MS); smaller ones cross any link
 * in well under a peer timeout (64 KiB: 125 ms at FLOOR_RATE), and a stream of them does not keep
 * a request whose handler hangs waiting. The large lane's threshold (pool.ts).
 */
const ARRIVING_FRAME_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);

/**
 * Bytes of frames handed to the socket and not yet taken by the kernel (its write buffer's
 * high-water mark) past which further frames wait in the client's own queue, until the socket
 * has handed all it holds to the kernel ('drain'). Frames in that queue can still be dropped when
 * their request times out; the socket's buffer and the kernel's cannot give a frame back. The
 * same order as the kernel's send buffer, so that the link never waits for this process to run
 * between two refills: at 256 KiB, under a CPU-starved event loop, 1 MiB copies to a healthy
 * replica went one per loop turn and some took over the 2 s peer timeout. A frame is handed over
 * whole whatever its size.
 */
const HANDOFF_BYTES = 4 * 1024 * 1024;

/**
 * Control-lane requests in a row that time out with nothing received on their connection, after
 * which it is closed (see PeerClient's #onTimeout): two, so that one answer a saturated link
 * lost and resends late does not cost a new connection.
 */
const SILENT_PROBES_TO_CLOSE = 2;

/** `idle`: no socket, the next request connects. `backoff`: failed, requests fail fast. */
export type PeerClientState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: KvError) => void;
  /** Its timeout; armed again while answers are arriving (ARRIVING_WINDOW_MS). */
  timer: NodeJS.Timeout;
  readonly method: string;
  readonly started: number;
  /** Its frame, queued or handed to the socket; null for a handshake's (written at once). */
  readonly out: Outgoing | null;
  /** The connection it was sent on, and the bytes received on it by then. */
  readonly socket: Socket | null;
  readonly received: number;
  /**
   * The connection's bytes the kernel had taken (#taken), and those the peer had read
   * (#peerRead), when it was sent.
   */
  readonly taken: number;
  readonly read: number;
  /** When it is waited for no longer (performance.now()): sent plus the longest wait. */
  readonly lastAt: number;
  /** When it is no longer waited for behind other frames (performance.now(): its landBy). */
  readonly behindUntil: number;
  /**
   * When it was last waited for past its timeout (0: not yet), and the connection's #arrivedBytes
   * then (ARRIVING_WINDOW_MS).
   */
  waitedAt: number;
  waitedBytes: number;
  /** Its last PROGRESS_LOOKS looks that waited for it, the last one last. */
  looks: Look[];
  /**
   * Behind frames the peer had not been seen to read, when sent or at its last look
   * (#lookAgainAt).
   */
  behind: boolean;
  /** Waited for past its timeout at least once (kvstore_peer_requests_waited_total). */
  waited: boolean;
}

/**
 * A look at a request waiting past its timeout (#lookAgainAt): when, and the connection's bytes
 * the kernel had taken (#taken), the peer had read (#peerRead) and the peer's kernel had
 * acknowledged, or at most (the bytes taken, when it was not asked).
 */
interface Look {
  readonly at: number;
  readonly taken: number;
  readonly read: number;
  readonly acked: number;
}

/** A request frame waiting for the socket (see HANDOFF_BYTES). */
interface Outgoing {
  /**
   * Emptied once handed to the socket or dropped: neither a request waiting for its answer nor a
   * peer that reads nothing keeps a frame alive here.
   */
  frame: Buffer;
  /** Handed to the socket, or its request settled before that (then it is never sent). */
  gone: boolean;
  /**
   * The connection's bytes written (#written) before its first byte and up to its last one, once
   * handed to the socket; Infinity before.
   */
  start: number;
  end: number;
  /** Its deadline's window (PeerRequestOptions.deadline): its timeout, and the latest wall time. */
  readonly deadline: { readonly timeoutMs: number; readonly latest: number } | null;
  /** Its request's timeout. */
  readonly timeoutMs: number;
  /**
   * When it was handed to the socket, and when a look first found all of it acknowledged by the
   * peer's kernel (performance.now(); 0 before): see #aheadAnswered.
   */
  writtenAt: number;
  crossedAt: number;
  /** When a look last found it not all acknowledged by the peer's kernel (0: none did). */
  crossingAt: number;
}

type Options = Required<Omit<PeerClientOptions, 'registry' | 'handshake' | 'tls' | 'refusals'>> &
  Pick<PeerClientOptions, 'handshake' | 'tls'>;

/**
 * Handshakes refused in a row stretch the wait before the next attempt up to this many times
 * `maxBackoffMs` (8 s by default): a member stopped (SIGSTOP) accepts connections in its kernel
 * and answers no challenge, and each lane redialled it every 4 s (a 2 s handshake timeout, then
 * 2 s) for as long as it stayed stopped. A member that answers a probe again ends the wait of its
 * data lanes at once (warm()); the probes' own lane waits it out, so this also bounds how late a
 * member stopped that long is called up once it runs again.
 */
export const REFUSED_BACKOFF_FACTOR = 4;

/**
 * Requests to one peer over one TCP connection, multiplexed by id.
 *
 * - Lazy: nothing connects until the first request. Requests made while connecting are queued
 *   in the socket and sent on connect.
 * - A failed connect rejects the requests waiting on it with KV_ERR_PEER_UNAVAILABLE and starts a
 *   backoff (`initialBackoffMs` doubling to `maxBackoffMs`, with jitter in [50%, 100%]); until it
 *   ends, request() rejects at once with KV_ERR_PEER_UNAVAILABLE. The first request after it tries
 *   again. A successful connect resets the backoff.
 * - Losing an established connection (peer closed, reset, malformed frame from the peer) rejects
 *   every outstanding request with KV_ERR_PEER_UNAVAILABLE; the next request reconnects at once.
 * - Frames queued in one event-loop turn leave in one socket write, up to HANDOFF_BYTES; the rest
 *   wait in the client until the socket drains, and a request that times out meanwhile is never
 *   sent (a frame is only ever sent whole). A peer that stops reading (paused, stuck) then gets,
 *   when it reads again, only what the socket and the kernel already held, not every request
 *   that timed out in between.
 */
export class PeerClient {
  readonly address: string;
  readonly #target: PeerAddress;
  readonly #opts: Options;
  readonly #metrics: PeerMetrics;
  readonly #laneRequests: CounterCell;
  readonly #decoder: FrameDecoder;
  readonly #pending = new Map<number, Pending>();
  #state: PeerClientState = 'idle';
  #socket: Socket | null = null;
  #writer: FrameWriter | null = null;
  #lastId = 0;
  #failures = 0;
  #retryAt = 0;
  #closed: Promise<void> | null = null;
  /** Bytes handed to the current socket; minus its writableLength: the bytes it has flushed. */
  #written = 0;
  /** Armed when a request is refused for a full queue: checks the peer took something since. */
  #stallTimer: NodeJS.Timeout | null = null;
  /** progressOf(socket) when the timer was armed. */
  #stalledAt = '';
  /** Bytes received on the current socket. */
  #received = 0;
  /** Set when the current socket was closed for not draining: reconnect after a backoff. */
  #stalled = false;
  /** Request frames not yet handed to the socket, from #queueHead on, and their live bytes. */
  #queue: Outgoing[] = [];
  #queueHead = 0;
  /** Entries of #queue past #queueHead that were dropped (compacted away when they pile up). */
  #queueDropped = 0;
  #queueBytes = 0;
  /** Set while the current socket's handshake runs: only its requests are sent. */
  #holding = false;
  /** Set when the current socket's handshake failed: reconnect after a backoff. */
  #refused = false;
  /** Handshakes refused in a row (reset by one accepted). */
  #refusals = 0;
  /**
   * The current backoff follows a failed connect or a refused handshake, which a peer that
   * answers again makes moot: warm() ends it (not the one after a stall).
   */
  #warmEnds = false;
  readonly #refusalLog: PeerRefusals;
  /** Set while the kernel is asked whether the current socket's bytes are being resent. */
  #asking = false;
  /**
   * Control lane: requests in a row that timed out on the current socket with nothing received
   * on it since they were sent (see #onTimeout); reset by any bytes received and a new socket.
   */
  #silentProbes = 0;
  /**
   * The current socket's large answers (ARRIVING_WINDOW_MS): until when (performance.now()) the
   * bytes received of them bought time, whether the decoder holds part of one now, and the bytes
   * received of them in all.
   */
  #arrivingUntil = 0;
  #arriving = false;
  #arrivedBytes = 0;
  /**
   * The current socket's bytes the peer has read, as far as its answers show: the end of the
   * furthest request frame answered (a peer reads a connection's frames in order). The frames'
   * ends of requests that timed out after they were written, by id, so that their late answers
   * still count (at most maxInFlight of them).
   */
  #peerRead = 0;
  #lateEnds = new Map<number, number>();
  /** When #peerRead last grew (performance.now()), and the bytes the kernel had taken then. */
  #readAt = 0;
  /**
   * The current socket's looks at requests waiting past their timeout in the last
   * PROGRESS_LOOKS seconds, any request's (#lookAgainAt).
   */
  #looks: Look[] = [];
  #takenAtRead = 0;
  /**
   * The current socket's frames handed to it and not yet seen read (their end past #peerRead),
   * in the order written, from #unansweredHead on: the first is the one the peer answers next
   * (#aheadAnswered).
   */
  #unanswered: Outgoing[] = [];
  #unansweredHead = 0;

  /** Throws KvError KV_ERR_INVALID_ARGUMENT for a malformed address; does not connect. */
  constructor(opts: PeerClientOptions) {
    this.address = opts.address;
    this.#target = parsePeerAddress(opts.address);
    this.#opts = { ...PEER_CLIENT_DEFAULTS, ...withoutUndefined(opts) } as Options;
    this.#metrics = peerMetrics(opts.registry);
    this.#laneRequests = this.#metrics.laneRequests.labels(this.#opts.lane);
    this.#decoder = new FrameDecoder(this.#opts.maxFrameBytes);
    this.#refusalLog = opts.refusals ?? new PeerRefusals(opts.logger);
    this.#metrics.queues.add(this);
  }

  /** Bytes of requests written to the socket and not yet taken by the kernel. */
  get queuedBytes(): number {
    return (this.#socket?.writableLength ?? 0) + this.#queueBytes;
  }

  /** The lane this client serves (PeerClientOptions.lane). */
  get lane(): PeerLane {
    return this.#opts.lane;
  }

  get state(): PeerClientState {
    return this.#state;
  }

  /** Requests sent and not yet settled. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Sends `method` with `body` (see codec.ts for what survives msgpack) and resolves with the
   * handler's result, unchecked: `T` is the caller's claim. Rejects with a KvError:
   * - the remote handler's code and message (unknown remote codes become KV_ERR_INTERNAL);
   * - KV_ERR_PEER_TIMEOUT after `timeoutMs` (the request may still run remotely; a late response
   *   is ignored);
   * - KV_ERR_PEER_UNAVAILABLE when closed, within backoff, or the connection fails or is lost;
   *   at once, without sending, while the bytes queued to the peer (written, not yet taken by the
   *   kernel) would pass `maxQueuedBytes`; if the peer then takes none of them for `timeoutMs`,
   *   the connection is closed (it is not reading) and a new one is tried after `maxBackoffMs`;
   * - KV_ERR_PEER_OVERLOADED at once, without sending, while `maxInFlight` requests are
   *   outstanding (no queueing: callers see the overload and may shed or retry);
   * - KV_ERR_PEER_PROTOCOL when the encoded request is over `maxFrameBytes` (not sent);
   * - KV_ERR_INTERNAL when the body cannot be encoded.
   * `method` labels metrics: use a fixed set of names.
   */
  request<T>(method: string, body: unknown, opts: PeerRequestOptions = {}): Promise<T> {
    return this.#send(method, encodeFrame(method, body), opts, false);
  }

  /**
   * request() of a frame already encoded by encodeRequestFrame (or the KvError encoding it threw,
   * which rejects the same way), so that its size could choose the connection (PeerPool). The
   * frame is this request's alone: its id is written into it.
   */
  requestFrame<T>(
    method: string,
    frame: Buffer | KvError,
    opts: PeerRequestOptions = {},
  ): Promise<T> {
    return this.#send(method, frame, opts, false);
  }

  /**
   * Starts connecting (and the handshake) now when there is no connection, none is being made,
   * no backoff is running (but the one after a failed connect or a refused handshake: the
   * caller knows the peer answers now, as a probe that just succeeded does) and the client is
   * open, so that the next request finds one ready; otherwise does nothing. A failed connect is
   * a failed connect as for a request (backoff).
   */
  warm(): void {
    if (this.#socket !== null || this.#state === 'closed') return;
    const waiting = this.#state === 'backoff' && performance.now() < this.#retryAt;
    if (waiting && !this.#warmEnds) return;
    this.#connect();
  }

  /** request(); a `handshake` request is written at once and refused only when closed. */
  #send<T>(
    method: string,
    frame: Buffer | KvError,
    opts: PeerRequestOptions,
    handshake: boolean,
  ): Promise<T> {
    const started = performance.now();
    this.#metrics.requestsSent.labels(method).inc();
    this.#laneRequests.inc();
    const refusal = this.#refusal(handshake);
    if (refusal !== null) return this.#refuse(method, started, refusal);
    if (frame instanceof KvError) return this.#refuse(method, started, frame);
    if (frame.length - FRAME_HEADER_BYTES > this.#opts.maxFrameBytes) {
      const bytes = frame.length - FRAME_HEADER_BYTES;
      const msg = `peer: ${method} request of ${bytes} bytes is over the frame limit`;
      return this.#refuse(method, started, new KvError('KV_ERR_PEER_PROTOCOL', msg));
    }
    if (this.#socket === null) this.#connect();
    else if (this.#queueFull(this.#socket, frame.length)) {
      return this.#refuse(method, started, this.#queueFullError(this.#socket));
    }
    const id = this.#nextId();
    setRequestId(frame, id);
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const timeoutMs = opts.timeoutMs ?? this.#opts.timeoutMs;
    const timer = this.#timer(id, timeoutMs, timeoutMs);
    const waitMs = Math.min(this.#opts.maxWaitMs, opts.maxWaitMs ?? Number.POSITIVE_INFINITY);
    const deadline = opts.deadline
      ? { timeoutMs, latest: Date.now() + Math.max(timeoutMs, waitMs) }
      : null;
    const never = Number.POSITIVE_INFINITY;
    const out = handshake
      ? null
      : {
          frame,
          gone: false,
          start: never,
          end: never,
          deadline,
          timeoutMs,
          writtenAt: 0,
          crossedAt: 0,
          crossingAt: 0,
        };
    const socket = this.#socket!;
    this.#pending.set(id, {
      resolve: resolve as (v: unknown) => void,
      reject,
      timer,
      method,
      started,
      out,
      socket,
      received: this.#received,
      taken: this.#taken(socket),
      read: this.#peerRead,
      lastAt: started + waitMs,
      behindUntil:
        opts.landBy === undefined ? Number.POSITIVE_INFINITY : started + opts.landBy - Date.now(),
      waitedAt: 0,
      waitedBytes: 0,
      looks: [],
      // Behind a large frame's worth or more: a request on a connection whose small requests
      // are answered as they come is not.
      behind: this.#written + this.#queueBytes - this.#peerRead >= ARRIVING_FRAME_BYTES,
      waited: false,
    });
    this.#metrics.inFlight.labels('client').inc();
    if (out === null) {
      this.#writer!.write(frame);
    } else {
      this.#queue.push(out);
      this.#queueBytes += frame.length;
      this.#pump();
    }
    return promise;
  }

  /**
   * Hands queued frames to the socket, in order, until its buffer passes HANDOFF_BYTES (the rest
   * go on 'drain'); nothing while the handshake runs. Dropped frames are skipped.
   */
  #pump(): void {
    const socket = this.#socket;
    const writer = this.#writer;
    if (socket === null || writer === null || this.#holding) return;
    const queue = this.#queue;
    while (this.#queueHead < queue.length && !socket.writableNeedDrain) {
      const out = queue[this.#queueHead++]!;
      if (out.gone) {
        this.#queueDropped--;
        continue;
      }
      out.gone = true;
      this.#queueBytes -= out.frame.length;
      if (out.deadline !== null) {
        // When it stops being waited for (#lookAgainAt), the bytes ahead of it the peer has not
        // read yet (in the socket, the kernels', the link) going at the floor rate: they, then
        // its timeout.
        const ahead = ((this.#written - this.#peerRead) * 1000) / FLOOR_RATE;
        const d = Math.min(Date.now() + ahead + out.deadline.timeoutMs, out.deadline.latest);
        setRequestDeadline(out.frame, Math.ceil(d));
      }
      out.start = this.#written;
      writer.write(out.frame);
      out.end = this.#written;
      out.frame = EMPTY; // the socket holds it now; the request need not until it settles
      out.writtenAt = performance.now();
      this.#sentUnanswered(out);
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
      this.#queueDropped = 0;
    } else if (this.#queueHead >= 1024 && this.#queueHead * 2 >= queue.length) {
      this.#queue = queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  /**
   * Takes `out` out of the queue: it is never sent, its bytes leave the count and its memory is
   * let go. Toward a peer that reads nothing, requests keep timing out while none is sent: the
   * dropped entries are removed once they are most of the queue, so it holds live ones only.
   */
  #drop(out: Outgoing): void {
    out.gone = true;
    this.#queueBytes -= out.frame.length;
    out.frame = EMPTY;
    const live = this.#queue.length - this.#queueHead;
    if (++this.#queueDropped >= 1024 && this.#queueDropped * 2 >= live) {
      this.#queue = this.#queue.slice(this.#queueHead).filter((o) => !o.gone);
      this.#queueHead = 0;
      this.#queueDropped = 0;
    }
  }

  /** Forgets every queued frame (their requests have been settled). */
  #clearQueue(): void {
    this.#queue = [];
    this.#queueHead = 0;
    this.#queueBytes = 0;
    this.#queueDropped = 0;
  }

  /**
   * Rejects every outstanding request with KV_ERR_PEER_UNAVAILABLE, closes the connection and
   * refuses later requests the same way. Resolves once the socket is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    this.#state = 'closed';
    this.#metrics.queues.delete(this);
    this.#rejectAll(
      new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: client for ${this.address} closed`),
    );
    this.#clearQueue();
    const socket = this.#socket;
    if (socket === null) {
      this.#closed = Promise.resolve();
    } else {
      this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
      socket.destroy();
    }
    return this.#closed;
  }

  #refusal(handshake: boolean): KvError | null {
    if (this.#state === 'closed') {
      return new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: client for ${this.address} closed`);
    }
    if (handshake) return null;
    if (this.#pending.size >= this.#opts.maxInFlight) {
      const msg = `peer: ${this.#pending.size} requests to ${this.address} outstanding`;
      return new KvError('KV_ERR_PEER_OVERLOADED', msg);
    }
    if (this.#state === 'backoff' && performance.now() < this.#retryAt) {
      const msg = `peer: ${this.address} unreachable, retrying after backoff`;
      return new KvError('KV_ERR_PEER_UNAVAILABLE', msg);
    }
    return null;
  }

  /** `frameBytes`: the frame's, its header included. */
  #queueFull(socket: Socket, frameBytes: number): boolean {
    const queued = socket.writableLength + this.#queueBytes;
    return queued > 0 && queued + frameBytes > this.#opts.maxQueuedBytes;
  }

  #queueFullError(socket: Socket): KvError {
    this.#metrics.refused.labels('queue_full').inc();
    if (this.#stallTimer === null) {
      this.#stalledAt = this.#progressOf(socket);
      const timeoutMs = this.#opts.timeoutMs;
      // Judged after the next I/O poll, as a request's timeout is (see #send).
      const check = () => setImmediate(() => this.#checkStall(socket, timeoutMs));
      this.#stallTimer = setTimeout(check, timeoutMs);
    }
    const msg = `peer: ${this.queuedBytes} bytes queued to ${this.address}: slow or not reading`;
    return new KvError('KV_ERR_PEER_UNAVAILABLE', msg);
  }

  /**
   * Where the socket's traffic stands: bytes whose writes completed, bytes of the current write
   * the kernel has not taken (see unsentBytes), bytes received. Any change is the peer taking or
   * sending something.
   */
  #progressOf(socket: Socket): string {
    return `${this.#written - socket.writableLength}/${unsentBytes(socket)}/${this.#received}`;
  }

  /**
   * Bytes of `socket`'s the kernel has taken: those handed to libuv less those it has not written
   * yet (unsentBytes; Node's own count of bytes dispatched). Where the handle does not say, those
   * of completed writes (a large write then shows only when all of it is taken).
   */
  #taken(socket: Socket | null): number {
    if (socket === null) return 0;
    const dispatched = (socket as unknown as { _bytesDispatched?: unknown })._bytesDispatched;
    const unsent = unsentBytes(socket);
    if (typeof dispatched === 'number' && unsent >= 0) return dispatched - unsent;
    return this.#written - socket.writableLength;
  }

  /**
   * Closes `socket` if the peer took none of its queued bytes, and sent none, since the queue
   * became full. A slow link is not a stall: the kernel takes part of a large write at a time.
   */
  #checkStall(socket: Socket, timeoutMs: number): void {
    this.#stallTimer = null;
    if (socket !== this.#socket || socket.destroyed) return;
    const queued = socket.writableLength;
    if (queued === 0 || this.#progressOf(socket) !== this.#stalledAt) return;
    this.#stalled = true;
    this.#metrics.stalled.inc();
    const msg = `peer not reading: ${queued} bytes queued, none taken in ${timeoutMs} ms`;
    socket.destroy(new Error(msg));
  }

  #refuse<T>(method: string, started: number, err: KvError): Promise<T> {
    this.#observe(method, started, err);
    return Promise.reject(err);
  }

  #observe(method: string, started: number, err: KvError | null): void {
    this.#metrics.duration.labels(method).observe((performance.now() - started) / 1000);
    if (err !== null) this.#metrics.errors.labels(wireCode(err.code), 'client').inc();
  }

  #nextId(): number {
    do {
      this.#lastId = this.#lastId >= MAX_REQUEST_ID ? 1 : this.#lastId + 1;
    } while (this.#pending.has(this.#lastId));
    return this.#lastId;
  }

  #connect(): void {
    const { host, port } = this.#target;
    const tls = this.#opts.tls;
    // Node's socket options take a highWaterMark (its write buffer's too); the types omit it.
    // node:tls is loaded by a node that uses TLS only (Node caches it: a lookup after the first).
    const hwm = { highWaterMark: HANDOFF_BYTES } as object;
    const socket = tls
      ? process.getBuiltinModule('node:tls').connect({ ...tls, host, port, ...hwm })
      : connect({ host, port, ...hwm } as { host: string; port: number });
    this.#socket = socket;
    this.#written = 0;
    this.#received = 0;
    this.#warmEnds = false;
    this.#silentProbes = 0;
    this.#arrivingUntil = 0;
    this.#arriving = false;
    this.#arrivedBytes = 0;
    this.#peerRead = 0;
    this.#lateEnds.clear();
    this.#readAt = 0;
    this.#looks = [];
    this.#takenAtRead = 0;
    this.#unanswered = [];
    this.#unansweredHead = 0;
    this.#writer = new FrameWriter(socket, (n) => {
      this.#written += n;
      this.#metrics.sentBytes.labels('client').inc(n);
    });
    const handshake = this.#opts.handshake;
    if (handshake) {
      // Before any other request: the server serves nothing else until it is done.
      this.#holding = true;
      handshake((method, body) => this.#send(method, encodeFrame(method, body), {}, true)).then(
        () => this.#release(socket),
        (err: unknown) => this.#handshakeFailed(socket, err),
      );
    }
    this.#decoder.reset();
    this.#state = 'connecting';
    let connected = false;
    let error: Error | undefined;
    tunePeerSocket(socket);
    socket.setTimeout(this.#opts.connectTimeoutMs, () => {
      socket.destroy(new Error(`connect timed out after ${this.#opts.connectTimeoutMs} ms`));
    });
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      this.#metrics.connections.labels('client').inc();
      socket.setTimeout(0);
      this.#onConnect(socket);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(socket, chunk));
    socket.on('drain', () => {
      if (socket === this.#socket) this.#pump();
    });
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => this.#onClose(socket, connected, error));
  }

  /** The handshake is done: the requests held behind it go out, in order. */
  #release(socket: Socket): void {
    if (socket !== this.#socket || !this.#holding) return;
    this.#holding = false;
    this.#refusals = 0;
    this.#refusalLog.accepted(this.address);
    this.#pump();
  }

  #handshakeFailed(socket: Socket, err: unknown): void {
    if (socket !== this.#socket || this.#state === 'closed') return;
    this.#refusalLog.refused(this.address, this.#opts.lane, err);
    this.#refused = true;
    if (err instanceof KvError && err.code === 'KV_ERR_NOAUTH') this.#rejectAll(err);
    socket.destroy();
  }

  #onConnect(socket: Socket): void {
    this.#metrics.connects.labels('ok').inc();
    if (socket !== this.#socket || this.#state === 'closed') return;
    this.#state = 'connected';
    this.#failures = 0;
    this.#opts.logger.info({ peer: this.address, lane: this.#opts.lane }, 'peer connected');
  }

  #onData(socket: Socket, chunk: Buffer): void {
    this.#metrics.receivedBytes.labels('client').inc(chunk.length);
    if (socket !== this.#socket) return;
    this.#received += chunk.length;
    this.#silentProbes = 0;
    const continued = this.#arriving;
    this.#decoder.push(chunk);
    for (;;) {
      let msg: ResponseMessage;
      try {
        const frame = this.#decoder.next();
        if (frame === null) {
          this.#arrived(continued, chunk.length);
          return;
        }
        msg = decodeResponse(frame);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      this.#onResponse(msg);
    }
  }

  /**
   * After a chunk of `bytes` was taken in: when it continued a large answer (`continued`) or left
   * part of one in the decoder, its bytes count (ARRIVING_WINDOW_MS).
   */
  #arrived(continued: boolean, bytes: number): void {
    this.#arriving = this.#decoder.partialFrameBytes >= ARRIVING_FRAME_BYTES;
    if (!continued && !this.#arriving) return;
    this.#arrivedBytes += bytes;
    const now = performance.now();
    const from = Math.max(this.#arrivingUntil, now);
    this.#arrivingUntil = Math.min(from + (bytes * 1000) / FLOOR_RATE, now + ARRIVING_WINDOW_MS);
  }

  /**
   * Whether `p`, whose timeout ran out, waits on: large answers arrive on its connection, the
   * first time lately, then at FLOOR_RATE or faster since it was last waited for.
   */
  #answersArriving(p: Pending, now: number): boolean {
    if (p.socket !== this.#socket) return false;
    if (p.waitedAt === 0) return now < this.#arrivingUntil;
    return this.#arrivedBytes - p.waitedBytes >= ((now - p.waitedAt) * FLOOR_RATE) / 1000;
  }

  /**
   * When `p`, whose timeout ran out at `now`, is looked at again, or 0 to fail it now: while its
   * frame waits behind others leaving at the floor rate, and its timeout again from the look that
   * finds it all left; while large answers arrive on its connection (ARRIVING_WINDOW_MS); never
   * past its lastAt.
   *
   * A request whose timeout runs out while its frame waits behind others the peer has not been
   * seen to read (#peerRead: in the client's queue, the socket's, the kernels', on the link) is
   * not failed while the connection's bytes leave (the kernel takes them as the link carries them),
   * are acknowledged by the peer's kernel (`acked`: asked of the kernel when the others show no
   * movement, for frames in the kernels' buffers, megabytes, cross the link unseen here) or are
   * read (answered) at FLOOR_RATE or faster: on its first look, since it was sent; then since any
   * of its last PROGRESS_LOOKS looks, a second apart. The first look that finds every frame before
   * it read gives it its own timeout from then, as if just sent: the time spent behind frames
   * that were moving does not count, and what it asked of the member has its whole timeout. A
   * member that reads nothing (stopped, cut off) takes nothing once the kernels' buffers are full:
   * its requests fail at their timeout as before, or one window later; one that reads and answers
   * nothing fails them once the first frame ahead of them is overdue (#aheadAnswered). Before, a
   * 4 MiB copy queued behind two others to a member behind 8 Mbit/s spent the time for its own
   * bytes waiting behind theirs, and timed out.
   */
  #lookAgainAt(p: Pending, now: number, timeoutMs: number, acked: number | null): number {
    const socket = this.#socket;
    if (p.socket !== socket || socket === null || now >= p.lastAt) return 0;
    const taken = this.#taken(socket);
    const read = this.#peerRead;
    // The connection's bytes left (the kernel took them) or were read (answered) at the floor
    // rate since it was sent (its first look) or since one of its last looks.
    // Or since the last answer that showed frames read, when that is later: a connection's first
    // seconds through a slow link (TCP's slow start overshooting its queue, losses) are slower
    // than what follows.
    const first = p.waitedAt === 0;
    const since = first ? p.started : p.waitedAt;
    const sinceRead = ((now - this.#readAt) * FLOOR_RATE) / 1000;
    const left = acked ?? taken;
    // From when it was sent, on its first look; then from any of its last looks (PROGRESS_LOOKS).
    const from = first
      ? [{ at: p.started, taken: p.taken, read: p.read, acked: p.taken }]
      : [...p.looks, ...this.#looks.filter((look) => look.at > p.started)];
    const moved =
      from.some((look) => {
        const floor = ((now - look.at) * FLOOR_RATE) / 1000;
        return (
          taken - look.taken >= floor ||
          read - look.read >= floor ||
          (acked !== null && acked - look.acked >= floor)
        );
      }) ||
      (this.#readAt > since && left - this.#takenAtRead >= sinceRead);
    // Behind frames the peer has not been seen to read: waited for while they move.
    const behind = p.out !== null && p.out.start > read;
    // Past a fixed deadline the peer refuses it: not waited for behind others any longer. Nor
    // behind a frame that reached the member and is not answered (its handler hangs); when the
    // kernel must say whether it reached it, 0: #onTimeout asks and looks again.
    const answering = moved && now < p.behindUntil ? this.#aheadAnswered(p, now, acked) : false;
    if (answering === null) return 0;
    const mayWait = answering;
    if (!behind && p.behind && mayWait) {
      // Every frame before it was read since it was sent or last looked at: its own timeout from
      // now, and the first look again.
      p.behind = false;
      p.waitedAt = 0;
      p.looks = [];
      this.#countWaited(p);
      return Math.min(now + timeoutMs, p.lastAt);
    }
    let next = 0;
    if ((behind && mayWait) || this.#answersArriving(p, now)) next = now + ARRIVING_WINDOW_MS;
    p.behind = behind;
    if (next === 0) return 0;
    this.#countWaited(p);
    p.waitedAt = now;
    p.waitedBytes = this.#arrivedBytes;
    // Acknowledged: at most what the kernel took, when it was not asked (an acknowledgement
    // needs it first).
    const look = { at: now, taken, read, acked: acked ?? taken };
    p.looks = [...p.looks.slice(1 - PROGRESS_LOOKS), look];
    // Other requests' looks since this one was sent count for it too: its second look then
    // judges up to PROGRESS_LOOKS seconds, not only the second since its first.
    this.#looks = [...this.#looks.filter((l) => now - l.at < PROGRESS_LOOKS * 1000), look];
    return Math.min(next, p.lastAt);
  }

  /** Keeps `out`, just handed to the socket, until the peer is seen to read it (#aheadAnswered). */
  #sentUnanswered(out: Outgoing): void {
    const list = this.#unanswered;
    list.push(out);
    // Bounded: only requests in flight, and timed out ones whose late answers are awaited
    // (#lateEnds), can show a frame read; older ones go, but the first stays (the one a member
    // that answers nothing is judged by; dropping it made each later frame the first, just
    // written, and waited for again): the second goes. Once an answer passes the first, the next
    // is a later frame than the true one, judged more leniently.
    const head = this.#unansweredHead;
    if (list.length - head > 2 * this.#opts.maxInFlight) {
      list[head + 1] = list[head]!;
      this.#unansweredHead++;
    }
    this.#compactUnanswered();
  }

  /** Drops the frames the peer is seen to have read (their end at or before #peerRead). */
  #dropAnswered(): void {
    const list = this.#unanswered;
    while (
      this.#unansweredHead < list.length &&
      list[this.#unansweredHead]!.end <= this.#peerRead
    ) {
      this.#unansweredHead++;
    }
    this.#compactUnanswered();
  }

  #compactUnanswered(): void {
    const head = this.#unansweredHead;
    if (head === this.#unanswered.length) {
      this.#unanswered = [];
      this.#unansweredHead = 0;
    } else if (head >= 1024 && head * 2 >= this.#unanswered.length) {
      this.#unanswered = this.#unanswered.slice(head);
      this.#unansweredHead = 0;
    }
  }

  /**
   * Whether the frames ahead of `p`'s are answered as a member that works answers them, so that
   * `p` may be waited for behind them: the first of them not seen read (the head, timed out or
   * not) is answered within its own timeout of becoming the head (its write, or the last answer
   * that showed frames read), or, when it is not, it has not all reached the member yet (its
   * bytes crossing a slow link: the peer's kernel has not acknowledged them, `acked`), or did
   * less than its own timeout ago (the member's work on it). null: the kernel must be asked
   * (`acked` null), as it is only past that first timeout. A member that reads its connection
   * but answers nothing (handlers that hang, a disk slow enough to hold its writes) takes the
   * bytes as fast as they come: before, every request behind the first was waited for as long as
   * the node kept writing to it, up to the member's 1,024 frames in flight or its disk called
   * stalled (8.9-10 s where each failed at its 300 ms timeout before). A slow link's queue is
   * answered a frame at a time as each crosses, however long the queue.
   */
  #aheadAnswered(p: Pending, now: number, acked: number | null): boolean | null {
    this.#dropAnswered();
    const head = this.#unanswered[this.#unansweredHead];
    if (head === undefined || p.out === null || head.start >= p.out.start) return true;
    if (now - Math.max(head.writtenAt, this.#readAt) <= head.timeoutMs) return true;
    if (head.crossedAt === 0) {
      // Found still crossing less than a look ago: so taken again without asking. Every request
      // behind it looks once a second, each at its own time: asking at each look read the
      // kernel's TCP table (5-18 ms a scan with 10,000 sockets) about 20 times a second with 100
      // small requests a second behind 4 MiB frames crossing at 2 MiB/s (0.75 before this rule
      // asked; 1-3 now).
      if (acked === null) return now - head.crossingAt < ARRIVING_WINDOW_MS ? true : null;
      if (acked < head.end) {
        head.crossingAt = now;
        return true;
      }
      head.crossedAt = now;
    }
    return now - head.crossedAt <= head.timeoutMs;
  }

  /** Counts `p` in kvstore_peer_requests_waited_total, once. */
  #countWaited(p: Pending): void {
    if (!p.waited) this.#metrics.waited.labels(this.#opts.lane).inc();
    p.waited = true;
  }

  /**
   * Runs #onTimeout for request `id` after `ms`, judged after the next I/O poll: a process starved
   * of CPU (a loaded machine, a long GC) runs expired timers before it reads its sockets, so an
   * answer that came in time and waits in the socket would be taken for a timeout. setImmediate
   * runs after the poll that reads it.
   */
  #timer(id: number, timeoutMs: number, ms: number): NodeJS.Timeout {
    return setTimeout(() => setImmediate(() => this.#onTimeout(id, timeoutMs)), ms);
  }

  #onResponse(msg: ResponseMessage): void {
    const p = this.#pending.get(msg.i);
    const end = p === undefined ? this.#lateEnds.get(msg.i) : p.out?.end;
    if (end !== undefined && end !== Number.POSITIVE_INFINITY && end > this.#peerRead) {
      this.#peerRead = end;
      this.#dropAnswered();
      this.#readAt = performance.now();
      this.#takenAtRead = this.#taken(this.#socket);
    }
    if (p === undefined) {
      // Timed out earlier: the late response is ignored, but for the bytes it shows read.
      this.#lateEnds.delete(msg.i);
      return;
    }
    if (msg.ok) this.#settle(msg.i, p, null, msg.r);
    else this.#settle(msg.i, p, new KvError(msg.code, msg.message), undefined);
  }

  #onTimeout(id: number, timeoutMs: number): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    const now = performance.now();
    const next = this.#lookAgainAt(p, now, timeoutMs, null);
    if (next > now) {
      p.timer = this.#timer(id, timeoutMs, next - now);
      return;
    }
    const socket = this.#socket;
    if (
      socket === null ||
      p.socket !== socket ||
      p.out === null ||
      p.out.start <= this.#peerRead ||
      now >= p.behindUntil
    ) {
      this.#timedOut(id, p, now, timeoutMs);
      return;
    }
    // Behind frames that showed no movement here: they may be crossing the link from the
    // kernels' buffers (megabytes), which only the kernel's acknowledgements show.
    void unacknowledgedBytes(socket).then((unacked) => {
      if (this.#pending.get(id) !== p) return;
      const at = performance.now();
      const acked =
        unacked === null || socket !== this.#socket ? null : this.#taken(socket) - unacked;
      const later = acked === null ? 0 : this.#lookAgainAt(p, at, timeoutMs, acked);
      if (later > at) p.timer = this.#timer(id, timeoutMs, later - at);
      else this.#timedOut(id, p, at, timeoutMs);
    });
  }

  /** Fails `p` (request `id`), whose timeout ran out and which is not waited for any longer. */
  #timedOut(id: number, p: Pending, now: number, timeoutMs: number): void {
    // Every outstanding request is on the current connection (losing one settles its requests),
    // in the order sent: the first is the oldest still waiting.
    const oldest = this.#pending.keys().next().value === id;
    const msg = p.waited
      ? `peer: ${p.method} to ${this.address} timed out after ${Math.round(now - p.started)} ms (${timeoutMs} ms, then its frame leaving or an answer arriving too slowly or too long)`
      : `peer: ${p.method} to ${this.address} timed out after ${timeoutMs} ms`;
    if (p.out !== null && !p.out.gone) this.#metrics.dropped.labels(this.#opts.lane).inc();
    else if (p.out !== null && p.socket === this.#socket) this.#lateEnd(id, p.out.end);
    this.#settle(id, p, new KvError('KV_ERR_PEER_TIMEOUT', msg), undefined);
    if (oldest) this.#closeIfSilent(p, timeoutMs);
  }

  /** Keeps the end of a timed-out request's frame, written, for its late answer (#peerRead). */
  #lateEnd(id: number, end: number): void {
    if (this.#lateEnds.size >= this.#opts.maxInFlight) {
      this.#lateEnds.delete(this.#lateEnds.keys().next().value!);
    }
    this.#lateEnds.set(id, end);
  }

  /**
   * After `p`, the oldest request waiting on its connection, timed out with nothing received on
   * the connection since it was sent: closes the connection when the kernel is resending its
   * unacknowledged bytes (retransmitting()), so that the next request connects afresh. A link
   * that was down (a cable, a host's interface, a partition that drops) leaves both ends'
   * unanswered segments in TCP's retransmission backoff (resent 0.2, 0.6, 1.4, 3.0, 6.2, 12.6 s
   * ... after the first), and every later request and answer on the connection queued behind
   * them long after the link was back: a member whose link was down 8 s was called up 12.8 s after
   * it came back, and writes that needed its answer failed for 24.8 s after a 25 s outage
   * (test/integration/link-outage.test.ts, failure-detector.test.ts). Kept: a connection that
   * received anything in that time, one where a request sent before `p` still waits (a transfer
   * ahead of it, with the longer timeout its size gets), and one whose bytes the peer's kernel
   * acknowledges: a member that is slow, stopped (SIGSTOP) or whose handler hangs, and a large
   * frame crossing a slow link, are not helped by a new connection. Where the kernel does not say
   * (another OS), the connection is kept. The probes' connection is closed whatever the kernel
   * says: it carries nothing else, and a new one tells a stopped member from a live one sooner.
   */
  #closeIfSilent(p: Pending, timeoutMs: number): void {
    const socket = this.#socket;
    if (socket === null || socket !== p.socket || this.#received !== p.received) return;
    // A handshake that timed out closes its connection itself (#handshakeFailed); one ask at a
    // time per connection (requests timing out one after the other ask once).
    if (this.#holding || this.#asking) return;
    // The probes' lane: two in a row (SILENT_PROBES_TO_CLOSE), not one.
    if (this.#opts.lane === 'control' && ++this.#silentProbes < SILENT_PROBES_TO_CLOSE) return;
    this.#asking = true;
    const received = this.#received;
    // The probes' lane closes whatever the kernel says (c628d97): its next probe connects afresh.
    const ask = this.#opts.lane === 'control' ? Promise.resolve(true) : retransmitting(socket);
    void ask.then((resending) => {
      this.#asking = false;
      if (socket !== this.#socket || this.#received !== received || socket.destroyed) return;
      if (resending !== true) return;
      this.#metrics.silent.labels(this.#opts.lane).inc();
      socket.destroy(new Error(`nothing received in the ${timeoutMs} ms ${p.method} waited`));
    });
  }

  #settle(id: number, p: Pending, err: KvError | null, value: unknown): void {
    clearTimeout(p.timer);
    if (p.out !== null && !p.out.gone) this.#drop(p.out);
    this.#pending.delete(id);
    this.#metrics.inFlight.labels('client').dec();
    this.#observe(p.method, p.started, err);
    if (err === null) p.resolve(value);
    else p.reject(err);
  }

  #rejectAll(err: KvError): void {
    for (const [id, p] of this.#pending) this.#settle(id, p, err, undefined);
  }

  #onClose(socket: Socket, connected: boolean, error: Error | undefined): void {
    if (connected) this.#metrics.connections.labels('client').dec();
    if (socket !== this.#socket) return;
    this.#socket = null;
    this.#writer = null;
    this.#holding = false;
    this.#decoder.reset();
    if (this.#stallTimer !== null) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
    const stalled = this.#stalled;
    const refused = this.#refused;
    this.#stalled = false;
    this.#refused = false;
    if (this.#state === 'closed') return;
    const log = this.#opts.logger;
    const lane = this.#opts.lane;
    let err: KvError;
    if (refused) {
      // A wrong or missing secret on either side, or a member that does not answer (stopped,
      // overloaded): trying again at once would fail the same way.
      this.#refusals++;
      this.#warmEnds = true;
      this.#state = 'backoff';
      this.#retryAt = performance.now() + this.#refusedBackoffMs();
      err = new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: ${this.address} refused the handshake`);
    } else if (stalled) {
      // It accepts connections but does not read: a new one would fill up the same way at once.
      this.#state = 'backoff';
      this.#retryAt = performance.now() + this.#opts.maxBackoffMs;
      err = new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: ${this.address} is not reading`, {
        cause: error,
      });
      log.warn(
        { peer: this.address, lane, err: error, pending: this.#pending.size },
        'peer not reading, connection closed',
      );
    } else if (connected) {
      this.#state = 'idle';
      err = new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: connection to ${this.address} lost`, {
        cause: error,
      });
      log.warn(
        { peer: this.address, lane, err: error, pending: this.#pending.size },
        'peer connection lost',
      );
    } else {
      this.#failures++;
      this.#state = 'backoff';
      this.#retryAt = performance.now() + this.#backoffMs();
      this.#warmEnds = true;
      this.#metrics.connects.labels('error').inc();
      err = new KvError('KV_ERR_PEER_UNAVAILABLE', `peer: cannot connect to ${this.address}`, {
        cause: error,
      });
      const fields = { peer: this.address, lane, err: error, failures: this.#failures };
      if (this.#failures === 1) log.warn(fields, 'peer connect failed');
      else log.debug(fields, 'peer connect failed');
    }
    this.#rejectAll(err);
    this.#clearQueue();
  }

  #backoffMs(): number {
    const { initialBackoffMs, maxBackoffMs } = this.#opts;
    const base = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(this.#failures - 1, 30));
    return base / 2 + (Math.random() * base) / 2;
  }

  /** After the #refusals-th refused handshake in a row (see REFUSED_BACKOFF_FACTOR). */
  #refusedBackoffMs(): number {
    const { maxBackoffMs } = this.#opts;
    const factor = Math.min(REFUSED_BACKOFF_FACTOR, 2 ** Math.min(this.#refusals - 1, 30));
    const base = maxBackoffMs * factor;
    return base / 2 + (Math.random() * base) / 2;
  }
}

/** encodeRequestFrame, or the KvError it threw (PeerClient.requestFrame takes either). */
export function encodeFrame(method: string, body: unknown): Buffer | KvError {
  try {
    return encodeRequestFrame(method, body);
  } catch (err) {
    return toKvError(err, 'peer');
  }
}

/** `opts` without keys set to undefined, so spreading it over defaults keeps the defaults. */
function withoutUndefined<T extends object>(opts: T): Partial<T> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<T>;
}
