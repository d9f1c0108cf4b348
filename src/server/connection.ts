// One client connection: pick the framing, dispatch in order, reply in order, apply backpressure.

import type { Socket } from 'node:net';
import type { Coordinator, ValueUse } from '../coordinator/index.ts';
import { KvError, toKvError, wireCode } from '../errors/index.ts';
import {
  atTurnEnd,
  directWrites,
  onReads,
  type Reads,
  type TurnBudget,
  turnPasses,
} from '../net/index.ts';
import type { CounterCell, HistogramCell, Logger, LogThrottle } from '../observability/index.ts';
import {
  type ClientInfo,
  type ClientRegistry,
  type Command,
  type CommandLimits,
  type CommandType,
  encodeRespValueAt,
  errorReply,
  type Ordering,
  orderingOf,
  type Reply,
  type RespLimits,
  type RespSession,
  type RespVersion,
  respErrors,
  type ScanCursors,
  type ServerFacts,
  type SessionOp,
} from '../protocol/index.ts';
import { SCAN_PIECE_RECORDS } from '../replica/index.ts';
import type { Authenticator } from './auth.ts';
import { WriteBudget } from './budget.ts';
import type { ClientBuffers } from './buffers.ts';
import { type ClientOutput, type OutputHolder, sentToKernel } from './client-output.ts';
import {
  type Framing,
  type FramingSink,
  RespFraming,
  TextFraming,
  type UnauthenticatedLimits,
} from './framing.ts';
import type { ServerMetrics } from './metrics.ts';
import { CommandOrder } from './ordering.ts';
import { output, WRITE_NOW_BYTES } from './output.ts';
import type { ReplyBudget, ReplyWaiter } from './reply-budget.ts';
import { REPLY_HIGH_WATER, replyBound, replySize } from './reply-bytes.ts';
import { SessionState } from './session.ts';
import type { ServerStats } from './stats.ts';
import { BUFFER_FULL_MESSAGE, execQueued, type Queued } from './transaction.ts';
import { LARGE_REPLY_BYTES } from './turn-budget.ts';

export interface ConnectionContext {
  readonly coordinator: Coordinator;
  /** Bytes of values the GETs of one EXEC may read (--max-multi-read-bytes). */
  readonly maxMultiReadBytes: number;
  readonly limits: CommandLimits;
  readonly maxLineBytes: number;
  readonly respLimits: RespLimits;
  /** The bounds of one request before the connection authenticated (a password is set). */
  readonly unauthenticatedLimits: UnauthenticatedLimits;
  readonly maxPipeline: number;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  /**
   * Failed commands (storage, internal) are logged at most once a second node-wide, with the
   * count not logged before (a client writing to a full disk fails every write).
   */
  readonly commandFailures: LogThrottle;
  /** HTTP requests refused on the client port are logged at most once a second node-wide. */
  readonly httpRequests: LogThrottle;
  /** A fresh CLIENT ID. */
  readonly nextClientId: () => number;
  /** What INFO and HELLO report about the node. */
  readonly serverFacts: () => ServerFacts;
  /** SCAN cursors, shared by the node's RESP connections. */
  readonly scanCursors: ScanCursors;
  /** Every connection of the node (CLIENT LIST, CLIENT KILL). */
  readonly clients: ClientRegistry;
  /** Node-wide request counts (INFO). */
  readonly stats: ServerStats;
  /** The password check (AUTH); `required` false when no password is configured. */
  readonly auth: Authenticator;
  /** Node-wide bound on bytes of writes in flight. */
  readonly budget: WriteBudget;
  /** Node-wide bound on bytes of unfinished requests (--max-client-buffer-bytes). */
  readonly buffers: ClientBuffers;
  /** Node-wide bound on bytes of replies held (--max-client-output-bytes). */
  readonly clientOutput: ClientOutput;
  /** Node-wide bound on bytes of replies in the making (reply-budget.ts). */
  readonly replies: ReplyBudget;
  /** Node-wide bound on bytes of large replies made and written in one turn (turn-budget.ts). */
  readonly turns: TurnBudget;
  /**
   * The node's scan work per turn (replica's ScanWork), where a scan's reply of many keys counts
   * them as it is encoded; absent: not counted.
   */
  readonly scans?: ScanTurns;
  /** A connection with no command running and no bytes moving this long is closed; 0: never. */
  readonly idleTimeoutMs: number;
}

const STAR = 0x2a;

/** A decoded request not yet run. */
type Pending =
  | { readonly kind: 'command'; readonly cmd: Command; readonly shape?: (r: Reply) => Reply }
  | { readonly kind: 'reply'; readonly reply: Reply; readonly effect?: () => void }
  | { readonly kind: 'fatal'; readonly reply: Reply }
  | { readonly kind: 'session'; readonly op: SessionOp };

const NOAUTH = errorReply(respErrors.noAuth());
const AUTH_TIMEOUT = errorReply(respErrors.authTimeout());
const DISPLACED = errorReply(respErrors.displaced());
/** The answer of a connection whose unfinished request would take ctx.buffers over its limit. */
const BUFFER_FULL = errorReply(new KvError('KV_ERR_LIMIT_EXCEEDED', BUFFER_FULL_MESSAGE));
const HTTP_REQUEST = errorReply(
  new KvError(
    'KV_ERR_PROTOCOL',
    'server: this looks like an HTTP request (POST, Host: or an HTTP/1.x request line), not a kvstore client: nothing of it ran and the connection is closed. See docs/security.md#http-requests-on-the-client-port',
  ),
);

/** A request that may authenticate the connection: AUTH, or HELLO with AUTH. */
function authenticates(item: Pending): boolean {
  if (item.kind === 'command') return item.cmd.type === 'auth';
  return item.kind === 'session' && item.op.op === 'hello' && item.op.password !== null;
}

