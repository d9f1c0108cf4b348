// RESP2 (the Redis protocol): an incremental request decoder and the reply encoder.

import { wireCode } from '../errors/index.ts';
import { ByteParts, PieceCopies } from './byte-parts.ts';
import type { InfoSection, Reply, ReplySink, RespVersion } from './reply.ts';

/** Bounds that keep one connection's unfinished request small. */
export interface RespLimits {
  /** Longest bulk string; a longer declared length is a protocol error. */
  readonly maxBulkBytes: number;
  /** Most elements in one request array. */
  readonly maxArgs: number;
  /**
   * Most bytes one request may hold: the sum over its arguments of their length plus
   * ARG_OVERHEAD (so a huge count of empty arguments is bounded too).
   */
  readonly maxRequestBytes: number;
  /** Longest inline request (a line that does not start with `*`). */
  readonly maxInlineBytes: number;
  /**
   * The bounds of a connection that has not authenticated yet: its errors say so, in Redis's
   * words (`Protocol error: unauthenticated bulk length`).
   */
  readonly unauthenticated?: boolean;
}

/**
 * Bytes charged per argument against maxRequestBytes (and per Buffer a held value keeps,
 * server/detach.ts), for the object that holds it: a Buffer view is 114 bytes of V8 heap on
 * Node 24, its slot in the arguments 8, and its `$<len>\r\n...\r\n` framing, which stays in the
 * read the view keeps, up to 16 more (a short argument of a request that spans reads is a view of
 * a copy instead, byte-parts.ts, so reads of a few bytes each are not kept for it). At 64, a request of 300,000 one-byte arguments held 2x
 * what it counted (test/integration/limits.test.ts), and the node-wide bound with it.
 */
export const ARG_OVERHEAD = 160;

/** One unit the decoder produced from the stream. */
export type RespFrame =
  /** A request: its arguments, the command name first (never empty). */
  | { readonly kind: 'request'; readonly args: Buffer[] }
  /**
   * A malformed request (Redis's wording, `Protocol error: ...`). The decoder stops: the stream
   * cannot be resynchronised, so the connection answers this error and closes.
   */
  | { readonly kind: 'error'; readonly message: string };

const STAR = 0x2a;
const DOLLAR = 0x24;
const MINUS = 0x2d;
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;

// Decoder states (plain numbers: erasable TypeScript has no enums).
const START = 0; // before a request: `*` starts an array, anything else an inline line
const ARRAY_LEN = 1; // digits of `*<n>\r\n`
const BULK_TYPE = 2; // the `$` of the next element
const BULK_LEN = 3; // digits of `$<len>\r\n`
const BULK_DATA = 4; // the element's bytes
const BULK_CR = 5; // the `\r` after them
const BULK_LF = 6; // the `\n` after them
const INLINE = 7; // an inline line up to `\n`

/**
 * Whether chunk[i..i+13) (in the chunk) is `*<count>\r\n$3\r\n<first>ET\r\n` (the name in any
 * case; `count` and `first` as byte values, `first` lower case): GET's and SET's whole requests.
 */
function named(chunk: Buffer, i: number, count: number, first: number): boolean {
  return (
    chunk[i + 1] === count &&
    chunk[i + 2] === CR &&
    chunk[i + 3] === LF &&
    chunk[i + 4] === DOLLAR &&
    chunk[i + 5] === 0x33 &&
    chunk[i + 6] === CR &&
    chunk[i + 7] === LF &&
    (chunk[i + 8]! | 0x20) === first &&
    (chunk[i + 9]! | 0x20) === 0x65 &&
    (chunk[i + 10]! | 0x20) === 0x74 &&
    chunk[i + 11] === CR &&
    chunk[i + 12] === LF
  );
}

