// The text protocol's replies, both directions: the words, the encoder the server uses, and the
// decoder (the client's readers use the same words and error form).

import { isUtf8 } from 'node:buffer';
import { ERROR_CODES, type ErrorCode, KvError, wireCode } from '../errors/index.ts';
import { controlByteAt } from './command.ts';
import type { Reply, ReplySink } from './reply.ts';

/** The fixed words of text replies (each on a line of its own, but MORE's cursor follows). */
export const TEXT_REPLY = {
  ok: 'OK',
  pong: 'PONG',
  notFound: 'NOT_FOUND',
  /** Second line of a complete paged scan. */
  end: 'END',
  /** Second line of a paged scan with more to come: `MORE <cursor>`. */
  morePrefix: 'MORE ',
  /** An error: `ERR <CODE> <message>`. */
  errPrefix: 'ERR ',
} as const;

/** `ERR <CODE>` as the server writes it: an upper-case code after `ERR `, then ` message` or the end. */
export const ERROR_LINE = /^ERR ([A-Z][A-Z0-9_]*)(?: |$)/;

/** The code (as on the wire, `LIMIT_EXCEEDED`) and message of an error line; null for any other line. */
export function parseErrorLine(line: string): { code: string; message: string } | null {
  const code = ERROR_LINE.exec(line)?.[1];
  if (code === undefined) return null;
  return { code, message: line.slice(TEXT_REPLY.errPrefix.length + code.length + 1) };
}

const OK = Buffer.from(`${TEXT_REPLY.ok}\n`);
const PONG = Buffer.from(`${TEXT_REPLY.pong}\n`);
const NOT_FOUND = Buffer.from(`${TEXT_REPLY.notFound}\n`);
const NL = Buffer.from('\n');
const SP = Buffer.from(' ');
const END = Buffer.from(`${TEXT_REPLY.end}\n`);
const MORE = Buffer.from(TEXT_REPLY.morePrefix);

/** True when `key` could have been written by the text protocol (see validateKey), as UTF-8. */
function textKey(key: Buffer): boolean {
  return controlByteAt(key) === -1 && isUtf8(key);
}

function errorLine(code: ErrorCode, message: string): Buffer {
  return Buffer.from(`${TEXT_REPLY.errPrefix}${wireCode(code)} ${oneLine(message)}\n`);
}

/** Text that fits on one line: each run of CR/LF becomes one space. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

const VALUE_NEWLINE = errorLine(
  'KV_ERR_NOT_REPRESENTABLE',
  'protocol: the value has a newline (written over RESP); read it over RESP',
);
const VALUE_CR_END = errorLine(
  'KV_ERR_NOT_REPRESENTABLE',
  "protocol: the value ends with a carriage return (written over RESP), which a reply line's \\r\\n ending would swallow; read it over RESP",
);

/**
 * Why a value cannot be sent as a reply line (a line ends at `\n`, and one `\r` before it is the
 * ending's: a value ending in `\r` would read back without it), or null when it can.
 */
export function textValueProblem(value: Buffer): 'newline' | 'cr_end' | null {
  if (value.includes(0x0a)) return 'newline';
  return value.length > 0 && value[value.length - 1] === 0x0d ? 'cr_end' : null;
}
const KEY_NOT_TEXT = errorLine(
  'KV_ERR_NOT_REPRESENTABLE',
  'protocol: a key in the answer has whitespace, control bytes or invalid UTF-8 (written over RESP); scan over RESP',
);

/**
 * Encodes a reply as text. Appends buffers to `out` (so a batch of replies becomes one write):
 * OK, PONG, NOT_FOUND, the raw value, `ERR <CODE> <message>`, a decimal integer (TTL), or the
 * keys space-separated on one line (empty line when none). A paged answer adds a second line: `END` when complete, or
 * `MORE <cursor>` where the next page is `... LIMIT n CURSOR <cursor>`.
 * Data written over RESP that a line cannot carry (a value with `\n` or ending in `\r`; a key with whitespace,
 * control bytes or invalid UTF-8) is answered with `ERR NOT_REPRESENTABLE` instead, so the
 * line framing never breaks. RESP-only replies (status, array, sections) never reach
 * this encoder; if one did, it is answered `ERR INTERNAL`, again one line.
 */
export function encodeTextReply(reply: Reply, out: ReplySink): void {
  switch (reply.type) {
    case 'ok':
      out.push(OK);
      return;
    case 'pong':
      out.push(PONG);
      return;
    case 'not_found':
      out.push(NOT_FOUND);
      return;
    case 'value': {
      const problem = textValueProblem(reply.value);
      if (problem === null) {
        out.push(reply.value);
        out.push(NL);
      } else out.push(problem === 'newline' ? VALUE_NEWLINE : VALUE_CR_END);
      return;
    }
    case 'info':
      out.push(Buffer.from(`${oneLine(reply.text)}\n`));
      return;
    case 'error':
      out.push(errorLine(reply.code, reply.message));
      return;
    case 'keys':
      encodeKeys(reply, out);
      return;
    case 'integer':
      out.push(Buffer.from(`${reply.value}\n`));
      return;
    case 'status':
    case 'array':
    case 'sections':
    case 'map':
    case 'set':
    case 'double':
      out.push(errorLine('KV_ERR_INTERNAL', `protocol: a ${reply.type} reply has no text form`));
      return;
    default: {
      const never: never = reply;
      throw new Error(`protocol: unhandled reply ${JSON.stringify(never)}`);
    }
  }
}