/**
 * Bytes of replies one connection makes in one event-loop turn (at least one command); then it
 * goes on in the next turn (setImmediate), after the node read every other socket. Without it a
 * client reading 16 pipelined 1 MiB GETs had all of them run in the turn its requests and the
 * socket's drains came in: beside 40 such clients one turn made 368 MiB of replies (3.3 s at
 * load 18), and a 100-byte GET read in the next waited for all of it (p50 2.4 s, one node).
 */
export const TURN_REPLY_BYTES = 1024 * 1024;
/** Bytes queued in the socket beyond which no further command runs until it drains. */
export const WRITE_HIGH_WATER = 1024 * 1024;
/** Once this much output is encoded it is written at once instead of waiting for the batch. */
const LARGE_REPLY = WRITE_NOW_BYTES;
/**
 * After the node's last reply and its FIN, how long it reads (and drops) what the client still
 * sends before closing: closing with unread input resets the connection, and a reset can destroy
 * replies still on their way. A client that closes its side ends this at once.
 */
const LINGER_MS = 250;
/** A connection closed for a new one (displace) is destroyed this long after, told or not. */
const DISPLACED_GRACE_MS = 1000;
/**
 * With a password set, a connection that has not authenticated this long after it opened is
 * closed (`reason="auth_timeout"`): clients send AUTH (or HELLO AUTH) as they connect, and
 * strangers that never authenticate no longer hold --max-connections slots for good (as Redis
 * lets them), told why in one error line (`NOAUTH ...`, respErrors.authTimeout). Like the 10 s of
 * the TLS handshake, not a flag; MySQL's connect_timeout is 10 s too.
 */
export const AUTH_TIMEOUT_MS = 10_000;

/** The node's scan records per event-loop turn, as replies count in them (replica's ScanWork). */
export interface ScanTurns {
  readonly budget: TurnBudget;
  spend(stage: 'reply', n: number): void;
  /** Records counted since the node started (INFO's total_scan_records). */
  readonly records: number;
}

/**
 * The keys (and other elements) a scan's reply holds, when SCAN_PIECE_RECORDS or more: what
 * encoding it costs, counted in the node's scan work; 0 for other replies and small ones.
 */
function scanReplyKeys(slot: Slot): number {
  if (slot.command !== 'range' && slot.command !== 'prefix') return 0;
  const n = elements(slot.reply!);
  return n >= SCAN_PIECE_RECORDS ? n : 0;
}

function elements(reply: Reply): number {
  if (reply.type === 'keys') return reply.keys.length;
  if (reply.type !== 'array') return 1;
  let n = 0;
  for (const item of reply.items ?? []) n += elements(item);
  return n;
}

/** A command's place in the reply order; `reply` is null until the command finished. */
interface Slot {
  reply: Reply | null;
  readonly command: CommandType | null;
  readonly started: number;
  /** Rewrites the command's reply for its framing (RESP shapes); errors pass unchanged. */
  readonly shape: ((r: Reply) => Reply) | undefined;
  /** The RESP version the reply is encoded in: the connection's when the command arrived. */
  readonly proto: RespVersion;
  /**
   * What it counts in the connection's #replyBytes until it is written: its replyBound while it
   * runs, its replySize once it answered.
   */
  held: number;
  /** Its bytes of the write budget (WriteBudget.cost), held while it runs asynchronously. */
  cost: number;
}

/**
 * Serves one socket. The first byte picks the framing for the whole connection: `*` is RESP2,
 * anything else the seed's text protocol; both share everything below. Commands run as soon as
 * they are decoded (pipelining); replies go out in command order, batched into one write per
 * turn, written with every other connection's at the end of the event-loop turn (output.ts). A
 * RESP protocol error is answered after the earlier replies, then the connection ends, as after
 * QUIT. A command runs only while fewer than `maxPipeline` replies are outstanding, their values
 * (made, or the most they can be while they run: reply-bytes.ts) are under REPLY_HIGH_WATER, and
 * less than 1 MiB waits in the socket (and the node-wide write budget is not used up); otherwise
 * decoded requests wait in a backlog (at most one read's worth, and the request that read
 * completed, up to the request limit) and reading pauses, so a client that does not read its
 * replies cannot make the node buffer without bound. What the framing holds of an unfinished
 * request counts in the node-wide ctx.buffers after every read (#hold), and a request parked in
 * the backlog keeps counting there until it runs (#park); a read that would take it over its
 * bound ends the connection like a protocol error.
 */