/**
 * Splits a byte stream into RESP2 requests: arrays of bulk strings
 * (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), or inline lines of words split on spaces and tabs
 * (`PING\r\n`; no quoting). `*0` and `*-1` are empty requests and produce nothing, as do blank
 * inline lines. Pure: no I/O, no timers; chunks may be split anywhere and give the same frames.
 * Memory held for an unfinished request is bounded by RespLimits; exceeding one (or any
 * malformed header) produces one `error` frame, after which the decoder ignores all input until
 * reset(). A bulk string that arrives within one chunk is a view of it, not a copy.
 */
export class RespDecoder {
  /**
   * Read at every header, so a change (the connection authenticated) applies from the next one;
   * what was accepted under the earlier limits is kept.
   */
  limits: RespLimits;
  #state = START;
  #failed = false;
  // Header number being read.
  #num = 0;
  #neg = false;
  #digits = 0;
  #sawCr = false;
  // The request being assembled.
  #args: Buffer[] = [];
  #want = 0;
  #bytes = 0;
  // The bulk string (or inline line) being assembled from several chunks.
  readonly #held = new ByteParts();
  /** The small arguments of a request that spans reads, copied out of them. */
  readonly #copies = new PieceCopies();
  #left = 0;
  /** What the request completed last counted: see requestBytes. */
  #done = 0;

  constructor(limits: RespLimits) {
    this.limits = limits;
  }

  /**
   * Bytes of the unfinished request held, counted as the request limit counts them: the bytes of
   * its arguments received so far plus ARG_OVERHEAD for each one started (so a request of many
   * tiny arguments counts what their objects cost), or an inline line's bytes. 0 between
   * requests and after an error.
   */
  get bufferedBytes(): number {
    if (this.#failed) return 0;
    return this.#state === INLINE ? this.#held.bytes : this.#bytes - this.#left;
  }

  /**
   * Bytes of the request completed last, counted as bufferedBytes counted it unfinished (its
   * arguments' bytes plus ARG_OVERHEAD each, or an inline line's bytes): read in the frame (or
   * GET) callback, by a caller that keeps the request waiting. One store per request.
   */
  get requestBytes(): number {
    return this.#done;
  }

  /** Forgets any unfinished request and a past error. */
  reset(): void {
    this.#state = START;
    this.#failed = false;
    this.#args = [];
    this.#want = 0;
    this.#bytes = 0;
    this.#left = 0;
    this.#held.clear();
    this.#copies.clear();
    this.#resetNum();
  }

  /**
   * Feeds one chunk; calls `onFrame` for every frame it completes, in stream order. `onGet`,
   * when given, is offered each `GET <key>` that arrives whole in one chunk first (its key a
   * view of the chunk, no frame made); when it returns false the request becomes a frame.
   * `onSet` likewise for each `SET <key> <value>` (no options).
   */
  push(
    chunk: Buffer,
    onFrame: (frame: RespFrame) => void,
    onGet?: (key: Buffer) => boolean,
    onSet?: (key: Buffer, value: Buffer) => boolean,
  ): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.#failed) {
      switch (this.#state) {
        case START:
          if (chunk[i] === STAR) {
            if (onGet !== undefined) {
              const next = this.#wholeGet(chunk, i, onGet);
              if (next !== -1) {
                i = next;
                break;
              }
            }
            if (onSet !== undefined) {
              const next = this.#wholeSet(chunk, i, onSet);
              if (next !== -1) {
                i = next;
                break;
              }
            }
            // The common case, a whole request in this chunk, in one pass; anything else (split,
            // malformed, over a limit) goes through the states below from the same byte.
            const next = this.#whole(chunk, i, onFrame);
            if (next !== -1) {
              i = next;
              break;
            }
            this.#state = ARRAY_LEN;
            i++;
          } else {
            this.#state = INLINE;
          }
          break;
        case ARRAY_LEN:
        case BULK_LEN:
          i = this.#header(chunk, i, onFrame);
          break;
        case BULK_TYPE:
          if (chunk[i] !== DOLLAR) {
            this.#fail(onFrame, `expected '$', got '${printable(chunk[i]!)}'`);
            return;
          }
          this.#state = BULK_LEN;
          i++;
          break;
        case BULK_DATA:
          i = this.#bulkData(chunk, i);
          break;
        case BULK_CR:
        case BULK_LF: {
          const expect = this.#state === BULK_CR ? CR : LF;
          if (chunk[i] !== expect) {
            this.#fail(onFrame, 'expected CRLF after bulk string');
            return;
          }
          i++;
          if (this.#state === BULK_CR) this.#state = BULK_LF;
          else this.#endBulk(onFrame);
          break;
        }
        case INLINE:
          i = this.#inline(chunk, i, onFrame);
          break;
      }
    }
  }

