// Unit tests of the client's pure parts: request checks and reply readers.

import { describe, expect, it } from 'vitest';
import { KvClientError } from '../../src/client/errors.ts';
import {
  couldBeKeys,
  errorFromLine,
  GET_READER,
  isErrorLine,
  PUT_READER,
  RawReader,
  REMOVE_READER,
  readTrailer,
  ScanReader,
} from '../../src/client/replies.ts';
import { checkKey, checkValue, rawShape, scanShape, scanSuffix } from '../../src/client/request.ts';

const b = (s: string) => Buffer.from(s);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KvClientError);
    return (err as KvClientError).code;
  }
  throw new Error('did not throw');
}

describe('request checks', () => {
  it('accepts keys the node accepts and rejects the rest with INVALID_KEY', () => {
    expect(checkKey('user:1')).toBe('user:1');
    expect(checkKey('ключ')).toBe('ключ');
    for (const bad of ['', 'a b', 'a\nb', 'a\tb', 'a\rb', 'a\x7fb', '\x00', 'a\ud800']) {
      expect(codeOf(() => checkKey(bad))).toBe('INVALID_KEY');
    }
  });

  it('accepts values with spaces and rejects newlines, a trailing CR, bad UTF-8', () => {
    expect(checkValue('a b  c')).toBe('a b  c');
    expect(checkValue('')).toBe('');
    expect(checkValue('a\rb')).toBe('a\rb');
    expect(checkValue(b('héllo'))).toBe('héllo');
    for (const bad of ['a\nb', 'ab\r', 'x\udc00', Buffer.from([0xff, 0xfe])]) {
      expect(codeOf(() => checkValue(bad))).toBe('INVALID_VALUE');
    }
  });

  it('builds LIMIT/CURSOR suffixes and rejects bad paging options', () => {
    expect(scanSuffix(undefined)).toBe('');
    expect(scanSuffix({ limit: 10 })).toBe(' LIMIT 10');
    expect(scanSuffix({ limit: 10, cursor: 'k5' })).toBe(' LIMIT 10 CURSOR k5');
    expect(codeOf(() => scanSuffix({ cursor: 'k' }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => scanSuffix({ limit: 0 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => scanSuffix({ limit: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => scanSuffix({ limit: 2, cursor: 'a b' }))).toBe('INVALID_KEY');
  });

  it('reads the reply shape of raw lines like the node parses them', () => {
    expect(rawShape('GET a')).toEqual({ quit: false, paged: false, scan: null });
    expect(rawShape('quit').quit).toBe(true);
    expect(rawShape('RANGE a z').paged).toBe(false);
    const r = rawShape('  range  a z  limit 5 cursor c');
    expect(r.paged).toBe(true);
    expect(r.scan).toEqual({ start: b('a'), end: b('z'), prefix: null, after: b('c'), limit: 5 });
    const p = rawShape('PREFIX us LIMIT x');
    expect(p.paged).toBe(true);
    expect(p.scan?.limit).toBeNull();
    expect(p.scan?.prefix).toEqual(b('us'));
  });
});

describe('reply readers', () => {
  it('parses error lines into remote KvClientErrors', () => {
    const line = b('ERR INVALID_KEY protocol: key is empty');
    expect(isErrorLine(line)).toBe(true);
    const err = errorFromLine(line);
    expect(err.code).toBe('INVALID_KEY');
    expect(err.message).toBe('protocol: key is empty');
    expect(err.remote).toBe(true);
    expect(isErrorLine(b('ERR'))).toBe(false);
    expect(isErrorLine(b('ERR lower case'))).toBe(false);
    expect(isErrorLine(b('ERRATA'))).toBe(false);
  });

  it('maps one-line replies and flags a reply that does not fit as PROTOCOL', () => {
    expect(PUT_READER.read(b('OK'), null)).toBeUndefined();
    expect(codeOf(() => PUT_READER.read(b('NOT_FOUND'), null))).toBe('PROTOCOL');
    expect(codeOf(() => PUT_READER.read(b('ERR STORAGE storage: full'), null))).toBe('STORAGE');
    expect(REMOVE_READER.read(b('OK'), null)).toBe(true);
    expect(REMOVE_READER.read(b('NOT_FOUND'), null)).toBe(false);
    expect(codeOf(() => REMOVE_READER.read(b('PONG'), null))).toBe('PROTOCOL');
    expect(GET_READER.read(b('NOT_FOUND'), null)).toBeNull();
    expect(GET_READER.read(b(''), null)).toBe('');
    expect(GET_READER.read(b('OK then'), null)).toBe('OK then');
    expect(GET_READER.read(b('ERRAND boy'), null)).toBe('ERRAND boy');
  });

  it('reads END and MORE trailers', () => {
    expect(readTrailer(b('END'))).toBeNull();
    expect(readTrailer(b('MORE k9'))).toBe('k9');
    expect(codeOf(() => readTrailer(b('MORE ')))).toBe('PROTOCOL');
    expect(codeOf(() => readTrailer(b('a b')))).toBe('PROTOCOL');
    expect(codeOf(() => readTrailer(null))).toBe('PROTOCOL');
  });

  it('tells a keys line that starts with ERR from an error line', () => {
    const wide = scanShape('A', 'z', false, { limit: 100 });
    expect(couldBeKeys(b('ERR INVALID_KEY'), wide)).toBe(true);
    expect(couldBeKeys(b('ERR INVALID_ARGUMENT protocol: LIMIT 5 is above the cap'), wide)).toBe(
      false,
    );
    // Not ascending, duplicated, out of range, over the limit, not after the cursor:
    expect(couldBeKeys(b('ERR ABC'), wide)).toBe(false);
    expect(couldBeKeys(b('ERR ERR'), wide)).toBe(false);
    expect(couldBeKeys(b('ERR Z{'), scanShape('A', 'Z', false, undefined))).toBe(false);
    expect(couldBeKeys(b('ERR X Y'), scanShape('A', 'z', false, { limit: 2 }))).toBe(false);
    expect(couldBeKeys(b('ERR X'), scanShape('A', 'z', false, { limit: 2, cursor: 'F' }))).toBe(
      false,
    );
    expect(couldBeKeys(b('ERR ERRX'), scanShape('ER', null, true, undefined))).toBe(true);
    expect(couldBeKeys(b('ERR INVALID_KEY'), scanShape('ER', null, true, undefined))).toBe(false);
  });

  it('reads paged and unpaged scans, with a second line only for a paged non-error', () => {
    const paged = new ScanReader(scanShape('a', 'z', false, { limit: 2 }));
    expect(paged.hasSecondLine(b('a b'))).toBe(true);
    expect(paged.hasSecondLine(b(''))).toBe(true);
    expect(paged.read(b('a b'), b('MORE b'))).toEqual({ keys: ['a', 'b'], next: 'b' });
    expect(paged.read(b(''), b('END'))).toEqual({ keys: [], next: null });
    const err = b('ERR INVALID_ARGUMENT protocol: LIMIT 2 is above the cap of 1');
    expect(paged.hasSecondLine(err)).toBe(false);
    expect(codeOf(() => paged.read(err, null))).toBe('INVALID_ARGUMENT');

    const upper = new ScanReader(scanShape('A', 'Z', false, { limit: 3 }));
    expect(upper.hasSecondLine(b('ERR INVALID_KEY'))).toBe(true);
    expect(upper.read(b('ERR INVALID_KEY'), b('END')).keys).toEqual(['ERR', 'INVALID_KEY']);

    const unpaged = new ScanReader(scanShape('p', 'p', true, undefined));
    expect(unpaged.hasSecondLine(b('p1 p2'))).toBe(false);
    expect(unpaged.read(b('p1 p2'), null)).toEqual({ keys: ['p1', 'p2'], next: null });
    expect(codeOf(() => unpaged.read(b('ERR LIMIT_EXCEEDED coordinator: too many'), null))).toBe(
      'LIMIT_EXCEEDED',
    );
  });

  it('gives raw replies as text, errors included, joining a paged reply', () => {
    const shape = rawShape('RANGE a z LIMIT 1');
    const raw = new RawReader(shape.paged, shape.scan);
    expect(raw.hasSecondLine(b('a'))).toBe(true);
    expect(raw.read(b('a'), b('MORE a'))).toBe('a\nMORE a');
    const err = b('ERR WRONG_ARITY protocol: expected [LIMIT n [CURSOR key]]');
    expect(raw.hasSecondLine(err)).toBe(false);
    expect(raw.read(err, null)).toBe(err.toString());
    const get = new RawReader(false, null);
    expect(get.hasSecondLine(b('x'))).toBe(false);
  });
});
