// Which client-port lines are taken for an HTTP request (protocol/http-request.ts): what browsers
// and HTTP clients send first, and nothing a kvstore client sends.

import { describe, expect, it } from 'vitest';
import { httpCommandName, httpRequestLine } from '../../src/protocol/index.ts';

const is = (line: string) => httpRequestLine(Buffer.from(line, 'latin1'));

describe('httpRequestLine', () => {
  it('takes request lines and the Host: header for HTTP', () => {
    for (const line of [
      'POST / HTTP/1.1',
      'POST',
      'post /x',
      'Host: 127.0.0.1:8081',
      'host:x',
      '  HOST: x',
      'GET / HTTP/1.1',
      'PUT /ssrf-key HTTP/1.1',
      'PUT key HTTP/1.0',
      'DELETE /a?b=c HTTP/1.1',
      'OPTIONS * HTTP/1.1',
      'PRI * HTTP/2.0',
      'X / HTTP/1.1',
    ]) {
      expect(is(line), line).toBe(true);
    }
  });

  it('leaves every other line to the text protocol', () => {
    for (const line of [
      '',
      'PING',
      'GET key',
      'PUT key value',
      'PUT key GET / HTTP/1.1', // a value holding a request line: four fields
      'PUT  key HTTP/1.1', // two spaces: not a request line
      ' GET / HTTP/1.1', // a leading space: not a request line
      'GET / HTTP/1.1 ',
      'GET / HTTP/1.x',
      'GET / HTTPS/1.1',
      'GET  HTTP/1.1',
      'PUT post x',
      'PUT Host: x',
      'POSTS a b',
      'Hosts: x',
      'PREFIX HTTP/1.1',
    ]) {
      expect(is(line), line).toBe(false);
    }
  });

  it('names RESP commands POST and Host: (any case) only', () => {
    for (const [name, want] of [
      ['POST', true],
      ['post', true],
      ['Host:', true],
      ['HOST:', true],
      ['host:example', true],
      ['HOST', false],
      ['POSTS', false],
      ['GET', false],
      ['', false],
    ] as const) {
      expect(httpCommandName(Buffer.from(name)), name).toBe(want);
    }
  });
});