  /**
   * Decodes the array request starting at `chunk[i]` (a `*`) when all of it is in `chunk`, well
   * formed and within the limits: emits it and returns the index after it. Otherwise returns -1
   * having consumed nothing, and the state machine decodes it (and words any error).
   */
  #whole(chunk: Buffer, i: number, onFrame: (frame: RespFrame) => void): number {
    const n = chunk.length;
    const limits = this.limits;
    let p = i + 1;
    let count = 0;
    let digits = 0;
    for (let b = chunk[p]; p < n && b! >= 0x30 && b! <= 0x39; b = chunk[++p]) {
      count = count * 10 + (b! - 0x30);
      if (++digits > 12) return -1;
    }
    if (digits === 0 || p + 1 >= n || chunk[p] !== CR || chunk[p + 1] !== LF) return -1;
    if (count === 0 || count > limits.maxArgs || count * ARG_OVERHEAD > limits.maxRequestBytes)
      return -1;
    p += 2;
    const args: Buffer[] = [];
    let bytes = 0;
    for (let a = 0; a < count; a++) {
      if (p >= n || chunk[p] !== DOLLAR) return -1;
      p++;
      let len = 0;
      digits = 0;
      for (let b = chunk[p]; p < n && b! >= 0x30 && b! <= 0x39; b = chunk[++p]) {
        len = len * 10 + (b! - 0x30);
        if (++digits > 12) return -1;
      }
      if (digits === 0 || p + 1 >= n || chunk[p] !== CR || chunk[p + 1] !== LF) return -1;
      bytes += len + ARG_OVERHEAD;
      if (len > limits.maxBulkBytes || bytes > limits.maxRequestBytes) return -1;
      p += 2;
      if (p + len + 2 > n || chunk[p + len] !== CR || chunk[p + len + 1] !== LF) return -1;
      args.push(chunk.subarray(p, p + len));
      p += len + 2;
    }
    this.#done = bytes;
    onFrame({ kind: 'request', args });
    return p;
  }

  /**
   * `*2\r\n$3\r\nGET\r\n$<len>\r\n<key>\r\n` (GET in any case) whole in `chunk` from `i`,
   * within the limits and taken by `onGet`: the index after it. Otherwise -1, nothing consumed.
   */
  #wholeGet(chunk: Buffer, i: number, onGet: (key: Buffer) => boolean): number {
    const n = chunk.length;
    if (i + 14 > n || !named(chunk, i, 0x32, 0x67) || chunk[i + 13] !== DOLLAR) return -1;
    let p = i + 14;
    let len = 0;
    for (let b = chunk[p]; p < n && b! >= 0x30 && b! <= 0x39; b = chunk[++p]) {
      len = len * 10 + (b! - 0x30);
      if (p - i > 24) return -1; // more than 10 digits: the general way words the error
    }
    if (p === i + 14 || p + 1 >= n || chunk[p] !== CR || chunk[p + 1] !== LF) return -1;
    const limits = this.limits;
    if (
      len > limits.maxBulkBytes ||
      limits.maxArgs < 2 ||
      3 + len + 2 * ARG_OVERHEAD > limits.maxRequestBytes
    )
      return -1;
    p += 2;
    if (p + len + 2 > n || chunk[p + len] !== CR || chunk[p + len + 1] !== LF) return -1;
    this.#done = 3 + len + 2 * ARG_OVERHEAD;
    return onGet(chunk.subarray(p, p + len)) ? p + len + 2 : -1;
  }

  /**
   * `*3\r\n$3\r\nSET\r\n` (SET in any case), then a key and a value, whole in `chunk` from `i`,
   * within the limits and taken by `onSet`: the index after it. Otherwise -1, nothing consumed
   * (the general way decodes it from the same byte: a frame of three views and their array).
   */
  #wholeSet(chunk: Buffer, i: number, onSet: (key: Buffer, value: Buffer) => boolean): number {
    if (i + 13 > chunk.length || !named(chunk, i, 0x33, 0x73)) return -1;
    const keyLen = this.#bulkAt(chunk, i + 13);
    if (keyLen < 0) return -1;
    const key = this.#bulkStart;
    const valueLen = this.#bulkAt(chunk, key + keyLen + 2);
    if (valueLen < 0) return -1;
    const value = this.#bulkStart;
    const limits = this.limits;
    const bytes = 3 + keyLen + valueLen + 3 * ARG_OVERHEAD;
    if (
      keyLen > limits.maxBulkBytes ||
      valueLen > limits.maxBulkBytes ||
      limits.maxArgs < 3 ||
      bytes > limits.maxRequestBytes
    )
      return -1;
    this.#done = bytes;
    const taken = onSet(chunk.subarray(key, key + keyLen), chunk.subarray(value, value + valueLen));
    return taken ? value + valueLen + 2 : -1;
  }

  /**
   * The length of the bulk string `$<len>\r\n<bytes>\r\n` at chunk[p] when all of it is in `chunk`
   * (at most 10 digits), with #bulkStart set to where its bytes start; -1 otherwise.
   */
  #bulkAt(chunk: Buffer, p: number): number {
    const n = chunk.length;
    if (p >= n || chunk[p] !== DOLLAR) return -1;
    const from = ++p;
    let len = 0;
    for (let b = chunk[p]; p < n && b! >= 0x30 && b! <= 0x39; b = chunk[++p]) {
      len = len * 10 + (b! - 0x30);
      if (p - from >= 10) return -1;
    }
    if (p === from || p + 1 >= n || chunk[p] !== CR || chunk[p + 1] !== LF) return -1;
    p += 2;
    if (p + len + 2 > n || chunk[p + len] !== CR || chunk[p + len + 1] !== LF) return -1;
    this.#bulkStart = p;
    return len;
  }

  /** Where the bytes of the bulk string #bulkAt read last start. */
  #bulkStart = 0;

  /** Reads `*<n>\r\n` or `$<len>\r\n` digits from `i`; returns where it stopped. */
  #header(chunk: Buffer, i: number, onFrame: (frame: RespFrame) => void): number {
    const array = this.#state === ARRAY_LEN;
    const what = array ? 'invalid multibulk length' : 'invalid bulk length';
    const max = array ? this.limits.maxArgs : this.limits.maxBulkBytes;
    while (i < chunk.length) {
      const b = chunk[i++]!;
      if (this.#sawCr) {
        if (b !== LF) return this.#failAt(chunk, onFrame, what);
        const value = this.#neg ? -this.#num : this.#num;
        this.#resetNum();
        if (array) this.#startArray(value, onFrame);
        else this.#startBulk(value, onFrame);
        return i;
      }
      if (b >= 0x30 && b <= 0x39) {
        this.#num = this.#num * 10 + (b - 0x30);
        this.#digits++;
        // A count or length above the limit is refused at once, without waiting for its end.
        if (this.#num > max && !(array && this.#neg)) {
          return this.#failAt(chunk, onFrame, lengthError(array, this.limits));
        }
        if (this.#digits > 12) return this.#failAt(chunk, onFrame, what);
      } else if (b === MINUS && this.#digits === 0 && !this.#neg && array) {
        this.#neg = true;
      } else if (b === CR && this.#digits > 0) {
        this.#sawCr = true;
      } else {
        return this.#failAt(chunk, onFrame, what);
      }
    }
    return i;
  }

  #resetNum(): void {
    this.#num = 0;
    this.#neg = false;
    this.#digits = 0;
    this.#sawCr = false;
  }

  #startArray(count: number, onFrame: (frame: RespFrame) => void): void {
    if (count <= 0) {
      this.#state = START; // `*0` and `*-1`: nothing to do, as in Redis
      return;
    }
    if (count * ARG_OVERHEAD > this.limits.maxRequestBytes) {
      this.#fail(onFrame, lengthError(true, this.limits));
      return;
    }
    this.#want = count;
    this.#state = BULK_TYPE;
  }

  #startBulk(len: number, onFrame: (frame: RespFrame) => void): void {
    this.#bytes += len + ARG_OVERHEAD;
    if (this.#bytes > this.limits.maxRequestBytes) {
      const what = this.limits.unauthenticated ? 'unauthenticated request' : 'request';
      this.#fail(onFrame, `${what} over ${this.limits.maxRequestBytes} bytes`);
      return;
    }
    this.#left = len;
    this.#state = BULK_DATA;
  }

  /** Takes the bulk string's bytes from `i`; returns where it stopped. */
  #bulkData(chunk: Buffer, i: number): number {
    const take = Math.min(this.#left, chunk.length - i);
    if (take === this.#left && this.#held.bytes === 0) {
      // Whole in this read, which the request spans: a long one stays a view of it.
      this.#args.push(this.#copies.copy(chunk, i, i + take));
    } else if (take === this.#left) {
      this.#args.push(this.#held.take(chunk.subarray(i, i + take)));
    } else {
      this.#held.add(chunk, i, i + take);
    }
    this.#left -= take;
    if (this.#left === 0) this.#state = BULK_CR;
    return i + take;
  }

  #endBulk(onFrame: (frame: RespFrame) => void): void {
    if (this.#args.length < this.#want) {
      this.#state = BULK_TYPE;
      return;
    }
    const args = this.#args;
    this.#done = this.#bytes;
    this.#args = [];
    this.#want = 0;
    this.#bytes = 0;
    this.#state = START;
    this.#copies.clear();
    onFrame({ kind: 'request', args });
  }

  /** Collects an inline line from `i`; returns where it stopped. */
  #inline(chunk: Buffer, i: number, onFrame: (frame: RespFrame) => void): number {
    const nl = chunk.indexOf(LF, i);
    const end = nl === -1 ? chunk.length : nl;
    if (this.#held.bytes + (end - i) > this.limits.maxInlineBytes + 1) {
      this.#fail(onFrame, 'too big inline request');
      return chunk.length;
    }
    if (nl === -1) {
      this.#held.add(chunk, i, end);
      return chunk.length;
    }
    this.#done = this.#held.bytes + (end - i);
    const line = this.#held.take(chunk.subarray(i, end));
    this.#state = START;
    const args = splitInline(line);
    if (args.length > 0) onFrame({ kind: 'request', args });
    return nl + 1;
  }

  /** #fail, returning the end of `chunk` (nothing more is read). */
  #failAt(chunk: Buffer, onFrame: (frame: RespFrame) => void, what: string): number {
    this.#fail(onFrame, what);
    return chunk.length;
  }

  #fail(onFrame: (frame: RespFrame) => void, what: string): void {
    this.#failed = true;
    this.#args = [];
    this.#held.clear();
    this.#copies.clear();
    onFrame({ kind: 'error', message: `Protocol error: ${what}` });
  }
}

