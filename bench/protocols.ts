// Request encoders and incremental reply parsers for the kvstore text protocol and Redis inline/RESP.

/** kvstore text lines; Redis with inline commands; Redis with RESP multibulk commands. */
export type ProtocolName = 'kvstore' | 'redis' | 'redis-resp';

/** Reply kinds a parser reports. */
export const REPLY_OK = 0;
export const REPLY_VALUE = 1;
export const REPLY_MISS = 2;
export const REPLY_ERROR = 3;

/** Filled in by parse(): the reply's kind and, for values, the value's length in bytes. */
export interface ParsedReply {
  kind: number;
  length: number;
}

export interface Protocol {
  /** Most bytes one request takes for the given key and value lengths. */
  requestBytes(keyLength: number, valueLength: number): number;
  /** Writes a write request for key=value at `at`; returns the offset after it. */
  writePut(out: Buffer, at: number, key: Buffer, value: Buffer): number;
  /** Writes a read request for key at `at`; returns the offset after it. */
  writeGet(out: Buffer, at: number, key: Buffer): number;
  /** Parses one reply starting at `from`: the offset after it, or -1 when it is incomplete. */
  parse(buf: Buffer, from: number, into: ParsedReply): number;
}

const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
/** The typed-array builtin: cheaper per call than Buffer#indexOf for one byte. */
const indexOfByte = Uint8Array.prototype.indexOf;

/** Writes `name key[ value]` and the line end (`\r\n` when crlf) at `at`; returns the new offset. */
function writeLine(
  out: Buffer,
  at: number,
  name: Buffer,
  key: Buffer,
  value: Buffer | null,
  crlf: boolean,
): number {
  out.set(name, at);
  let i = at + name.length;
  out[i++] = SPACE;
  out.set(key, i);
  i += key.length;
  if (value !== null) {
    out[i++] = SPACE;
    out.set(value, i);
    i += value.length;
  }
  if (crlf) out[i++] = CR;
  out[i++] = NL;
  return i;
}

/** True when buf[from, from + bytes.length) equals `bytes`. */
function matches(buf: Buffer, from: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[from + i] !== bytes[i]) return false;
  return true;
}

const KV_PUT = Buffer.from('PUT');
const KV_GET = Buffer.from('GET');
const KV_OK = Buffer.from('OK');
const KV_NOT_FOUND = Buffer.from('NOT_FOUND');
const KV_ERR = Buffer.from('ERR ');

/** kvstore: `PUT k v\n` / `GET k\n`; replies are one line: OK, the value, NOT_FOUND or ERR ... */
export const kvstoreProtocol: Protocol = {
  requestBytes: (k, v) => KV_PUT.length + k + v + 3,
  writePut: (out, at, key, value) => writeLine(out, at, KV_PUT, key, value, false),
  writeGet: (out, at, key) => writeLine(out, at, KV_GET, key, null, false),
  parse(buf, from, into) {
    const nl = indexOfByte.call(buf, NL, from);
    if (nl === -1) return -1;
    const end = nl > from && buf[nl - 1] === CR ? nl - 1 : nl;
    const len = end - from;
    into.length = len;
    if (len === KV_OK.length && matches(buf, from, KV_OK)) into.kind = REPLY_OK;
    else if (len === KV_NOT_FOUND.length && matches(buf, from, KV_NOT_FOUND)) {
      into.kind = REPLY_MISS;
    } else if (len >= KV_ERR.length && matches(buf, from, KV_ERR)) into.kind = REPLY_ERROR;
    else into.kind = REPLY_VALUE;
    return nl + 1;
  },
};

const R_SET = Buffer.from('SET');
const R_GET = Buffer.from('GET');

/** Writes `$<n>\r\n<bytes>\r\n` (a RESP bulk string) at `at`; returns the new offset. */
function writeBulk(out: Buffer, at: number, bytes: Buffer): number {
  let i = at + out.write(`$${bytes.length}\r\n`, at, 'latin1');
  out.set(bytes, i);
  i += bytes.length;
  out[i++] = CR;
  out[i++] = NL;
  return i;
}

/** Writes a RESP array of bulk strings (what redis-cli and client libraries send). */
function writeMultibulk(
  out: Buffer,
  at: number,
  name: Buffer,
  key: Buffer,
  value: Buffer | null,
): number {
  let i = at + out.write(value === null ? '*2\r\n' : '*3\r\n', at, 'latin1');
  i = writeBulk(out, i, name);
  i = writeBulk(out, i, key);
  return value === null ? i : writeBulk(out, i, value);
}

/** Parses the decimal integer in buf[from, end) (RESP lengths); NaN when malformed. */
function parseInteger(buf: Buffer, from: number, end: number): number {
  let i = from;
  let sign = 1;
  if (buf[i] === 0x2d) {
    sign = -1;
    i++;
  }
  if (i >= end) return Number.NaN;
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return Number.NaN;
    n = n * 10 + d;
  }
  return sign * n;
}

/** RESP2 replies: +OK, -ERR ..., $-1, $n\r\n<n bytes>\r\n. */
function parseResp(buf: Buffer, from: number, into: ParsedReply): number {
  const nl = indexOfByte.call(buf, NL, from);
  if (nl === -1) return -1;
  const end = buf[nl - 1] === CR ? nl - 1 : nl;
  into.length = 0;
  switch (buf[from]) {
    case 0x2b: // '+'
      into.kind = REPLY_OK;
      return nl + 1;
    case 0x24: {
      // '$'
      const n = parseInteger(buf, from + 1, end);
      if (n === -1) {
        into.kind = REPLY_MISS;
        return nl + 1;
      }
      if (!(n >= 0)) {
        into.kind = REPLY_ERROR;
        return nl + 1;
      }
      if (buf.length < nl + 1 + n + 2) return -1;
      into.kind = REPLY_VALUE;
      into.length = n;
      return nl + 1 + n + 2;
    }
    default: // '-' errors, and anything this benchmark never asks for
      into.kind = REPLY_ERROR;
      return nl + 1;
  }
}

/** Redis, inline commands: `SET k v\r\n` / `GET k\r\n` (the line framing, like kvstore's). */
export const redisInlineProtocol: Protocol = {
  requestBytes: (k, v) => R_SET.length + k + v + 4,
  writePut: (out, at, key, value) => writeLine(out, at, R_SET, key, value, true),
  writeGet: (out, at, key) => writeLine(out, at, R_GET, key, null, true),
  parse: parseResp,
};

/** Redis, RESP multibulk commands: `*3\r\n$3\r\nSET\r\n$<n>\r\n<key>\r\n...`. */
export const redisRespProtocol: Protocol = {
  requestBytes: (k, v) => R_SET.length + k + v + 40,
  writePut: (out, at, key, value) => writeMultibulk(out, at, R_SET, key, value),
  writeGet: (out, at, key) => writeMultibulk(out, at, R_GET, key, null),
  parse: parseResp,
};

export function protocolFor(name: ProtocolName): Protocol {
  if (name === 'kvstore') return kvstoreProtocol;
  return name === 'redis' ? redisInlineProtocol : redisRespProtocol;
}
