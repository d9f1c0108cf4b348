// Request encoders and incremental reply parsers for the kvstore text protocol and Redis inline/RESP.

export type ProtocolName = 'kvstore' | 'redis';

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

function writeCommand(out: Buffer, at: number, name: Buffer, args: Buffer[], end: Buffer): number {
  let i = at + name.copy(out, at);
  for (const a of args) {
    out[i++] = SPACE;
    i += a.copy(out, i);
  }
  return i + end.copy(out, i);
}

function startsWith(buf: Buffer, from: number, end: number, prefix: Buffer): boolean {
  return (
    end - from >= prefix.length &&
    buf.compare(prefix, 0, prefix.length, from, from + prefix.length) === 0
  );
}

const KV_PUT = Buffer.from('PUT');
const KV_GET = Buffer.from('GET');
const KV_END = Buffer.from('\n');
const KV_OK = Buffer.from('OK');
const KV_NOT_FOUND = Buffer.from('NOT_FOUND');
const KV_ERR = Buffer.from('ERR ');

/** kvstore: `PUT k v\n` / `GET k\n`; replies are one line: OK, the value, NOT_FOUND or ERR ... */
export const kvstoreProtocol: Protocol = {
  requestBytes: (k, v) => KV_PUT.length + k + v + 3,
  writePut: (out, at, key, value) => writeCommand(out, at, KV_PUT, [key, value], KV_END),
  writeGet: (out, at, key) => writeCommand(out, at, KV_GET, [key], KV_END),
  parse(buf, from, into) {
    const nl = buf.indexOf(NL, from);
    if (nl === -1) return -1;
    const end = nl > from && buf[nl - 1] === CR ? nl - 1 : nl;
    const len = end - from;
    into.length = len;
    if (len === KV_OK.length && startsWith(buf, from, end, KV_OK)) into.kind = REPLY_OK;
    else if (len === KV_NOT_FOUND.length && startsWith(buf, from, end, KV_NOT_FOUND)) {
      into.kind = REPLY_MISS;
    } else if (startsWith(buf, from, end, KV_ERR)) into.kind = REPLY_ERROR;
    else into.kind = REPLY_VALUE;
    return nl + 1;
  },
};

const R_SET = Buffer.from('SET');
const R_GET = Buffer.from('GET');
const R_END = Buffer.from('\r\n');

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

/** Redis: inline `SET k v\r\n` / `GET k\r\n`; RESP2 replies +OK, -ERR, $-1, $n\r\n<n bytes>\r\n. */
export const redisProtocol: Protocol = {
  requestBytes: (k, v) => R_SET.length + k + v + 4,
  writePut: (out, at, key, value) => writeCommand(out, at, R_SET, [key, value], R_END),
  writeGet: (out, at, key) => writeCommand(out, at, R_GET, [key], R_END),
  parse(buf, from, into) {
    const nl = buf.indexOf(NL, from);
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
  },
};

export function protocolFor(name: ProtocolName): Protocol {
  return name === 'kvstore' ? kvstoreProtocol : redisProtocol;
}
