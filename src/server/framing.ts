// The two framings of the client port, chosen per connection: the seed's text lines and RESP2/3.

import { toKvError } from '../errors/index.ts';
import {
  type Command,
  type CommandLimits,
  encodeRespReply,
  encodeTextReply,
  errorReply,
  httpCommandName,
  httpRequestLine,
  LineDecoder,
  type LineFrame,
  parseRespRequest,
  parseTextLine,
  type Reply,
  type ReplySink,
  type RespContext,
  RespDecoder,
  type RespFrame,
  type RespLimits,
  type RespVersion,
  respErrors,
  type SessionOp,
  textShape,
} from '../protocol/index.ts';

/** Where a framing delivers what it decoded, in stream order. */
export interface FramingSink {
  /** A command for the coordinator; `shape`, when set, rewrites its non-error reply. */
  command(cmd: Command, shape?: (r: Reply) => Reply): void;
  /** `GET key` with a valid key: command() of it, without the objects (RESP's common case). */
  get(key: Buffer): void;
  /**
   * A request answered without the coordinator: a malformed one, or a connection-local one;
   * `effect`, its change to the connection's state, made when it runs (see RespRequest).
   */
  reply(reply: Reply, effect?: () => void): void;
  /** The stream cannot be decoded any further: send this reply after the earlier ones, close. */
  fatal(reply: Reply): void;
  /**
   * The stream is an HTTP request (protocol/http-request.ts): nothing from here on runs; fatal()
   * with the connection's answer to it, counted and logged.
   */
  http(): void;
  /** A request about the connection itself (HELLO, MULTI, EXEC, ...), answered by it. */
  session(op: SessionOp): void;
}

/** Decodes requests from a byte stream and encodes replies, for one connection. */
export interface Framing {
  readonly name: 'text' | 'resp';
  /** Feeds one chunk (split anywhere); calls `sink` for each complete request. */
  decode(chunk: Buffer, sink: FramingSink): void;
  /** Appends the reply's bytes to `out`, in RESP version `proto` (text ignores it). */
  encode(reply: Reply, out: ReplySink, proto: RespVersion): void;
  /** Forgets an unfinished request (the client went away mid-request). */
  reset(): void;
  /** Bytes of the unfinished request held (the decoder's count; 0 between requests). */
  readonly bufferedBytes: number;
  /**
   * Bytes of the request just handed to the sink, as bufferedBytes counted it unfinished (0 for
   * a line discarded as too long): read in the sink's callback, for a request kept waiting.
   */
  readonly requestBytes: number;
  /**
   * Before the connection authenticated (`on`), holds at most the small unauthenticated bounds
   * of an unfinished request; from the next byte on. Off: the node's limits.
   */
  guard(on: boolean): void;
}

/** What a connection that has not authenticated may make the node hold of one request. */
export interface UnauthenticatedLimits {
  readonly resp: RespLimits;
  readonly lineBytes: number;
}

/** The seed's protocol: one command per line; every error keeps the connection usable. */
export class TextFraming implements Framing {
  readonly name = 'text';
  readonly #decoder: LineDecoder;
  readonly #limits: CommandLimits;
  readonly #maxLineBytes: number;
  readonly #unauthenticated: UnauthenticatedLimits;
  #requestBytes = 0;

  constructor(limits: CommandLimits, maxLineBytes: number, unauthenticated: UnauthenticatedLimits) {
    this.#limits = limits;
    this.#maxLineBytes = maxLineBytes;
    this.#unauthenticated = unauthenticated;
    this.#decoder = new LineDecoder(maxLineBytes);
  }

