// The seed's line protocol: one command per line in, one reply (a line, or two when paged) out.

import { isUtf8 } from 'node:buffer';
import { KvError } from '../errors/index.ts';
import {
  type Command,
  type CommandLimits,
  type ExpirySpec,
  parseScanPage,
  type ScanPageRules,
  validateKey,
  validateValue,
} from './command.ts';
import { echo } from './echo.ts';
import type { Reply } from './reply.ts';
import { textValueProblem } from './text-reply.ts';

const SPACE = 0x20;
const TAB = 0x09;

/** RANGE/PREFIX's `[LIMIT n [CURSOR key]]` on a text line: the cursor is a text key. */
const TEXT_PAGE: ScanPageRules = {
  key: validateKey,
  malformed: () => new KvError('KV_ERR_WRONG_ARITY', 'protocol: expected [LIMIT n [CURSOR key]]'),
};

/** Splits on single spaces; runs of spaces between tokens are tolerated. */
function tokens(line: Buffer, from: number): Buffer[] {
  const out: Buffer[] = [];
  let i = from;
  while (i < line.length) {
    if (line[i] === SPACE) {
      i++;
      continue;
    }
    let j = line.indexOf(SPACE, i);
    if (j === -1) j = line.length;
    out.push(line.subarray(i, j));
    i = j;
  }
  return out;
}

function arity(name: string, want: string): KvError {
  return new KvError('KV_ERR_WRONG_ARITY', `protocol: ${name} expects ${want}`);
}

/** Words that look like an expiry option: refused after a command that takes none. */
const EXPIRY_WORDS = new Set(['EX', 'PX', 'EXAT', 'PXAT', 'KEEPTTL', 'TTL', 'PERSIST']);

/** A syntax error for an expiry option given to a command that cannot take one. */
function noExpiryOption(name: string, args: readonly Buffer[]): void {
  if (!args.some((a) => EXPIRY_WORDS.has(a.toString('latin1').toUpperCase()))) return;
  throw new KvError(
    'KV_ERR_WRONG_ARITY',
    `protocol: ${name} takes no expiry option; use SETEX <key> <seconds> <value> or EXPIRE <key> <seconds>`,
  );
}

/** Largest number of seconds an expiry may be: 2^53 ms. */
const MAX_TEXT_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

/** A text-protocol expiry: whole seconds from 1 to MAX_TEXT_SECONDS. */
function seconds(name: string, raw: Buffer): ExpirySpec {
  const text = raw.toString('latin1');
  const n = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : 0;
  if (n < 1 || n > MAX_TEXT_SECONDS) {
    throw new KvError(
      'KV_ERR_INVALID_ARGUMENT',
      `protocol: ${name} seconds must be an integer from 1 to ${MAX_TEXT_SECONDS}`,
    );
  }
  return { relative: true, ms: n * 1000 };
}

/** True when `line` holds only spaces and tabs from `from` on. */
function blank(line: Buffer, from: number): boolean {
  for (let i = from; i < line.length; i++) if (line[i] !== SPACE && line[i] !== TAB) return false;
  return true;
}

/**
 * Parses one line (without its terminator) into a command. Returns null for a blank line (only
 * spaces and tabs, as RESP's inline commands ignore it), which gets no reply. Throws KvError for anything malformed; the connection stays usable.
 * `PUT key value`: the value is every byte after the single space that follows the key.
 */