export class Connection implements OutputHolder, ReplyWaiter {
  /** CLIENT ID: unique on this node while it runs. */
  readonly id: number;
  readonly #created = performance.now();
  #lastActive = performance.now();
  /**
   * While a read is decoded, when it arrived (#lastActive): the start of the requests it
   * completes (one clock read per read, not per request); -1 otherwise.
   */
  #readAt = -1;
  #lastCommand = '';
  readonly #socket: Socket;
  /** The socket's input (net/reads.ts): paused and resumed through it, not the socket. */
  readonly #reads: Reads;
  readonly #ctx: ConnectionContext;
  readonly #sink: FramingSink;
  #framing: Framing | null = null;
  #slots: Slot[] = [];
  #head = 0;
  #flushScheduled = false;
  #quitting = false;
  #draining = false;
  #closed = false;
  #closing = false;
  #peerEnded = false;
  #onClosed: (() => void)[] = [];
  readonly #order = new CommandOrder<Slot>((slot, reply, err, at) =>
    this.#settled(slot, reply, err, at),
  );
  readonly #state: SessionState;
  #backlog: Pending[] = [];
  /** The bytes each backlog item counts in ctx.buffers (its framing's requestBytes), in order. */
  #backlogBytes: number[] = [];
  /** Their sum. */
  #parked = 0;
  #resuming = false;
  /** The RESP connection's state (null for text connections). */
  #session: RespSession | null = null;
  /**
   * Bytes of replies the connection's commands may still make or have made and not written to
   * the socket (each slot's `held`); no command starts while they reach REPLY_HIGH_WATER.
   */
  #replyBytes = 0;
  /** Bytes of replies made and not yet written to the socket (finished slots not flushed). */
  #made = 0;
  /** The request #mustWait last asked about (nextReplyBytes). */
  #next: Pending | Command | null = null;
  /** The command #bound last counted, and its count (cleared by #mustWait and #dispatch). */
  #sized: Command | null = null;
  #sizedBytes = 0;
  /** What this connection last reported to ctx.clientOutput. */
  #reportedOutput = 0;
  /** True until the connection authenticated, when a password is set: see #syncGuard. */
  #guarded: boolean;
  /**
   * The framing's unfinished request as last reported to ctx.buffers (after a read). This
   * connection's bytes there are #held + #parked.
   */
  #held = 0;
  /** Bytes of replies this connection made in this event-loop turn (TURN_REPLY_BYTES). */
  #turnBytes = 0;
  /** The end-of-turn pass (turnPasses) #turnBytes counts in. */
  #turnPass = -1;
  #turnScheduled = false;
  /** The last reply this connection made was large (LARGE_REPLY_BYTES): see #mustWait. */
  #large = false;
  /** Waiting in ctx.turns' line (#turnGo runs in a later turn). */
  #turnWaiting = false;
  /** Closes the connection if it has not authenticated in AUTH_TIMEOUT_MS (a password set). */
  #authTimer: NodeJS.Timeout | null = null;
  /** Waiting in the line of ctx.scans' budget (#scanGo runs in a later turn). */
  #scanWaiting = false;
  /** Called once the connection authenticated and sent a request (see constructor); then null. */
  #onProven: (() => void) | null;

  /**
   * `onProven` is called once the connection has sent a request while authenticated (with no
   * password: its first request; with one: AUTH, or the first request after it): a client, as
   * opposed to a stranger holding a slot (KvServer's slots).
   */
  constructor(socket: Socket, ctx: ConnectionContext, onProven: (() => void) | null = null) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#onProven = onProven;
    this.id = ctx.nextClientId();
    this.#state = new SessionState(
      ctx.auth,
      ctx.metrics,
      ctx.respLimits.maxRequestBytes,
      ctx.buffers,
    );
    this.#guarded = !this.#state.authenticated;
    this.#getCount = ctx.metrics.requests.labels('get');
    this.#getDuration = ctx.metrics.duration.labels('get');
    // Decoded requests go to the backlog while the connection must wait (too many replies
    // outstanding, or the socket's write buffer full), and run in order once it may go on.
    const take = (item: Pending) => {
      if (this.#quitting) return; // nothing after QUIT or a fatal frame counts
      if (item.kind === 'fatal' || (item.kind === 'command' && item.cmd.type === 'quit')) {
        this.#quitting = true;
      }
      if (this.#backlog.length > 0 || this.#mustWait(item)) this.#park(item);
      else {
        if (this.#held !== 0) this.#completed();
        this.#run(item);
      }
      if (this.#guarded && item.kind === 'session') this.#syncGuard();
      if (this.#onProven !== null) this.#prove();
    };
    this.#sink = {
      // take() without the Pending object when the command can run at once (most of them).
      command: (cmd, shape) => {
        if (this.#quitting) return;
        if (cmd.type === 'quit') this.#quitting = true;
        if (this.#backlog.length > 0 || this.#mustWait(cmd))
          this.#park({ kind: 'command', cmd, shape });
        else {
          if (this.#held !== 0) this.#completed();
          this.#runCommand(cmd, shape, null);
        }
        if (this.#guarded && cmd.type === 'auth') this.#syncGuard();
        if (this.#onProven !== null) this.#prove();
      },
      // A GET that can run at once tries #getNow (in #dispatch) exactly once.
      get: (key) => this.#sink.command({ type: 'get', key }),
      reply: (reply, effect) => take({ kind: 'reply', reply, effect }),
      fatal: (reply) => take({ kind: 'fatal', reply }),
      http: () => {
        if (this.#quitting) return;
        this.#refuseHttp();
        take({ kind: 'fatal', reply: HTTP_REQUEST });
      },
      session: (op) => take({ kind: 'session', op }),
    };
    socket.setNoDelay(true);
    directWrites(socket);
    this.#reads = onReads(
      socket,
      (chunk) => this.#onData(chunk),
      () => this.#onEnd(),
    );
    socket.on('drain', () => {
      this.#reportOutput();
      this.#maybeResume();
    });
    socket.on('error', (err) => ctx.logger.debug({ err }, 'client socket error'));
    socket.on('close', () => this.#onClose());
    ctx.clientOutput.add(this);
    if (ctx.idleTimeoutMs > 0) {
      socket.setTimeout(ctx.idleTimeoutMs);
      socket.on('timeout', () => this.#onIdleTimeout());
    }
    if (this.#guarded) this.#authTimer = setTimeout(() => this.#onAuthTimeout(), AUTH_TIMEOUT_MS);
  }

  /**
   * AUTH_TIMEOUT_MS passed without authentication: closes the connection once the replies to what
   * it sent went out, unless an AUTH waits in its backlog (then it waits as long again).
   */
  #onAuthTimeout(): void {
    this.#authTimer = null;
    if (this.#state.authenticated || this.#closed || this.#closing) return;
    if (this.#backlog.some(authenticates)) {
      this.#authTimer = setTimeout(() => this.#onAuthTimeout(), AUTH_TIMEOUT_MS);
      return;
    }
    this.#ctx.metrics.rejectedConnections.labels('auth_timeout').inc();
    // Says why, after the replies to what it sent (someone typing into nc sees it; a client
    // library reports it instead of a bare reset).
    this.#framing ??= this.#pickFraming(0); // it said nothing: the text protocol's line
    this.#pushReply(AUTH_TIMEOUT);
    this.#quitting = true;
    this.#scheduleFlush(); // the flush closes once every reply before it is out (#checkIdle)
  }

  /** Counts an HTTP request on the client port; warns at most once a second node-wide. */
  #refuseHttp(): void {
    this.#ctx.metrics.rejectedConnections.labels('http_request').inc();
    const since = this.#ctx.httpRequests.take();
    if (since < 0) return;
    this.#ctx.logger.warn(
      { remote: this.#socket.remoteAddress, since },
      'HTTP request on the client port: nothing of it ran, connection closed (a browser sent a cross-site request, or a request was forged)',
    );
  }

  get #pending(): number {
    return this.#slots.length - this.#head;
  }

  /**
   * Takes no further commands (later input is read and dropped), lets the ones already decoded
   * finish and their replies go out, then closes. Resolves once the socket is closed; a client
   * that does not read its replies keeps it open until destroy().
   */
  drain(): Promise<void> {
    this.#draining = true;
    return new Promise((resolve) => {
      if (this.#closed) return resolve();
      this.#onClosed.push(resolve);
      this.#checkIdle();
    });
  }

  /** Closes at once, dropping unsent replies (writes already started still become durable). */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Replies made and not written, and what waits in the socket's buffer (client-output.ts). */
  outputBytes(): number {
    return this.#made + this.#socket.writableLength;
  }

  /** Bytes the kernel took from the socket (client-output.ts tells a client that reads by it). */
  sentBytes(): number {
    return sentToKernel(this.#socket);
  }

  get remote(): string | undefined {
    return this.#socket.remoteAddress;
  }

  /** Closed by the node-wide reply bound: its replies are dropped (the client was not reading). */
  evict(): void {
    this.#socket.destroy();
  }

  /** Tells ctx.clientOutput what the connection holds, when that changed. */
  #reportOutput(): void {
    const bytes = this.outputBytes();
    if (bytes === this.#reportedOutput) return;
    this.#reportedOutput = bytes;
    this.#ctx.clientOutput.report(this, bytes);
  }

  /** What CLIENT LIST shows about this connection. */
  info(): ClientInfo {
    const now = performance.now();
    const s = this.#session;
    const addr = (host: string | undefined, port: number | undefined) =>
      host?.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return {
      id: this.id,
      addr: addr(this.#socket.remoteAddress, this.#socket.remotePort),
      laddr: addr(this.#socket.localAddress, this.#socket.localPort),
      name: s?.name ?? null,
      ageSeconds: Math.floor((now - this.#created) / 1000),
      idleSeconds: Math.floor((now - this.#lastActive) / 1000),
      multi: this.#state.queued,
      lastCommand: s?.lastCommand ?? this.#lastCommand,
      proto: s?.proto ?? 0,
      libName: s?.libName ?? null,
      libVer: s?.libVer ?? null,
    };
  }

  /**
   * CLIENT KILL: takes no further commands, answers those already read (the KILL's own reply
   * too, when a client kills itself), then closes.
   */
  kill(): void {
    setImmediate(() => void this.drain());
  }

  #onData(chunk: Buffer): void {
    this.#lastActive = performance.now();
    if (this.#quitting || this.#draining) return;
    if (this.#framing === null) {
      this.#framing = this.#pickFraming(chunk[0]!);
      if (this.#guarded) this.#framing.guard(true);
    }
    this.#readAt = this.#lastActive;
    this.#framing.decode(chunk, this.#sink);
    this.#readAt = -1;
    // One comparison per read on the common path (requests whole in their read: nothing held).
    const held = this.#framing.bufferedBytes;
    if (held !== this.#held) this.#hold(held);
    this.#flush();
    if (this.#backlog.length > 0 || this.#mustWait(null)) this.#reads.pause();
  }

  /**
   * Reports the framing's unfinished request, `held` bytes, to the node-wide count. When that
   * would take it over --max-client-buffer-bytes, the connection ends as after a RESP protocol
   * error: the request is dropped (nothing of it applied, its bytes out of the count now), the
   * requests before it are answered, then `ERR LIMIT_EXCEEDED`, then the connection closes.
   * Nothing read after QUIT or a fatal error counts: it is dropped too.
   */
  #hold(held: number): void {
    if (this.#quitting) {
      this.#release();
      return;
    }
    const buffers = this.#ctx.buffers;
    if (buffers.move(this.#held + this.#parked, held + this.#parked)) {
      this.#held = held;
      return;
    }
    this.#release();
    buffers.refused(this.#socket.remoteAddress);
    this.#sink.fatal(BUFFER_FULL);
  }

  /**
   * A request the framing just completed runs at once: what it counted unfinished (#held, as
   * reported after the last read; the framing holds nothing now) leaves the node-wide count
   * before it runs, so a command queued in MULTI, whose bytes then count as the transaction's,
   * is not counted twice.
   */
  #completed(): void {
    this.#ctx.buffers.move(this.#held + this.#parked, this.#parked);
    this.#held = 0;
  }

  /** Drops the framing's unfinished request and its bytes from the node-wide count. */
  #release(): void {
    this.#framing?.reset();
    this.#ctx.buffers.move(this.#held + this.#parked, this.#parked);
    this.#held = 0;
  }

  /**
   * Puts a decoded request in the backlog, where it counts in ctx.buffers what it counted while
   * unfinished (the framing's requestBytes; 0 for a fatal reply) until it runs or the connection
   * closes: the node-wide bound covers the requests parked as well as the unfinished ones. Called
   * while the framing decodes (or for this connection's own fatal reply), when the framing holds
   * nothing: the request completed, so its unfinished part (#held, reported after the last read)
   * becomes the parked request. When that growth (the request's bytes read since) would take the
   * count over the limit, the request is dropped like an unfinished one in #hold: the requests
   * before it, parked ones included, are answered, then ERR LIMIT_EXCEEDED, then the connection
   * closes.
   */
  #park(item: Pending): void {
    const bytes = item.kind === 'fatal' ? 0 : this.#framing!.requestBytes;
    const buffers = this.#ctx.buffers;
    const before = this.#held + this.#parked;
    this.#held = 0;
    if (!buffers.move(before, this.#parked + bytes)) {
      buffers.move(before, this.#parked);
      buffers.refused(this.#socket.remoteAddress);
      this.#quitting = true; // what follows in this read is dropped (#hold releases the framing)
      this.#backlog.push({ kind: 'fatal', reply: BUFFER_FULL });
      this.#backlogBytes.push(0);
      return;
    }
    this.#parked += bytes;
    this.#backlog.push(item);
    this.#backlogBytes.push(bytes);
  }

  /** Takes the first `n` items out of the backlog (they ran, or are dropped) and out of the count. */
  #unpark(n: number): void {
    if (n === 0) return;
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += this.#backlogBytes[i]!;
    if (n === this.#backlog.length) {
      this.#backlog = [];
      this.#backlogBytes = [];
    } else {
      this.#backlog = this.#backlog.slice(n);
      this.#backlogBytes = this.#backlogBytes.slice(n);
    }
    if (bytes === 0) return;
    this.#ctx.buffers.move(this.#held + this.#parked, this.#held + this.#parked - bytes);
    this.#parked -= bytes;
  }

  /**
   * Before authentication the framing holds at most the small unauthenticated bounds of a
   * request (a stranger cannot make the node hold a 64 MiB request per connection), except while
   * an AUTH (or HELLO with AUTH) waits in the backlog: the requests read behind it may be the
   * large ones of a client that pipelined them after its password. An AUTH that is not in the
   * backlog has run by the time the next request is decoded. Once authenticated, for good.
   */
  #syncGuard(): void {
    if (this.#state.authenticated) {
      this.#guarded = false;
      this.#framing?.guard(false);
      if (this.#authTimer !== null) clearTimeout(this.#authTimer);
      this.#authTimer = null;
      return;
    }
    this.#framing?.guard(!this.#backlog.some(authenticates));
  }

  /**
   * True while `next` (the request to run; null: none yet, after a read) may not run: too many
   * replies outstanding, or their values (made or to come), or output piling up.
   */
  #mustWait(next: Pending | Command | null): boolean {
    this.#next = next;
    this.#sized = null;
    const wait =
      this.#pending >= this.#ctx.maxPipeline ||
      this.#replyBytes >= REPLY_HIGH_WATER ||
      this.#turnBytes >= TURN_REPLY_BYTES ||
      this.#waitTurn(next) ||
      this.#socket.writableLength >= WRITE_HIGH_WATER ||
      this.#ctx.budget.exhausted(this.#wake) ||
      this.#ctx.replies.exhausted(this);
    // A request that runs is not kept (a SET's value); one that waits is parked anyway.
    if (!wait) this.#next = null;
    return wait;
  }

  /**
   * True (and in ctx.turns' line) when the node's large replies of this turn are spent or others
   * wait for a later turn, and `next` is likely to make a large reply: a GET of a large value
   * this node holds (its size looked up only then), or any command after a large reply (the
   * next is likely large too); a client reading small values never waits here. Asked with
   * `next` undefined before a large reply is written.
   */
  #waitTurn(next?: Pending | Command | null): boolean {
    if (!this.#ctx.turns.exhausted()) return false;
    if (next !== undefined && !this.#large && !this.#largeGet(next)) return false;
    if (!this.#turnWaiting) {
      this.#turnWaiting = true;
      this.#ctx.turns.wait(this.#turnGo);
    }
    return true;
  }

  /** Whether `next` is a GET (not queued in MULTI) of a value of LARGE_REPLY_BYTES here. */
  #largeGet(next: Pending | Command | null): boolean {
    const cmd = next === null || 'type' in next ? next : next.kind === 'command' ? next.cmd : null;
    if (cmd?.type !== 'get' || this.#state.inMulti) return false;
    const here = this.#ctx.coordinator.sizeHere(cmd.key);
    // #bound's count, kept for #dispatch (one lookup a GET).
    if (here >= 0) {
      this.#sized = cmd;
      this.#sizedBytes = here;
    }
    return here >= LARGE_REPLY_BYTES;
  }

  /**
   * Its turn in ctx.turns' line: writes what waited, then runs what the backlog holds. Closed
   * meanwhile (the output bound closes clients that hold the most), it still flushes: its
   * replies are dropped there and only there give back what they count in the reply budget.
   */
  readonly #turnGo = () => {
    this.#turnWaiting = false;
    this.#flush();
  };

  /**
   * True (and in the line of ctx.scans' budget) when the node's scan records of this turn are
   * spent or others wait: a scan reply of many keys is encoded in a later turn.
   */
  #waitScanTurn(): boolean {
    const budget = this.#ctx.scans?.budget;
    if (budget === undefined || !budget.exhausted()) return false;
    if (!this.#scanWaiting) {
      this.#scanWaiting = true;
      budget.wait(this.#scanGo);
    }
    return true;
  }

  readonly #scanGo = () => {
    this.#scanWaiting = false;
    this.#flush();
  };

  /** The node-wide reply budget has room for this connection again (reply-budget.ts). */
  wake(): void {
    this.#maybeResume();
  }

  /**
   * What the request #mustWait last asked about will count in the reply budget when it runs (as
   * #dispatch, #exec and #finish count it); asked only while the budget is at its limit. A
   * request not read yet counts nothing: it is asked about again when it is.
   */
  nextReplyBytes(): number {
    const next = this.#next;
    if (next === null) return 0;
    // Inside MULTI a command is queued: it counts nothing until EXEC.
    if ('type' in next) return this.#state.inMulti ? 0 : this.#bound(next);
    switch (next.kind) {
      case 'command':
        return this.#state.inMulti ? 0 : this.#bound(next.cmd);
      case 'reply':
      case 'fatal':
        return replySize(next.reply);
      case 'session':
        return next.op.op === 'exec' ? this.#ctx.maxMultiReadBytes : 0;
    }
  }

  /**
   * What `cmd` counts while it runs: #dispatch's count. Kept from the #mustWait that asked about
   * it to its #dispatch (in the same turn): a GET's copy is looked up once.
   */
  #bound(cmd: Command): number {
    if (this.#sized === cmd) return this.#sizedBytes;
    const here = cmd.type === 'get' ? this.#ctx.coordinator.sizeHere(cmd.key) : -1;
    const bytes = here >= 0 ? here : replyBound(cmd, this.#ctx.limits, this.#ctx.maxMultiReadBytes);
    this.#sized = cmd;
    this.#sizedBytes = bytes;
    return bytes;
  }

  /**
   * Its replies the kernel has not taken: what it counts in the node-wide reply budget
   * (#replyBytes) and what waits in its socket (a client that stopped reading is not light).
   */
  replyBytes(): number {
    return this.#replyBytes + this.#socket.writableLength;
  }

  readonly #wake = () => this.#maybeResume();

  #run(item: Pending): void {
    if (item.kind === 'command') {
      this.#runCommand(item.cmd, item.shape, item);
      return;
    }
    if (item.kind === 'session') {
      // CLIENT LIST/KILL run here, in their turn: what they throw (ERR No such client, or a bug)
      // becomes this command's error reply, never an exception that would end the process.
      let outcome: ReturnType<SessionState['handle']>;
      try {
        outcome = this.#state.handle(item.op, this.#session, this.#ctx.serverFacts);
      } catch (err) {
        outcome = { reply: this.#failure(err) };
      }
      if ('exec' in outcome) this.#exec(outcome.exec);
      else this.#pushReply(outcome.reply);
    } else if (this.#state.inMulti && item.kind !== 'fatal') {
      this.#pushReply(this.#state.queue(item));
    } else if (item.kind === 'fatal' || item.reply.type === 'error' || this.#state.authenticated) {
      if (item.kind === 'reply') item.effect?.();
      this.#pushReply(item.reply);
    } else this.#pushReply(NOAUTH); // a connection-local answer (ECHO, CLIENT, ...) before AUTH
    this.#flushLarge();
  }

  /** A command: queued inside MULTI (QUIT excepted), else dispatched. `item`: its Pending, if made. */
  #runCommand(
    cmd: Command,
    shape: ((r: Reply) => Reply) | undefined,
    item: Extract<Pending, { kind: 'command' }> | null,
  ): void {
    if (this.#state.inMulti && cmd.type !== 'quit') {
      this.#pushReply(this.#state.queue(item ?? { kind: 'command', cmd, shape }));
    } else this.#dispatch(cmd, shape);
    this.#flushLarge();
  }

  /**
   * A large synchronous reply (a big GET) goes out now, so the write buffer, not the reply
   * queue or the output, holds it and #mustWait sees it.
   */
  #flushLarge(): void {
    const last = this.#slots[this.#slots.length - 1];
    if (
      output.length >= LARGE_REPLY ||
      (last?.reply?.type === 'value' && last.reply.value.length >= LARGE_REPLY)
    )
      this.#flush();
  }

  /**
   * Runs backlog items, in order, until the connection must wait again. Each leaves the
   * node-wide count as it starts (a command queued in MULTI then counts as the transaction's).
   */
  #runBacklog(): void {
    let i = 0;
    while (i < this.#backlog.length && !this.#mustWait(this.#backlog[i]!)) {
      const bytes = this.#backlogBytes[i]!;
      if (bytes !== 0) {
        this.#backlogBytes[i] = 0;
        this.#ctx.buffers.move(this.#held + this.#parked, this.#held + this.#parked - bytes);
        this.#parked -= bytes;
      }
      this.#run(this.#backlog[i++]!);
    }
    this.#unpark(i);
  }

  #pickFraming(first: number): Framing {
    const ctx = this.#ctx;
    if (first !== STAR) {
      return new TextFraming(ctx.limits, ctx.maxLineBytes, ctx.unauthenticatedLimits);
    }
    const session: RespSession = {
      id: this.id,
      name: null,
      libName: null,
      libVer: null,
      proto: 2,
      lastCommand: '',
    };
    this.#session = session;
    const respCtx = {
      limits: ctx.limits,
      session,
      server: ctx.serverFacts,
      cursors: ctx.scanCursors,
      clients: ctx.clients,
    };
    return new RespFraming(respCtx, ctx.respLimits, ctx.unauthenticatedLimits);
  }

  #dispatch(cmd: Command, shape?: (r: Reply) => Reply): void {
    if (cmd.type === 'get' && shape === undefined && this.#getNow(cmd.key)) return;
    const slot = this.#slot(cmd.type, shape);
    // A GET counts the value this node holds (the owners agree, as a rule), not the largest. One
    // answered in this call (it runs at once and this node is the key's only replica: a GET in
    // a pipeline behind another reply, or on the text protocol) counts its reply when #start
    // has it, with no lookup of its own before the read (two LMDB lookups a GET, else).
    this.#holdReply(slot, this.#answeredNow(cmd) ? 0 : this.#bound(cmd));
    this.#sized = null;
    this.#ctx.metrics.requests.labels(cmd.type).inc();
    const denied = this.#state.admit(cmd);
    if (denied !== null) {
      this.#finish(slot, denied);
      return;
    }
    this.#start(slot, orderingOf(cmd), WriteBudget.cost(cmd), this.#execute, cmd);
  }

  /** The coordinator's execute, made once (#start runs it with the command: no closure each). */
  readonly #execute = (cmd: Command): Reply | Promise<Reply> => this.#ctx.coordinator.execute(cmd);

  /** A GET that #start will answer synchronously, unless #mustWait has counted it already. */
  #answeredNow(cmd: Command): boolean {
    return (
      cmd.type === 'get' &&
      this.#sized !== cmd &&
      this.#order.idle &&
      this.#ctx.coordinator.answersNow(cmd.key)
    );
  }

  /**
   * GET (not TYPE, STRLEN, ...: no shape) on a RESP connection with nothing ahead of it, for a
   * key this node alone holds: the reply is encoded from the stored bytes straight into the
   * output (no Reply, no copy of the value, no slot). False when it must go the general way
   * (then nothing was done); an error (a bad record) goes that way too, which answers it.
   */
  #getNow(key: Buffer): boolean {
    if (
      this.#head !== this.#slots.length ||
      this.#session === null ||
      !this.#state.authenticated ||
      this.#state.inMulti ||
      !this.#order.idle
    )
      return false;
    const started = this.#readAt >= 0 ? this.#readAt : performance.now();
    try {
      if (!this.#ctx.coordinator.getNow(key, this.#encodeValue)) return false;
    } catch {
      return false;
    }
    this.#ctx.stats.commands++;
    this.#lastCommand = 'get';
    this.#getCount.inc();
    this.#getDuration.observe((performance.now() - started) / 1000);
    return true;
  }

  readonly #getCount: CounterCell;
  readonly #getDuration: HistogramCell;
  readonly #encodeValue: ValueUse = (raw, start) => {
    if (raw !== undefined && start >= 0) {
      const bytes = raw.length - start;
      this.#countTurn(bytes);
      this.#large = bytes >= LARGE_REPLY_BYTES;
      if (this.#large) this.#ctx.turns.spend(bytes);
    }
    encodeRespValueAt(output, raw, start, this.#session!.proto);
  };

  /** Counts `bytes` of replies made in this turn; the count starts again in the next one. */
  #countTurn(bytes: number): void {
    const pass = turnPasses();
    if (pass !== this.#turnPass) {
      // A new turn: the bytes of earlier ones do not count (unless a wait for the next is on).
      this.#turnPass = pass;
      if (!this.#turnScheduled) this.#turnBytes = 0;
    }
    this.#turnBytes += bytes;
    if (this.#turnScheduled || this.#turnBytes < TURN_REPLY_BYTES) return;
    this.#turnScheduled = true;
    setImmediate(this.#nextTurn);
  }

  readonly #nextTurn = () => {
    this.#turnScheduled = false;
    this.#turnBytes = 0;
    this.#maybeResume();
  };

  #slot(command: CommandType | null, shape?: (r: Reply) => Reply): Slot {
    const proto = this.#session?.proto ?? 2;
    this.#ctx.stats.commands++;
    if (command !== null) this.#lastCommand = command;
    const started = this.#readAt >= 0 ? this.#readAt : performance.now();
    const slot: Slot = { reply: null, command, started, shape, proto, held: 0, cost: 0 };
    this.#slots.push(slot);
    return slot;
  }

  /**
   * Runs `run(arg)` in its place in the connection's order (CommandOrder) and fills `slot`.
   */
  #start<A>(
    slot: Slot,
    kind: Ordering,
    cost: number,
    run: (arg: A) => Reply | Promise<Reply>,
    arg: A,
  ): void {
    let result: Reply | null;
    try {
      result = this.#order.run(kind, run, arg, slot);
    } catch (err) {
      this.#finish(slot, this.#failure(err));
      return;
    }
    // An asynchronous outcome (null) holds its bytes of the budget until it is in (#settled). A
    // large one made its copy of the value here (a GET's own replica's record): the turn's.
    if (result === null) {
      if (cost > 0) {
        slot.cost = cost;
        this.#ctx.budget.take(cost);
      }
      if (slot.held >= LARGE_REPLY_BYTES) this.#ctx.turns.spend(slot.held);
    } else this.#finish(slot, result);
  }

  /**
   * The asynchronous outcome of `slot`'s command (CommandOrder's one reaction per promise): gives
   * back its budget, fills the slot, flushes soon.
   */
  #settled(slot: Slot, reply: Reply | null, err: unknown, at: number): void {
    if (slot.cost > 0) this.#ctx.budget.give(slot.cost);
    this.#finish(slot, reply ?? this.#failure(err), at);
    this.#scheduleFlush();
  }

  /** EXEC: the queued commands, in order, after everything before them; one array reply. */
  #exec(items: readonly Queued[]): void {
    const slot = this.#slot(null);
    const { limits, maxMultiReadBytes } = this.#ctx;
    const metrics = this.#ctx.metrics;
    const coordinator = this.#ctx.coordinator;
    let cost = 0;
    let bound = 0;
    for (const item of items) {
      if (item.kind !== 'command') continue;
      cost += WriteBudget.cost(item.cmd);
      bound += replyBound(item.cmd, limits, maxMultiReadBytes);
    }
    // The GETs of one EXEC read at most --max-multi-read-bytes (execQueued).
    this.#holdReply(slot, Math.min(bound, maxMultiReadBytes));
    const run = (cmd: Command) => {
      metrics.requests.labels(cmd.type).inc();
      return coordinator.execute(cmd);
    };
    this.#start(
      slot,
      'exclusive',
      cost,
      () => execQueued(items, run, (err) => this.#failure(err), maxMultiReadBytes),
      null,
    );
  }

  #failure(err: unknown): Reply {
    const e = toKvError(err, 'server');
    const told = this.#ctx.coordinator.explain?.(e) ?? e;
    if (e.code === 'KV_ERR_INTERNAL' || e.code === 'KV_ERR_STORAGE') {
      const since = this.#ctx.commandFailures.take();
      if (since >= 0) this.#ctx.logger.error({ err: e, code: e.code, since }, 'command failed');
    }
    return errorReply(told);
  }

  /** `at`: when it settled (performance.now()), when the caller read it already. */
  #finish(slot: Slot, result: Reply, at?: number): void {
    let reply = result;
    if (slot.shape !== undefined && reply.type !== 'error') {
      try {
        reply = slot.shape(reply);
      } catch (err) {
        reply = this.#failure(err);
      }
    }
    slot.reply = reply;
    this.#holdReply(slot, replySize(reply));
    this.#countTurn(slot.held);
    this.#large = slot.held >= LARGE_REPLY_BYTES;
    this.#made += slot.held;
    if (slot.command !== null) {
      this.#ctx.metrics.duration
        .labels(slot.command)
        .observe(((at ?? performance.now()) - slot.started) / 1000);
    }
    if (reply.type === 'error') this.#ctx.metrics.errors.labels(wireCode(reply.code)).inc();
  }

  /** Makes `slot` count `bytes` in #replyBytes (instead of what it counted). */
  #holdReply(slot: Slot, bytes: number): void {
    const delta = bytes - slot.held;
    if (delta === 0) return;
    this.#replyBytes += delta;
    this.#ctx.replies.move(this, delta);
    slot.held = bytes;
  }

  /** A reply that needed no command (an error, or a connection-local answer), in its place. */
  #pushReply(reply: Reply): void {
    this.#finish(this.#slot(null), reply);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    atTurnEnd(this.#flushLater);
  }

  readonly #flushLater = () => {
    this.#flushScheduled = false;
    this.#flush();
  };

  /**
   * Sends what the output holds (answers made without a slot) and every finished reply at the
   * head of the queue, in order: one write at the end of the turn (output.send), or one per
   * LARGE_REPLY bytes at once.
   */
  #flush(): void {
    while (this.#head < this.#slots.length) {
      const slot = this.#slots[this.#head]!;
      if (slot.reply === null) break;
      const large = slot.held >= LARGE_REPLY_BYTES && !this.#closed;
      const keys = this.#closed ? 0 : scanReplyKeys(slot);
      // A large reply waits while the node's large replies of this turn are spent, a scan's
      // many keys while its scan records are.
      if (large && this.#waitTurn(undefined)) break;
      if (keys > 0 && this.#waitScanTurn()) break;
      if (large) this.#ctx.turns.spend(slot.held);
      if (keys > 0) this.#ctx.scans?.spend('reply', keys);
      // Its keys and values, and an eighth more for the framing around them.
      if (slot.held >= LARGE_REPLY) output.reserve(slot.held + (slot.held >> 3) + 4096);
      this.#framing!.encode(slot.reply, output, slot.proto);
      this.#replyBytes -= slot.held;
      if (slot.held !== 0) this.#ctx.replies.move(this, -slot.held);
      this.#made -= slot.held;
      this.#head++;
      // A long batch goes out in pieces: the socket holds them, no one buffer grows to it all.
      if (output.length >= LARGE_REPLY && !this.#closed) output.send(this.#socket);
    }
    if (this.#head === this.#slots.length) {
      // Empty already (a GET answered by #getNow makes no slot): no new array per read.
      if (this.#head !== 0) {
        this.#slots = [];
        this.#head = 0;
      }
    } else if (this.#head > 1024) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    if (this.#closed) output.discard();
    else {
      output.send(this.#socket);
      this.#reportOutput();
    }
    this.#maybeResume();
    this.#checkIdle();
  }

  #maybeResume(): void {
    if (this.#closed || this.#resuming) return;
    this.#resuming = true;
    try {
      // Synchronous replies free their slots only when flushed: run, flush, and go on while
      // that made room.
      while (this.#backlog.length > 0 && !this.#mustWait(this.#backlog[0]!)) {
        this.#runBacklog();
        this.#flush();
      }
    } finally {
      this.#resuming = false;
    }
    if (this.#guarded) {
      this.#syncGuard(); // an AUTH that waited in the backlog may have run
      if (this.#onProven !== null) this.#prove();
    }
    if (this.#draining || this.#quitting || this.#backlog.length > 0) return;
    if (this.#pending < this.#ctx.maxPipeline / 2 + 1 && !this.#socket.writableNeedDrain) {
      this.#reads.resume();
    }
  }

  #onEnd(): void {
    // The client half-closed: answer what it sent, then close our side.
    this.#peerEnded = true;
    this.#release();
    this.#quitting = true;
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#pending > 0 || this.#backlog.length > 0) return;
    if (this.#quitting || this.#draining) this.#close();
  }

  /**
   * Sends what is queued and a FIN, then closes: at once when the client has closed its side,
   * otherwise after LINGER_MS of reading and dropping its input.
   */
  #close(): void {
    if (this.#closing || this.#closed) return;
    this.#closing = true;
    const socket = this.#socket;
    this.#reads.resume(); // read and drop: unread input would turn the close into a reset
    output.writeAll(); // the replies sent and not written yet go before the FIN
    socket.end(() => {
      if (this.#peerEnded) return socket.destroy();
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      socket.once('end', () => socket.destroy());
      socket.once('close', () => clearTimeout(linger));
    });
  }

  /** Tells the server the connection proved itself, once it is authenticated. */
  #prove(): void {
    if (!this.#state.authenticated) return;
    const proven = this.#onProven!;
    this.#onProven = null;
    proven();
  }

  /**
   * Closed at --max-connections for a new connection, not having proven itself: says why after
   * the replies to what it sent (a NOAUTH or two), as the auth timeout does.
   */
  displace(): void {
    if (this.#closed || this.#closing || this.#quitting) {
      this.#socket.destroy();
      return;
    }
    this.#framing ??= this.#pickFraming(0); // it said nothing: the text protocol's line
    this.#pushReply(DISPLACED);
    this.#quitting = true;
    this.#scheduleFlush();
    // A client that does not read what it is told must not keep the socket past its slot.
    const backstop = setTimeout(() => this.#socket.destroy(), DISPLACED_GRACE_MS);
    this.#socket.once('close', () => clearTimeout(backstop));
  }

  /** No bytes moved for --client-idle-timeout-ms: close unless a command is still running. */
  #onIdleTimeout(): void {
    for (let i = this.#head; i < this.#slots.length; i++)
      if (this.#slots[i]!.reply === null) return;
    this.#ctx.metrics.idleClosed.inc();
    // Replies waiting in the buffer mean the client stopped reading: nothing to finish.
    if (this.#socket.writableLength > 0) this.#socket.destroy();
    else {
      this.#quitting = true;
      this.#close();
    }
  }

  #onClose(): void {
    this.#closed = true;
    if (this.#authTimer !== null) clearTimeout(this.#authTimer);
    this.#ctx.clientOutput.remove(this);
    this.#ctx.replies.leave(this);
    this.#release();
    this.#state.close(); // an open MULTI's queue leaves the count
    this.#unpark(this.#backlog.length); // never run now: dropped
    for (const done of this.#onClosed.splice(0)) done();
  }
}
