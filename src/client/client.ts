// KvClient: typed, pipelined calls over one connection to a kvstore node.

import { type ClientTls, Connection } from './connection.ts';
import { KvClientError } from './errors.ts';
import {
  GET_BUFFER_READER,
  GET_READER,
  PING_READER,
  PUT_READER,
  RawReader,
  REMOVE_READER,
  type ReplyReader,
  ScanReader,
  type ScanResult,
} from './replies.ts';
import {
  checkKey,
  checkValue,
  rawShape,
  type ScanOptions,
  scanShape,
  scanSuffix,
} from './request.ts';

export interface KvClientOptions {
  /** Node address; default 127.0.0.1. */
  readonly host?: string;
  /** Client port; default 8081. */
  readonly port?: number;
  /** How long a request (and connecting) may take, in ms; default 10000; 0 waits forever. */
  readonly timeoutMs?: number;
  /** Longest reply line accepted, in bytes; default 64 MiB (a big value or an unpaged scan). */
  readonly maxReplyBytes?: number;
  /**
   * After the connection closed (node restart, QUIT, network), the next call opens a new one;
   * default true. Requests pending at the close are not retried: they reject with
   * CONNECTION_CLOSED, since a write may or may not have been applied.
   */
  readonly reconnect?: boolean;
  /** Speak TLS to a node that serves it (--tls-cert-file); default null: plain TCP. */
  readonly tls?: ClientTls | null;
}

/** What scanAll walks: an inclusive key range, or every key with a prefix. */
export type ScanQuery =
  | { readonly start: string; readonly end: string }
  | { readonly prefix: string };

export interface ScanAllOptions {
  /** Keys per request (LIMIT); default 1000; at most the node's --max-scan-keys. */
  readonly pageSize?: number;
  /** Start strictly after this key (a `next` from an earlier page). */
  readonly cursor?: string;
}

function rejected<T>(err: unknown): Promise<T> {
  return Promise.reject(err);
}

/**
 * A client of one kvstore node over one TCP connection. Calls may be issued without awaiting
 * the previous ones: they are written in order (batched per tick) and the node answers in
 * order, so N concurrent calls cost one round trip. Arguments are checked before sending: a bad
 * key rejects with INVALID_KEY, a bad value with INVALID_VALUE, without touching the socket.
 * Errors are KvClientError; see its `code`.
 */
export class KvClient {
  readonly #opts: Required<KvClientOptions>;
  #conn: Connection;
  #closed = false;

  private constructor(opts: Required<KvClientOptions>, conn: Connection) {
    this.#opts = opts;
    this.#conn = conn;
  }