  guard(on: boolean): void {
    this.#decoder.maxLineBytes = on
      ? Math.min(this.#unauthenticated.lineBytes, this.#maxLineBytes)
      : this.#maxLineBytes;
  }

  decode(chunk: Buffer, sink: FramingSink): void {
    this.#sink = sink;
    this.#decoder.push(chunk, this.#onLine);
  }

  /** The sink of the decode() in progress (the connection's, the same for its life). */
  #sink: FramingSink | null = null;

  /** Made once, not per decode() (a read), as RespFraming's. */
  readonly #onLine = (frame: LineFrame): void => {
    const sink = this.#sink!;
    if (frame.kind === 'too_long') {
      this.#requestBytes = 0;
      const limit = this.#decoder.maxLineBytes;
      const msg = `protocol: line of ${frame.bytes} bytes is over the limit of ${limit}`;
      sink.reply({ type: 'error', code: 'KV_ERR_LINE_TOO_LONG', message: msg });
      return;
    }
    this.#requestBytes = frame.line.length;
    if (httpRequestLine(frame.line)) {
      sink.http();
      return;
    }
    let cmd: Command | null;
    try {
      cmd = parseTextLine(frame.line, this.#limits);
    } catch (err) {
      sink.reply(errorReply(toKvError(err, 'protocol')));
      return;
    }
    if (cmd !== null) sink.command(cmd, textShape(cmd));
  };

  encode(reply: Reply, out: ReplySink): void {
    encodeTextReply(reply, out);
  }

  reset(): void {
    this.#decoder.reset();
  }

  get bufferedBytes(): number {
    return this.#decoder.bufferedBytes;
  }

  get requestBytes(): number {
    return this.#requestBytes;
  }
}

/**
 * RESP2: arrays of bulk strings (and inline lines). A malformed command (unknown, wrong arity,
 * bad key) gets one error and the connection goes on; a malformed frame is fatal, as in Redis.
 */
export class RespFraming implements Framing {
  readonly name = 'resp';
  readonly #decoder: RespDecoder;
  readonly #ctx: RespContext;
  readonly #limits: RespLimits;
  readonly #unauthenticated: UnauthenticatedLimits;

  constructor(ctx: RespContext, limits: RespLimits, unauthenticated: UnauthenticatedLimits) {
    this.#ctx = ctx;
    this.#limits = limits;
    this.#unauthenticated = unauthenticated;
    this.#decoder = new RespDecoder(limits);
  }

  guard(on: boolean): void {
    this.#decoder.limits = on ? this.#unauthenticated.resp : this.#limits;
  }

  decode(chunk: Buffer, sink: FramingSink): void {
    this.#sink = sink;
    this.#decoder.push(chunk, this.#onFrame, this.#onGet, this.#onSet);
  }

  /** The sink of the decode() in progress (the connection's, the same for its life). */
  #sink: FramingSink | null = null;

  // Made once, not per decode() (a read): two closures a read were a sixth of a GET's allocation.
  readonly #onGet = (key: Buffer): boolean => {
    // An empty or long key goes the general way, which words its error.
    if (key.length === 0 || key.length > this.#ctx.limits.maxKeyBytes) return false;
    this.#ctx.session.lastCommand = 'get';
    this.#sink!.get(key);
    return true;
  };

  /**
   * `SET key value` (no options): the put command parseRespRequest makes of it, without the
   * frame, its array and the command name's view (and their parse).
   */
  readonly #onSet = (key: Buffer, value: Buffer): boolean => {
    // An empty or long key, or a large value, goes the general way, which words its error.
    const limits = this.#ctx.limits;
    if (key.length === 0 || key.length > limits.maxKeyBytes || value.length > limits.maxValueBytes)
      return false;
    this.#ctx.session.lastCommand = 'set';
    this.#sink!.command({ type: 'put', key, value });
    return true;
  };

  readonly #onFrame = (frame: RespFrame): void => {
    const sink = this.#sink!;
    if (frame.kind === 'error') {
      sink.fatal(errorReply(respErrors.protocol(frame.message)));
      return;
    }
    if (frame.args.length > 0 && httpCommandName(frame.args[0]!)) {
      sink.http();
      return;
    }
    let req: ReturnType<typeof parseRespRequest>;
    try {
      req = parseRespRequest(frame.args, this.#ctx);
    } catch (err) {
      sink.reply(errorReply(toKvError(err, 'protocol')));
      return;
    }
    if (req.kind === 'reply') sink.reply(req.reply, req.effect);
    else if (req.kind === 'session') sink.session(req.op);
    else sink.command(req.cmd, req.shape);
  };

  encode(reply: Reply, out: ReplySink, proto: RespVersion): void {
    encodeRespReply(reply, out, proto);
  }

  reset(): void {
    this.#decoder.reset();
  }

  get bufferedBytes(): number {
    return this.#decoder.bufferedBytes;
  }

  get requestBytes(): number {
    return this.#decoder.requestBytes;
  }
}