/** A bad or too large `*<n>` (array) or `$<len>` header, in Redis's words. */
function lengthError(array: boolean, limits: RespLimits): string {
  const what = array ? 'multibulk length' : 'bulk length';
  return `${limits.unauthenticated ? 'unauthenticated' : 'invalid'} ${what}`;
}

/** Words of an inline line, split on spaces and tabs; a trailing `\r` is dropped. */
function splitInline(line: Buffer): Buffer[] {
  const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
  const out: Buffer[] = [];
  let i = 0;
  while (i < end) {
    while (i < end && (line[i] === SPACE || line[i] === TAB)) i++;
    let j = i;
    while (j < end && line[j] !== SPACE && line[j] !== TAB) j++;
    if (j > i) out.push(line.subarray(i, j));
    i = j;
  }
  return out;
}

function printable(b: number): string {
  return b > 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
}

const CRLF = Buffer.from('\r\n');
const R_OK = Buffer.from('+OK\r\n');
const R_PONG = Buffer.from('+PONG\r\n');
const R_NULL = Buffer.from('$-1\r\n');
const R_NULL_ARRAY = Buffer.from('*-1\r\n');
const R3_NULL = Buffer.from('_\r\n');
const R_EMPTY_ARRAY = Buffer.from('*0\r\n');
const SMALL_INTS = Array.from({ length: 64 }, (_, i) => Buffer.from(`:${i}\r\n`));

