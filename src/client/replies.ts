// Reply readers: how many lines a reply has and what it means, per kind of request (pure).

import { KvError } from '../errors/index.ts';
import { ERROR_LINE, parseErrorLine, readCursor, TEXT_REPLY } from '../protocol/index.ts';
import { KvClientError } from './errors.ts';
import type { ScanShape } from './request.ts';

/**
 * Reads the reply to one request. The connection gives it the first line, asks whether a second
 * follows, then hands over both. Throws KvClientError for an `ERR` reply (`remote` true) and
 * code PROTOCOL when the reply cannot belong to the request (the stream is out of step).
 */
export interface ReplyReader<T> {
  /** True for a paged scan: its reply has a second line unless it is an error. */
  readonly paged: boolean;
  /** True when the reply that starts with `first` has a second line. */
  hasSecondLine(first: Buffer): boolean;
  /** The result; `second` is null for a one-line reply. */
  read(first: Buffer, second: Buffer | null): T;
}

// The reply words and the error form are the server's own (protocol/text-reply.ts).
const SP = 0x20;
const ERR_PREFIX = Buffer.from(TEXT_REPLY.errPrefix);
const OK = Buffer.from(TEXT_REPLY.ok);
const PONG = Buffer.from(TEXT_REPLY.pong);
const NOT_FOUND = Buffer.from(TEXT_REPLY.notFound);

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return (
    line.length >= prefix.length && line.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
  );
}

/** True when the line has the form of an error reply: `ERR <CODE> <message>`. */
export function isErrorLine(line: Buffer): boolean {
  return startsWith(line, ERR_PREFIX) && ERROR_LINE.test(line.toString('latin1', 0, 64));
}

/** The KvClientError for an error line (the caller checked isErrorLine). */
export function errorFromLine(line: Buffer): KvClientError {
  const e = parseErrorLine(line.toString('utf8')) ?? { code: 'INTERNAL', message: '' };
  return new KvClientError(e.code, e.message || `kvstore: ${e.code}`, { remote: true });
}

function mismatch(line: Buffer, what: string): KvClientError {
  const preview = line.toString('utf8', 0, 80);
  return new KvClientError('PROTOCOL', `client: reply '${preview}' does not fit ${what}`);
}