export function parseTextLine(line: Buffer, limits: CommandLimits): Command | null {
  if (!isUtf8(line)) throw new KvError('KV_ERR_INVALID_UTF8', 'protocol: line is not valid UTF-8');
  let start = 0;
  while (start < line.length && line[start] === SPACE) start++;
  if (start === line.length || (line[start] === TAB && blank(line, start))) return null;
  let nameEnd = line.indexOf(SPACE, start);
  if (nameEnd === -1) nameEnd = line.length;
  const name = line.toString('latin1', start, nameEnd).toUpperCase();
  if (name === 'PUT') return parsePut(line, nameEnd, limits);
  if (name === 'SETEX') return parseSetex(line, nameEnd, limits);
  if (name === 'AUTH') {
    // The password is every byte after the single space that follows AUTH.
    if (nameEnd >= line.length - 1) throw arity('AUTH', '<password>');
    return { type: 'auth', password: line.subarray(nameEnd + 1), named: false };
  }
  const args = tokens(line, nameEnd);
  switch (name) {
    case 'GET':
    case 'REMOVE':
      noExpiryOption(name, args.slice(1));
      if (args.length !== 1) throw arity(name, 'one key');
      return { type: name === 'GET' ? 'get' : 'remove', key: validateKey(args[0]!, limits) };
    case 'EXPIRE':
      if (args.length !== 2) throw arity(name, '<key> <seconds>');
      return {
        type: 'expire',
        key: validateKey(args[0]!, limits),
        expiry: seconds(name, args[1]!),
      };
    case 'TTL':
    case 'PTTL':
      if (args.length !== 1) throw arity(name, 'one key');
      return {
        type: 'ttl',
        key: validateKey(args[0]!, limits),
        form: name === 'TTL' ? 'ttl' : 'pttl',
      };
    case 'PERSIST':
      if (args.length !== 1) throw arity(name, 'one key');
      return { type: 'persist', key: validateKey(args[0]!, limits) };
    case 'RANGE':
      noExpiryOption(name, args.slice(2));
      if (args.length < 2) throw arity(name, '<start> <end> [LIMIT n [CURSOR key]]');
      return {
        type: 'range',
        start: validateKey(args[0]!, limits, 'start'),
        end: validateKey(args[1]!, limits, 'end'),
        page: parseScanPage(args.slice(2), limits, TEXT_PAGE),
      };
    case 'PREFIX':
      noExpiryOption(name, args.slice(1));
      if (args.length < 1) throw arity(name, '<prefix> [LIMIT n [CURSOR key]]');
      return {
        type: 'prefix',
        prefix: validateKey(args[0]!, limits, 'prefix'),
        page: parseScanPage(args.slice(1), limits, TEXT_PAGE),
      };
    case 'PING':
    case 'QUIT':
    case 'CLUSTER':
      if (args.length !== 0) throw arity(name, 'no arguments');
      return { type: name === 'PING' ? 'ping' : name === 'QUIT' ? 'quit' : 'cluster' };
    default:
      throw new KvError('KV_ERR_UNKNOWN_COMMAND', `protocol: unknown command '${echo(name, 32)}'`);
  }
}

/**
 * The field of a PUT or SETEX line from `from` (spaces before it skipped) up to the next space,
 * and where that space is (-1: the line ends with the field). Only a space separates fields: a
 * tab is part of the field it is in, so `PUT k<TAB>v` has the key `k<TAB>v`, which is
 * INVALID_KEY, as `GET k<TAB>` is, before any complaint about the missing value.
 */
function field(line: Buffer, from: number, name: string, want: string): [Buffer, number] {
  let at = from;
  while (at < line.length && line[at] === SPACE) at++;
  if (at >= line.length) throw arity(name, want);
  const end = line.indexOf(SPACE, at);
  return [line.subarray(at, end === -1 ? line.length : end), end];
}

/**
 * A PUT or SETEX value: within the limit, and not ending in `\r`, which the line's own ending
 * would swallow when it is read back (a line `PUT k v\r\r\n` holds the value `v\r`; GET answers
 * `v\r\n`, read as `v`). Throws KV_ERR_VALUE_TOO_LARGE or KV_ERR_NOT_REPRESENTABLE.
 */
function textValue(value: Buffer, limits: CommandLimits): Buffer {
  validateValue(value, limits);
  if (textValueProblem(value) === 'cr_end') {
    throw new KvError(
      'KV_ERR_NOT_REPRESENTABLE',
      "protocol: the value ends with a carriage return, which a reply line's \\r\\n ending would swallow when it is read back; write it over RESP",
    );
  }
  return value;
}

function parsePut(line: Buffer, nameEnd: number, limits: CommandLimits): Command {
  const [raw, keyEnd] = field(line, nameEnd, 'PUT', '<key> <value>');
  const key = validateKey(raw, limits);
  if (keyEnd === -1) throw arity('PUT', '<key> <value>');
  return { type: 'put', key, value: textValue(line.subarray(keyEnd + 1), limits) };
}

/**
 * `SETEX <key> <seconds> <value>`: PUT with an expiry, as one write. The value is every byte after
 * the single space that follows the seconds, as for PUT. Fields are checked in order.
 */
function parseSetex(line: Buffer, nameEnd: number, limits: CommandLimits): Command {
  const want = '<key> <seconds> <value>';
  const [rawKey, keyEnd] = field(line, nameEnd, 'SETEX', want);
  const key = validateKey(rawKey, limits);
  if (keyEnd === -1) throw arity('SETEX', want);
  const [rawSeconds, secondsEnd] = field(line, keyEnd, 'SETEX', want);
  const expiry = seconds('SETEX', rawSeconds);
  if (secondsEnd === -1) throw arity('SETEX', want);
  return { type: 'put', key, value: textValue(line.subarray(secondsEnd + 1), limits), expiry };
}

const INT_OK = (r: Reply): Reply => (r.type === 'integer' ? { type: 'ok' } : r);

/**
 * How the text protocol shows a command's reply when it differs from the coordinator's: EXPIRE
 * and PERSIST answer `OK` (or `NOT_FOUND`), not Redis's integers.
 */
export function textShape(cmd: Command): ((r: Reply) => Reply) | undefined {
  return cmd.type === 'expire' || cmd.type === 'persist' ? INT_OK : undefined;
}
