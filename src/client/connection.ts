// One pipelined TCP connection: requests written in batches, replies matched to them in order.

import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { LineDecoder, type LineFrame } from '../protocol/index.ts';
import { KvClientError } from './errors.ts';
import { errorFromLine, isErrorLine, type ReplyReader } from './replies.ts';

export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** Per-request (and connect) timeout in ms; 0 disables it. */
  readonly timeoutMs: number;
  /** Longest reply line accepted; longer ones are discarded and fail with REPLY_TOO_LONG. */
  readonly maxReplyBytes: number;
  /** Speak TLS with these settings; null: plain TCP. */
  readonly tls: ClientTls | null;
}

/** TLS to a node's client port (one started with --tls-cert-file). */
export interface ClientTls {
  /** CA certificates (PEM) the node's certificate must chain to; absent: the system's CAs. */
  readonly ca?: Buffer;
  /** False skips verifying the node's certificate (testing only). Default true. */
  readonly rejectUnauthorized?: boolean;
  /** Name the certificate must carry; default the host (an IP host is checked as an IP). */
  readonly servername?: string;
}

const EMPTY = Buffer.alloc(0);

/** A request waiting for its reply. Kept in the queue after a timeout to absorb the late reply. */
class Pending {
  readonly reader: ReplyReader<unknown>;
  readonly deadline: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  /** The first line of a two-line reply, once it came. */
  first: Buffer | null = null;
  /** A reply line was over maxReplyBytes. */
  tooLong = false;
  /** Already rejected (timed out): its reply is read and dropped. */
  settled = false;

  constructor(
    reader: ReplyReader<unknown>,
    deadline: number,
    resolve: (value: unknown) => void,
    reject: (err: Error) => void,
  ) {
    this.reader = reader;
    this.deadline = deadline;
    this.resolve = resolve;
    this.reject = reject;
  }
}

/**
 * A connection to one node. Every `send` appends its line to a buffer written once per tick
 * (so a burst of calls is one socket write) and queues a Pending; replies settle the queue head
 * first, since the node answers in order. One timer serves all timeouts: deadlines grow along
 * the queue, so it only ever waits for the oldest request not yet checked. When the socket
 * closes every pending request rejects with CONNECTION_CLOSED; a closed Connection stays closed.
 */
export class Connection {
  readonly #opts: ConnectionOptions;
  readonly #socket: Socket;
  readonly #decoder: LineDecoder;
  readonly #onFrame = (frame: LineFrame) => this.#frame(frame);
  // Deadlines are judged after the next I/O poll: a process starved of CPU runs expired timers
  // before it reads its socket, where replies that came in time may wait.
  readonly #onTimer = () => void setImmediate(() => this.#expire());
  readonly #onFlush = () => this.#flush();
  /** Resolves once connected; rejects with CONNECTION_CLOSED or TIMEOUT if that fails. */
  readonly ready: Promise<void>;
  readonly #closedPromise: Promise<void>;
  #queue: Pending[] = [];
  #head = 0;
  /** Queue entries before this index were already checked against their deadline. */
  #checked = 0;
  #out = '';
  #flushQueued = false;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #connected = false;
  /** end() was called, or QUIT sent: no new requests. */
  #ending = false;
  #endCalled = false;
  /** Why the connection closed: a socket error, or an unsolicited ERR line from the node. */
  #cause: Error | null = null;