/**
 * `$<n>\r\n` for the bulk lengths most replies have: views into one buffer of all 4096 (27 KB),
 * each view made on first use. Not one `Buffer.from` each: a small Buffer.from is a slice of
 * Node's shared 64 KiB pool, and a header made long after the one before it would keep a slab
 * of its own for the life of the process (4096 of them: 256 MiB).
 */
const CACHED_HEADERS = 4096;
/** Where `$<n>\r\n` starts in BULK_HEADER_BYTES (and, at n + 1, where it ends). */
const HEADER_AT = new Uint32Array(CACHED_HEADERS + 1);
let headerText = '';
for (let n = 0; n < CACHED_HEADERS; n++) {
  HEADER_AT[n] = headerText.length;
  headerText += `$${n}\r\n`;
}
HEADER_AT[CACHED_HEADERS] = headerText.length;
const BULK_HEADER_BYTES = Buffer.allocUnsafeSlow(headerText.length);
BULK_HEADER_BYTES.write(headerText, 'latin1');
const BULK_HEADERS: (Buffer | undefined)[] = [];

function bulkHeader(n: number): Buffer {
  if (n >= CACHED_HEADERS) return Buffer.from(`$${n}\r\n`);
  let h = BULK_HEADERS[n];
  if (h === undefined) {
    h = BULK_HEADER_BYTES.subarray(HEADER_AT[n], HEADER_AT[n + 1]);
    BULK_HEADERS[n] = h;
  }
  return h;
}

