import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  type Command,
  type CommandLimits,
  encodeTextReply,
  parseTextLine,
  type Reply,
} from '../../src/protocol/index.ts';

const LIMITS: CommandLimits = { maxKeyBytes: 16, maxValueBytes: 32, maxScanKeys: 100 };

function parse(line: string | Buffer): Command | null {
  return parseTextLine(typeof line === 'string' ? Buffer.from(line) : line, LIMITS);
}

function codeOf(line: string | Buffer): string {
  try {
    parse(line);
  } catch (err) {
    if (err instanceof KvError) return err.code;
    throw err;
  }
  throw new Error(`expected an error for ${String(line)}`);
}

function text(reply: Reply): string {
  const out: Buffer[] = [];
  encodeTextReply(reply, out);
  return Buffer.concat(out).toString();
}

const b = (s: string) => Buffer.from(s);

describe('parseTextLine', () => {
  it('parses every seed command, case-insensitively', () => {
    expect(parse('PUT session:user1 {token:xyz123}')).toEqual({
      type: 'put',
      key: b('session:user1'),
      value: b('{token:xyz123}'),
    });
    expect(parse('get k')).toEqual({ type: 'get', key: b('k') });
    expect(parse('Remove k')).toEqual({ type: 'remove', key: b('k') });
    expect(parse('RANGE a c')).toEqual({
      type: 'range',
      start: b('a'),
      end: b('c'),
      page: { limit: null, cursor: null },
    });
    expect(parse('prefix s: limit 10 cursor s:b')).toEqual({
      type: 'prefix',
      prefix: b('s:'),
      page: { limit: 10, cursor: b('s:b') },
    });
    expect(parse('PING')).toEqual({ type: 'ping' });
    expect(parse('quit')).toEqual({ type: 'quit' });
  });

  it('keeps everything after the single space following the key as the value', () => {
    expect(parse('PUT k  two  spaces ')).toEqual({
      type: 'put',
      key: b('k'),
      value: b(' two  spaces '),
    });
    expect(parse('PUT k ')).toEqual({ type: 'put', key: b('k'), value: b('') });
  });

  it('ignores blank lines', () => {
    expect(parse('')).toBeNull();
    expect(parse('   ')).toBeNull();
    expect(parse('\t')).toBeNull();
    expect(parse(' \t \t')).toBeNull();
    expect(codeOf('\tx')).toBe('KV_ERR_UNKNOWN_COMMAND');
  });

  it('rejects bad input with stable codes', () => {
    expect(codeOf('FROB x')).toBe('KV_ERR_UNKNOWN_COMMAND');
    expect(codeOf('GET')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('GET a b')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('PUT k')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('RANGE a')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('PING x')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf(`GET ${'k'.repeat(17)}`)).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('GET a\tb')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('GET a\x01')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('GET a\x7f')).toBe('KV_ERR_INVALID_KEY');
    // Only a space separates fields: a tab is part of the key, for every command alike (before,
    // PUT and SETEX answered WRONG_ARITY where GET answered INVALID_KEY).
    expect(codeOf('PUT k\tv')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('PUT k\t')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('SETEX k\t10 v')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('SETEX k\t10')).toBe('KV_ERR_INVALID_KEY');
    expect(codeOf('SETEX k 10\tv')).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(codeOf('SETEX k 10')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('PUT')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf(`PUT k ${'v'.repeat(33)}`)).toBe('KV_ERR_VALUE_TOO_LARGE');
    expect(codeOf(Buffer.from([0x47, 0x45, 0x54, 0x20, 0xc3, 0x28]))).toBe('KV_ERR_INVALID_UTF8');
    expect(codeOf('RANGE a b LIMIT 0')).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(codeOf('RANGE a b LIMIT x')).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(codeOf('RANGE a b LIMIT 101')).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(codeOf('RANGE a b LIMIT')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('PREFIX a CURSOR b')).toBe('KV_ERR_WRONG_ARITY');
    expect(codeOf('PREFIX a LIMIT 2 AFTER b')).toBe('KV_ERR_WRONG_ARITY');
  });

  it('accepts multi-byte UTF-8 keys and values', () => {
    expect(parse('PUT ключ значение 値')).toEqual({
      type: 'put',
      key: b('ключ'),
      value: b('значение 値'),
    });
  });
});

describe('encodeTextReply', () => {
  it('encodes each reply as the seed protocol does', () => {
    expect(text({ type: 'ok' })).toBe('OK\n');
    expect(text({ type: 'pong' })).toBe('PONG\n');
    expect(text({ type: 'not_found' })).toBe('NOT_FOUND\n');
    expect(text({ type: 'value', value: b('a b') })).toBe('a b\n');
    expect(text({ type: 'keys', keys: [b('a'), b('b')], paged: false, next: null })).toBe('a b\n');
    expect(text({ type: 'keys', keys: [], paged: false, next: null })).toBe('\n');
    expect(text({ type: 'keys', keys: [b('a')], paged: true, next: null })).toBe('a\nEND\n');
    expect(text({ type: 'keys', keys: [b('a')], paged: true, next: b('a') })).toBe('a\nMORE a\n');
    expect(text({ type: 'error', code: 'KV_ERR_INVALID_KEY', message: 'protocol: bad\nkey' })).toBe(
      'ERR INVALID_KEY protocol: bad key\n',
    );
  });
});