/** A one-line reply that must be exactly `expected` (OK for PUT, PONG for PING). */
class ExactReader implements ReplyReader<void> {
  readonly paged = false;
  readonly #expected: Buffer;
  readonly #what: string;
  constructor(expected: Buffer, what: string) {
    this.#expected = expected;
    this.#what = what;
  }
  hasSecondLine(): boolean {
    return false;
  }
  read(first: Buffer): void {
    if (first.equals(this.#expected)) return;
    if (isErrorLine(first)) throw errorFromLine(first);
    throw mismatch(first, this.#what);
  }
}

/** PUT: `OK`. */
export const PUT_READER: ReplyReader<void> = new ExactReader(OK, 'PUT');
/** PING: `PONG`. */
export const PING_READER: ReplyReader<void> = new ExactReader(PONG, 'PING');

/** REMOVE: true for `OK`, false for `NOT_FOUND`. */
export const REMOVE_READER: ReplyReader<boolean> = {
  paged: false,
  hasSecondLine: () => false,
  read(first) {
    if (first.equals(OK)) return true;
    if (first.equals(NOT_FOUND)) return false;
    if (isErrorLine(first)) throw errorFromLine(first);
    throw mismatch(first, 'REMOVE');
  },
};

/**
 * GET: the value, or null for `NOT_FOUND`. The seed protocol is ambiguous here: a stored value
 * that is literally `NOT_FOUND` reads as absent, and one of the form `ERR <CODE> ...` reads as
 * that error. Callers that store arbitrary text should encode it (for example prefix a byte).
 */
export const GET_READER: ReplyReader<string | null> = {
  paged: false,
  hasSecondLine: () => false,
  read(first) {
    if (first.equals(NOT_FOUND)) return null;
    if (isErrorLine(first)) throw errorFromLine(first);
    return first.toString('utf8');
  },
};

/** GET as bytes (a copy, so it does not pin the socket's read buffer); same ambiguity. */
export const GET_BUFFER_READER: ReplyReader<Buffer | null> = {
  paged: false,
  hasSecondLine: () => false,
  read(first) {
    if (first.equals(NOT_FOUND)) return null;
    if (isErrorLine(first)) throw errorFromLine(first);
    return Buffer.from(first);
  },
};

/**
 * True when `line` could be this scan's keys: at most `limit` keys, strictly ascending in byte
 * order, each after the cursor and inside the range or prefix. Only asked when a keys line
 * starts with `ERR ` (keys `ERR`, `INVALID_KEY`, ... are legal): an error line (several words of
 * English after the code) practically never passes, so this tells the two apart and, for a
 * paged scan, whether a second line follows.
 */
export function couldBeKeys(line: Buffer, shape: ScanShape): boolean {
  let prev: Buffer | null = shape.after;
  let count = 0;
  let i = 0;
  while (i <= line.length) {
    let j = line.indexOf(SP, i);
    if (j === -1) j = line.length;
    const key = line.subarray(i, j);
    count++;
    if (key.length === 0 || (shape.limit !== null && count > shape.limit)) return false;
    if (prev !== null && Buffer.compare(key, prev) <= 0) return false;
    if (Buffer.compare(key, shape.start) < 0) return false;
    if (shape.end !== null && Buffer.compare(key, shape.end) > 0) return false;
    if (shape.prefix !== null && !startsWith(key, shape.prefix)) return false;
    prev = key;
    i = j + 1;
  }
  return true;
}

function isScanError(first: Buffer, shape: ScanShape): boolean {
  return isErrorLine(first) && !couldBeKeys(first, shape);
}

/** A page of RANGE/PREFIX. */
export interface ScanResult {
  /** Keys in ascending byte order. */
  readonly keys: string[];
  /** Cursor to pass as `cursor` for the next page; null when the scan is complete. */
  readonly next: string | null;
}

/** The cursor of a paged scan's second line: `END` -> null, `MORE <cursor>` -> the cursor. */
export function readTrailer(second: Buffer | null): string | null {
  try {
    return readCursor(second)?.toString('utf8') ?? null;
  } catch (err) {
    if (!(err instanceof KvError)) throw err;
    throw new KvClientError('PROTOCOL', `client: ${err.message.replace(/^protocol: /, '')}`);
  }
}

/** RANGE/PREFIX: one keys line, plus END/MORE when LIMIT was given. */
export class ScanReader implements ReplyReader<ScanResult> {
  readonly paged: boolean;
  readonly #shape: ScanShape;
  constructor(shape: ScanShape) {
    this.#shape = shape;
    this.paged = shape.limit !== null;
  }
  hasSecondLine(first: Buffer): boolean {
    return this.paged && !isScanError(first, this.#shape);
  }
  read(first: Buffer, second: Buffer | null): ScanResult {
    if (isScanError(first, this.#shape)) throw errorFromLine(first);
    const keys = first.length === 0 ? [] : first.toString('utf8').split(' ');
    return { keys, next: this.paged ? readTrailer(second) : null };
  }
}

/** Any raw line (the shell): the reply's text as sent, lines joined by `\n`, errors included. */
export class RawReader implements ReplyReader<string> {
  readonly paged: boolean;
  readonly #shape: ScanShape | null;
  constructor(paged: boolean, shape: ScanShape | null) {
    this.paged = paged;
    this.#shape = shape;
  }
  hasSecondLine(first: Buffer): boolean {
    return this.paged && this.#shape !== null && !isScanError(first, this.#shape);
  }
  read(first: Buffer, second: Buffer | null): string {
    const text = first.toString('utf8');
    return second === null ? text : `${text}\n${second.toString('utf8')}`;
  }
}