  /** Connects; rejects with CONNECTION_CLOSED (refused, unreachable) or TIMEOUT. */
  static async connect(options: KvClientOptions = {}): Promise<KvClient> {
    const opts: Required<KvClientOptions> = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 8081,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxReplyBytes: options.maxReplyBytes ?? 64 * 1024 * 1024,
      reconnect: options.reconnect ?? true,
      tls: options.tls ?? null,
    };
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new KvClientError('INVALID_ARGUMENT', `client: port ${opts.port} is not 1-65535`);
    }
    if (!(opts.timeoutMs >= 0) || !Number.isFinite(opts.timeoutMs)) {
      throw new KvClientError('INVALID_ARGUMENT', 'client: timeoutMs must be a number >= 0');
    }
    if (!Number.isSafeInteger(opts.maxReplyBytes) || opts.maxReplyBytes < 1) {
      throw new KvClientError('INVALID_ARGUMENT', 'client: maxReplyBytes must be an integer >= 1');
    }
    const conn = new Connection(opts);
    await conn.ready;
    return new KvClient(opts, conn);
  }

  /** `host:port` of the node. */
  get address(): string {
    return `${this.#opts.host}:${this.#opts.port}`;
  }

  /** Stores `value` at `key` (replacing any value); resolves once the node acknowledged it. */
  put(key: string, value: string | Buffer): Promise<void> {
    let line: string;
    try {
      line = `PUT ${checkKey(key)} ${checkValue(value)}\n`;
    } catch (err) {
      return rejected(err);
    }
    return this.#send(line, PUT_READER);
  }

  /**
   * The value at `key`, or null when absent. Ambiguity of the seed protocol: a value stored as
   * the literal text `NOT_FOUND` reads as null, and one like `ERR <CODE> ...` as that error.
   */
  get(key: string): Promise<string | null> {
    try {
      checkKey(key);
    } catch (err) {
      return rejected(err);
    }
    return this.#send(`GET ${key}\n`, GET_READER);
  }

  /** Like get, as the value's UTF-8 bytes (a Buffer of its own). */
  getBuffer(key: string): Promise<Buffer | null> {
    try {
      checkKey(key);
    } catch (err) {
      return rejected(err);
    }
    return this.#send(`GET ${key}\n`, GET_BUFFER_READER);
  }

  /** Removes `key`; true when it existed, false when it was already absent. */
  remove(key: string): Promise<boolean> {
    try {
      checkKey(key);
    } catch (err) {
      return rejected(err);
    }
    return this.#send(`REMOVE ${key}\n`, REMOVE_READER);
  }

  /**
   * Keys k with start <= k <= end (both inclusive, byte order), ascending. Without a limit the
   * node returns all of them or fails with LIMIT_EXCEEDED past its --max-scan-keys; with one,
   * `next` is the cursor of the following page (null when complete).
   */
  range(start: string, end: string, opts?: ScanOptions): Promise<ScanResult> {
    let line: string;
    try {
      line = `RANGE ${checkKey(start, 'start')} ${checkKey(end, 'end')}${scanSuffix(opts)}\n`;
    } catch (err) {
      return rejected(err);
    }
    return this.#send(line, new ScanReader(scanShape(start, end, false, opts)));
  }

  /** Keys that start with `prefix`, ascending; paging as in range. */
  prefix(prefix: string, opts?: ScanOptions): Promise<ScanResult> {
    let line: string;
    try {
      line = `PREFIX ${checkKey(prefix, 'prefix')}${scanSuffix(opts)}\n`;
    } catch (err) {
      return rejected(err);
    }
    return this.#send(line, new ScanReader(scanShape(prefix, null, true, opts)));
  }

  /**
   * Every key of a range or prefix, ascending, fetched page by page with LIMIT/CURSOR (the next
   * page is requested while the current one is consumed). Keys written during the walk may or
   * may not appear; none appears twice.
   */
  async *scanAll(query: ScanQuery, opts: ScanAllOptions = {}): AsyncGenerator<string, void> {
    const limit = opts.pageSize ?? 1000;
    const page = (cursor: string | undefined): Promise<ScanResult> => {
      const p =
        'prefix' in query
          ? this.prefix(query.prefix, { limit, cursor })
          : this.range(query.start, query.end, { limit, cursor });
      p.catch(() => {}); // awaited below; not unhandled while the caller is busy or gone
      return p;
    };
    let next: Promise<ScanResult> | null = page(opts.cursor);
    while (next !== null) {
      const result: ScanResult = await next;
      next = result.next === null ? null : page(result.next);
      yield* result.keys;
    }
  }

  /** PING; resolves on PONG. */
  ping(): Promise<void> {
    return this.#send('PING\n', PING_READER);
  }

  /**
   * Sends one command line as typed (for the shell) and resolves with the reply text: one line,
   * or two joined by `\n` for RANGE/PREFIX with LIMIT. `ERR ...` replies resolve too (they are
   * text to show); only client-side failures reject. A blank line is not sent (the node does not
   * answer it) and resolves ''. `QUIT` closes the connection after its OK; with `reconnect`
   * the next call opens a new one.
   */
  raw(line: string): Promise<string> {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (text.includes('\n')) {
      return rejected(new KvClientError('INVALID_ARGUMENT', 'client: a raw line has a newline'));
    }
    if (/^ *$/.test(text)) return Promise.resolve('');
    const shape = rawShape(text);
    return this.#send(`${text}\n`, new RawReader(shape.paged, shape.scan), shape.quit);
  }

  /**
   * Closes gracefully: requests already sent get their replies, then the connection closes.
   * Calls made afterwards reject with CONNECTION_CLOSED.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#conn.end();
  }

  /** Closes at once; pending requests reject with CONNECTION_CLOSED. */
  destroy(): void {
    this.#closed = true;
    this.#conn.destroy();
  }

  #send<T>(line: string, reader: ReplyReader<T>, last = false): Promise<T> {
    if (this.#conn.closed && !this.#closed && this.#opts.reconnect) {
      this.#conn = new Connection(this.#opts);
    }
    if (this.#closed) {
      return rejected(new KvClientError('CONNECTION_CLOSED', 'client: closed by close()'));
    }
    return this.#conn.send(line, reader, last);
  }
}
