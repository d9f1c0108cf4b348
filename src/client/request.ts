// Client-side checks and encoding of request lines, so a bad argument fails before it is sent.

import { isUtf8 } from 'node:buffer';
import { KvClientError } from './errors.ts';

/** Paging options of RANGE/PREFIX. */
export interface ScanOptions {
  /** At most this many keys (a positive integer); the reply then says whether more remain. */
  readonly limit?: number;
  /** Resume strictly after this key: the `next` of a previous page. Needs `limit`. */
  readonly cursor?: string;
}

/**
 * Checks a key the way the node does, minus its length limit (the client does not know it):
 * non-empty, well-formed Unicode, no ASCII control character, space or DEL. Throws INVALID_KEY.
 */
export function checkKey(key: string, what = 'key'): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new KvClientError('INVALID_KEY', `client: ${what} must be a non-empty string`);
  }
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) {
      throw new KvClientError(
        'INVALID_KEY',
        `client: ${what} has a control or whitespace character at index ${i}`,
      );
    }
  }
  if (!key.isWellFormed()) {
    throw new KvClientError('INVALID_KEY', `client: ${what} has a lone surrogate`);
  }
  return key;
}

/**
 * Checks a value and returns it as a string: no `\n` (it would end the line), no trailing `\r`
 * (the node strips one before `\n`), well-formed Unicode (a Buffer must be valid UTF-8, the
 * node rejects anything else). Throws INVALID_VALUE.
 */
export function checkValue(value: string | Buffer): string {
  let text: string;
  if (typeof value === 'string') {
    if (!value.isWellFormed()) {
      throw new KvClientError('INVALID_VALUE', 'client: value has a lone surrogate');
    }
    text = value;
  } else if (Buffer.isBuffer(value)) {
    if (!isUtf8(value)) throw new KvClientError('INVALID_VALUE', 'client: value is not UTF-8');
    text = value.toString('utf8');
  } else {
    throw new KvClientError('INVALID_VALUE', 'client: value must be a string or a Buffer');
  }
  if (text.includes('\n')) {
    throw new KvClientError('INVALID_VALUE', 'client: value has a newline');
  }
  if (text.endsWith('\r')) {
    throw new KvClientError('INVALID_VALUE', 'client: value ends with a carriage return');
  }
  return text;
}

/** The ` LIMIT n [CURSOR c]` suffix of a scan line ('' without a limit). Throws on bad options. */
export function scanSuffix(opts: ScanOptions | undefined): string {
  const limit = opts?.limit;
  const cursor = opts?.cursor;
  if (limit === undefined) {
    if (cursor !== undefined) {
      throw new KvClientError('INVALID_ARGUMENT', 'client: a scan cursor needs a limit');
    }
    return '';
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new KvClientError('INVALID_ARGUMENT', 'client: limit must be a positive integer');
  }
  if (cursor === undefined) return ` LIMIT ${limit}`;
  return ` LIMIT ${limit} CURSOR ${checkKey(cursor, 'cursor')}`;
}

/**
 * What a raw command line (as typed in the shell) asks for, read the way the node reads it:
 * tokens split on spaces, command names and LIMIT/CURSOR case-insensitive. A RANGE/PREFIX with
 * LIMIT gets a two-line reply; `scan` carries what its keys must satisfy (see replies.ts).
 */
export interface RawShape {
  /** QUIT: the node closes the connection after its reply. */
  readonly quit: boolean;
  readonly paged: boolean;
  readonly scan: ScanShape | null;
}

/** What every key of a scan reply satisfies; used to tell a keys line from an error line. */
export interface ScanShape {
  /** Inclusive lower bound (RANGE start, or the prefix). */
  readonly start: Buffer;
  /** Inclusive upper bound of a RANGE; null for PREFIX. */
  readonly end: Buffer | null;
  /** Every key starts with this (PREFIX); null for RANGE. */
  readonly prefix: Buffer | null;
  /** Every key is strictly after this. */
  readonly after: Buffer | null;
  /** At most this many keys; null without LIMIT. */
  readonly limit: number | null;
}

/** The shape of a scan this client builds from typed arguments. */
export function scanShape(
  start: string,
  end: string | null,
  isPrefix: boolean,
  opts: ScanOptions | undefined,
): ScanShape {
  const startBuf = Buffer.from(start);
  return {
    start: startBuf,
    end: end === null ? null : Buffer.from(end),
    prefix: isPrefix ? startBuf : null,
    after: opts?.cursor === undefined ? null : Buffer.from(opts.cursor),
    limit: opts?.limit ?? null,
  };
}

/** Reads a raw line's command to know its reply's shape (malformed lines get one ERR line). */
export function rawShape(line: string): RawShape {
  const tokens = line.split(' ').filter((t) => t.length > 0);
  const name = tokens[0]?.toUpperCase();
  const isRange = name === 'RANGE';
  if (!isRange && name !== 'PREFIX') return { quit: name === 'QUIT', paged: false, scan: null };
  const opts = tokens.slice(isRange ? 3 : 2);
  const paged = opts[0]?.toUpperCase() === 'LIMIT';
  const limit = paged ? Number(opts[1]) : Number.NaN;
  const cursor = paged && opts[2]?.toUpperCase() === 'CURSOR' ? opts[3] : undefined;
  const start = tokens[1] ?? '';
  const scan: ScanShape = {
    start: Buffer.from(start),
    end: isRange ? Buffer.from(tokens[2] ?? '') : null,
    prefix: isRange ? null : Buffer.from(start),
    after: cursor === undefined ? null : Buffer.from(cursor),
    limit: Number.isSafeInteger(limit) && limit > 0 ? limit : null,
  };
  return { quit: false, paged, scan };
}