function encodeKeys(reply: Extract<Reply, { type: 'keys' }>, out: ReplySink): void {
  if (!reply.keys.every(textKey) || (reply.next !== null && !textKey(reply.next))) {
    out.push(KEY_NOT_TEXT);
    return;
  }
  for (let i = 0; i < reply.keys.length; i++) {
    if (i > 0) out.push(SP);
    out.push(reply.keys[i]!);
  }
  out.push(NL);
  if (reply.paged) {
    if (reply.next === null) out.push(END);
    else {
      out.push(MORE);
      out.push(reply.next);
      out.push(NL);
    }
  }
}

/**
 * What a request expects back. Text replies do not say what they are (a value may read `OK`),
 * so a reader needs this: `ok` PUT, `pong` PING, `removed` REMOVE (OK or NOT_FOUND), `value`
 * GET (the value or NOT_FOUND), `keys` RANGE/PREFIX, `paged` with LIMIT (two lines), `info`
 * CLUSTER, `integer` TTL. Any of them may be an error line instead.
 */
export type TextReplyKind =
  | 'ok'
  | 'pong'
  | 'removed'
  | 'value'
  | 'keys'
  | 'paged'
  | 'info'
  | 'integer';

/**
 * Reads a text reply (lines without their `\n`; `second` only for `paged`) back into the Reply
 * encodeTextReply wrote. The protocol's own ambiguity stays: a value (or keys line) that reads
 * as `NOT_FOUND` or `ERR <CODE> ...` reads as that. Throws KV_ERR_PROTOCOL for a line that
 * cannot be an answer of `kind`.
 */
export function decodeTextReply(kind: TextReplyKind, first: Buffer, second: Buffer | null): Reply {
  const text = first.toString('utf8');
  const error = parseErrorLine(text);
  if (error !== null && `KV_ERR_${error.code}` in ERROR_CODES) {
    return { type: 'error', code: `KV_ERR_${error.code}` as ErrorCode, message: error.message };
  }
  const bad = () =>
    new KvError('KV_ERR_PROTOCOL', `protocol: '${text.slice(0, 80)}' is no ${kind} reply`);
  switch (kind) {
    case 'ok':
    case 'pong':
    case 'removed':
      if (kind !== 'pong' && text === TEXT_REPLY.ok) return { type: 'ok' };
      if (kind === 'pong' && text === TEXT_REPLY.pong) return { type: 'pong' };
      if (kind === 'removed' && text === TEXT_REPLY.notFound) return { type: 'not_found' };
      throw bad();
    case 'value':
      return text === TEXT_REPLY.notFound
        ? { type: 'not_found' }
        : { type: 'value', value: Buffer.from(first) };
    case 'info':
      return { type: 'info', text };
    case 'integer':
      if (!/^-?\d+$/.test(text)) throw bad();
      return { type: 'integer', value: Number(text) };
    case 'keys':
    case 'paged': {
      const keys = first.length === 0 ? [] : splitKeys(first);
      if (kind === 'keys') return { type: 'keys', keys, paged: false, next: null };
      return { type: 'keys', keys, paged: true, next: readCursor(second) };
    }
    default: {
      const never: never = kind;
      throw new Error(`protocol: unhandled reply kind ${String(never)}`);
    }
  }
}

function splitKeys(line: Buffer): Buffer[] {
  const keys: Buffer[] = [];
  let i = 0;
  for (let j = line.indexOf(0x20); j !== -1; j = line.indexOf(0x20, i)) {
    keys.push(Buffer.from(line.subarray(i, j)));
    i = j + 1;
  }
  keys.push(Buffer.from(line.subarray(i)));
  return keys;
}

/**
 * The cursor of a paged scan's second line: null for `END`, the cursor of `MORE <cursor>`.
 * Throws KV_ERR_PROTOCOL for anything else (or no second line).
 */
export function readCursor(second: Buffer | null): Buffer | null {
  if (second === null)
    throw new KvError('KV_ERR_PROTOCOL', 'protocol: paged scan reply lacks END/MORE');
  const more = TEXT_REPLY.morePrefix.length;
  if (second.toString('latin1') === TEXT_REPLY.end) return null;
  if (second.length > more && second.toString('latin1', 0, more) === TEXT_REPLY.morePrefix) {
    return Buffer.from(second.subarray(more));
  }
  throw new KvError(
    'KV_ERR_PROTOCOL',
    `protocol: '${second.toString('utf8', 0, 80)}' is no END/MORE line`,
  );
}