  constructor(opts: ConnectionOptions) {
    this.#opts = opts;
    this.#decoder = new LineDecoder(opts.maxReplyBytes);
    const { host, port, tls } = opts;
    const socket = tls
      ? tlsConnect({
          host,
          port,
          ...(tls.ca ? { ca: tls.ca } : {}),
          rejectUnauthorized: tls.rejectUnauthorized ?? true,
          ...(tls.servername || !isIP(host) ? { servername: tls.servername ?? host } : {}),
        })
      : connect({ host, port });
    this.#socket = socket;
    socket.setNoDelay(true);
    const ready = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.ready.catch(() => {}); // observed by KvClient.connect; a reconnect reports per request
    this.#closedPromise = closed.promise;
    const connectTimer =
      opts.timeoutMs > 0
        ? setTimeout(() => {
            this.destroy(new KvClientError('TIMEOUT', `client: connect timed out (${this.name})`));
          }, opts.timeoutMs)
        : null;
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      if (connectTimer !== null) clearTimeout(connectTimer);
      this.#connected = true;
      ready.resolve();
    });
    socket.on('data', (chunk: Buffer) => this.#decoder.push(chunk, this.#onFrame));
    socket.on('error', (err) => {
      this.#cause ??= err;
    });
    socket.on('close', () => {
      if (connectTimer !== null) clearTimeout(connectTimer);
      this.#onClose();
      ready.reject(this.#closedError());
      closed.resolve();
    });
  }

  /** `host:port`, for messages. */
  get name(): string {
    return `${this.#opts.host}:${this.#opts.port}`;
  }

  /** True once closed or closing: it takes no new requests. */
  get closed(): boolean {
    return this.#closed || this.#ending;
  }

  /** Requests sent and not yet answered (timed-out ones included until their reply comes). */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues `line` (which ends with `\n`) and resolves with what `reader` makes of the reply.
   * `last` marks a line after which the node closes (QUIT): later requests go elsewhere.
   */
  send<T>(line: string, reader: ReplyReader<T>, last = false): Promise<T> {
    if (this.#closed || this.#ending) return Promise.reject(this.#closedError());
    if (last) this.#ending = true;
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const timeout = this.#opts.timeoutMs;
    const deadline = timeout > 0 ? performance.now() + timeout : Number.POSITIVE_INFINITY;
    this.#queue.push(new Pending(reader, deadline, resolve as (v: unknown) => void, reject));
    this.#out += line;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      process.nextTick(this.#onFlush);
    }
    if (this.#timer === null && timeout > 0) {
      this.#timer = setTimeout(this.#onTimer, timeout);
      this.#timer.unref();
    }
    return promise;
  }

  /**
   * Closes gracefully: sends what is queued, half-closes, and resolves once the node answered
   * everything sent and closed its side (the node does that on end of input). Gives up and
   * destroys after timeoutMs.
   */
  end(): Promise<void> {
    if (!this.#closed && !this.#endCalled) {
      this.#endCalled = true;
      this.#ending = true;
      this.#flush();
      this.#socket.end();
      if (this.#opts.timeoutMs > 0) {
        setTimeout(() => this.destroy(), this.#opts.timeoutMs).unref();
      }
    }
    return this.#closedPromise;
  }

  /** Closes at once; pending requests reject with CONNECTION_CLOSED (caused by `cause`). */
  destroy(cause?: Error): void {
    if (cause !== undefined) this.#cause ??= cause;
    this.#socket.destroy();
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#out.length === 0 || this.#closed) return;
    const out = this.#out;
    this.#out = '';
    this.#socket.write(out);
  }

  #frame(frame: LineFrame): void {
    const p = this.#queue[this.#head];
    if (p === undefined) {
      this.#unsolicited(frame);
      return;
    }
    const line = frame.kind === 'line' ? frame.line : EMPTY;
    if (frame.kind === 'too_long') p.tooLong = true;
    if (p.first === null) {
      // An over-long line is never an error line (those are short): a paged scan's END/MORE
      // line still follows it.
      const twoLines = frame.kind === 'line' ? p.reader.hasSecondLine(line) : p.reader.paged;
      if (twoLines) {
        p.first = line;
        return;
      }
    }
    this.#advance();
    if (p.settled) return;
    if (p.tooLong) {
      const max = this.#opts.maxReplyBytes;
      p.reject(new KvClientError('REPLY_TOO_LONG', `client: reply over ${max} bytes discarded`));
      return;
    }
    const first = p.first ?? line;
    const second = p.first === null ? null : line;
    let value: unknown;
    try {
      value = p.reader.read(first, second);
    } catch (err) {
      p.reject(err as Error);
      if (err instanceof KvClientError && err.code === 'PROTOCOL') this.destroy(err);
      return;
    }
    p.resolve(value);
  }

  /** A line with no request: the node's parting `ERR` (e.g. MAX_CLIENTS) or a broken stream. */
  #unsolicited(frame: LineFrame): void {
    if (frame.kind === 'line' && isErrorLine(frame.line)) {
      this.#cause ??= errorFromLine(frame.line);
      return;
    }
    this.destroy(new KvClientError('PROTOCOL', 'client: reply without a request'));
  }

  #advance(): void {
    this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#checked = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#checked = Math.max(0, this.#checked - this.#head);
      this.#head = 0;
    }
  }

  /** Rejects every request past its deadline, then waits for the next deadline. */
  #expire(): void {
    this.#timer = null;
    if (this.#closed) return;
    const now = performance.now();
    let i = Math.max(this.#checked, this.#head);
    for (; i < this.#queue.length; i++) {
      const p = this.#queue[i]!;
      if (p.deadline > now) break;
      if (!p.settled) {
        p.settled = true;
        const ms = this.#opts.timeoutMs;
        p.reject(new KvClientError('TIMEOUT', `client: no reply from ${this.name} in ${ms} ms`));
      }
    }
    this.#checked = i;
    const next = this.#queue[i];
    if (next !== undefined) {
      this.#timer = setTimeout(this.#onTimer, Math.max(1, next.deadline - now));
      this.#timer.unref();
    }
  }

  #closedError(): KvClientError {
    const cause = this.#cause;
    const why = cause === null ? '' : `: ${cause.message}`;
    if (cause instanceof KvClientError && cause.code === 'TIMEOUT') return cause;
    const message = this.#connected
      ? `client: connection to ${this.name} closed${why}`
      : `client: cannot connect to ${this.name}${why}`;
    return new KvClientError('CONNECTION_CLOSED', message, { cause: cause ?? undefined });
  }

  #onClose(): void {
    this.#closed = true;
    this.#out = '';
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const queue = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    this.#checked = 0;
    this.#decoder.reset();
    if (head === queue.length) return;
    const err = this.#closedError();
    for (let i = head; i < queue.length; i++) {
      const p = queue[i]!;
      if (!p.settled) p.reject(err);
    }
  }
}