function bulk(value: Buffer, out: ReplySink): void {
  out.push(bulkHeader(value.length));
  out.push(value);
  out.push(CRLF);
}

/** A sink that also takes part of a buffer without a view of it being made. */
export interface RangeSink extends ReplySink {
  pushRange(bytes: Buffer, start: number, end: number): void;
}

/**
 * GET's answer straight from a stored record: the bulk string of `raw` from `start` to its end,
 * or the null reply when `start` is -1 (encodeRespReply's `value` and `not_found`).
 */
export function encodeRespValueAt(
  out: RangeSink,
  raw: Buffer | undefined,
  start: number,
  proto: RespVersion,
): void {
  if (raw === undefined || start < 0) {
    out.push(proto === 3 ? R3_NULL : R_NULL);
    return;
  }
  out.push(bulkHeader(raw.length - start));
  out.pushRange(raw, start, raw.length);
  out.push(CRLF);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** INFO's text: `# Name` then `field:value` lines per section, sections separated by a blank line. */
export function renderSections(sections: readonly InfoSection[]): string {
  return sections
    .map((s) => {
      const title = s.name.charAt(0).toUpperCase() + s.name.slice(1);
      const lines = s.fields.map(([k, v]) => `${k}:${oneLine(String(v))}\r\n`);
      return `# ${title}\r\n${lines.join('')}`;
    })
    .join('\r\n');
}

/**
 * Encodes a reply as RESP2, or RESP3 when `proto` is 3, appending buffers to `out` (a batch
 * becomes one write): ok/pong `+OK`/`+PONG`; not_found the null bulk `$-1` (RESP3 null `_`);
 * value and info (CLUSTER's JSON) bulk strings; keys an array of bulk strings, or when paged
 * `[keys, next cursor or null]`; error `-<resp>` or `-ERR <CODE> <message>`; integer `:n`;
 * status `+text`; array `*n` (null array `*-1`, RESP3 `_`); sections one bulk string; map
 * `%n` (RESP2: a flat `*2n` array); set `~n` (RESP2: an array); double `,x` (RESP2: a bulk
 * string; `inf`, `-inf`, `nan`). CR and LF in one-line forms become spaces.
 */
export function encodeRespReply(reply: Reply, out: ReplySink, proto: RespVersion = 2): void {
  switch (reply.type) {
    case 'ok':
      out.push(R_OK);
      return;
    case 'pong':
      out.push(R_PONG);
      return;
    case 'not_found':
      out.push(proto === 3 ? R3_NULL : R_NULL);
      return;
    case 'value':
      bulk(reply.value, out);
      return;
    case 'info':
      bulk(Buffer.from(reply.text), out);
      return;
    case 'keys':
      if (reply.paged) out.push(Buffer.from('*2\r\n'));
      out.push(Buffer.from(`*${reply.keys.length}\r\n`));
      for (const k of reply.keys) bulk(k, out);
      if (reply.paged) {
        if (reply.next === null) out.push(proto === 3 ? R3_NULL : R_NULL);
        else bulk(reply.next, out);
      }
      return;
    case 'error': {
      const line = reply.resp ?? `ERR ${wireCode(reply.code)} ${reply.message}`;
      out.push(Buffer.from(`-${oneLine(line)}\r\n`));
      return;
    }
    case 'integer': {
      const v = reply.value;
      out.push(v >= 0 && v < SMALL_INTS.length ? SMALL_INTS[v]! : Buffer.from(`:${v}\r\n`));
      return;
    }
    case 'status':
      out.push(Buffer.from(`+${oneLine(reply.text)}\r\n`));
      return;
    case 'array':
      if (reply.items === null) out.push(proto === 3 ? R3_NULL : R_NULL_ARRAY);
      else if (reply.items.length === 0) out.push(R_EMPTY_ARRAY);
      else {
        out.push(Buffer.from(`*${reply.items.length}\r\n`));
        for (const item of reply.items) encodeRespReply(item, out, proto);
      }
      return;
    case 'sections':
      bulk(Buffer.from(renderSections(reply.sections)), out);
      return;
    case 'map':
      out.push(
        Buffer.from(
          proto === 3 ? `%${reply.entries.length}\r\n` : `*${reply.entries.length * 2}\r\n`,
        ),
      );
      for (const [k, v] of reply.entries) {
        encodeRespReply(k, out, proto);
        encodeRespReply(v, out, proto);
      }
      return;
    case 'set':
      out.push(Buffer.from(`${proto === 3 ? '~' : '*'}${reply.items.length}\r\n`));
      for (const item of reply.items) encodeRespReply(item, out, proto);
      return;
    case 'double': {
      const v = reply.value;
      const text = Number.isNaN(v)
        ? 'nan'
        : v === Infinity
          ? 'inf'
          : v === -Infinity
            ? '-inf'
            : String(v);
      if (proto === 3) out.push(Buffer.from(`,${text}\r\n`));
      else bulk(Buffer.from(text), out);
      return;
    }
    default: {
      const never: never = reply;
      throw new Error(`protocol: unhandled reply ${JSON.stringify(never)}`);
    }
  }
}
