// What an outside client can send the client port that is not a kvstore client: an HTTP request
// (a browser's cross-site POST, a server-side request forgery) runs nothing, and data a reply line
// cannot carry back (a value ending in a carriage return) is refused, never read back altered.
// And on the HTTP port, a page that reaches a node under another site's name (DNS rebinding)
// runs no admin call.

import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, logged, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { closeResp, RawResp } from '../helpers/resp-tools.ts';

const run = promisify(execFile);
let node: NodeProcess;

beforeAll(async () => {
  node = await startNodeProcess();
});

afterAll(async () => {
  closeResp();
  await cleanup();
});

async function line(): Promise<LineClient> {
  const c = await LineClient.connect(node.port);
  defer(() => c.close());
  return c;
}

async function raw(): Promise<RawResp> {
  const r = await RawResp.open('127.0.0.1', node.port);
  defer(() => r.socket.destroy());
  return r;
}

/** Sends `bytes` on a new connection and returns all it got once the node closed it. */
async function closedAfter(bytes: Buffer | string): Promise<string> {
  const r = await raw();
  r.socket.write(bytes);
  await r.until(() => r.closed);
  return r.data.toString('latin1');
}

async function get(key: string): Promise<string> {
  return (await line()).call(`GET ${key}`);
}

async function rejected(reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
  const series = `kvstore_connections_rejected_total{reason="${reason}"} `;
  const found = text.split('\n').find((l) => l.startsWith(series));
  return found === undefined ? Number.NaN : Number(found.slice(series.length));
}

function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

const REFUSED = /^ERR PROTOCOL server: this looks like an HTTP request/;

describe('an HTTP request on the client port', () => {
  it("a browser's cross-site POST runs none of the commands in its body", async () => {
    const c = await line();
    expect(await c.call('PUT victim safe')).toBe('OK');
    const before = await rejected('http_request');
    // What a page elsewhere makes a browser send with fetch(..., {method: 'POST', mode: 'no-cors',
    // body}): a simple request, no preflight, so the browser sends it to any port it may reach.
    const body = 'PUT pwned yes\nREMOVE victim\n';
    const post = [
      'POST / HTTP/1.1',
      `Host: 127.0.0.1:${node.port}`,
      'Connection: keep-alive',
      `Content-Length: ${body.length}`,
      'Origin: https://attacker.example',
      'Content-Type: text/plain;charset=UTF-8',
      '',
      body,
    ].join('\r\n');
    const got = await closedAfter(post);
    expect(got.split('\n').filter(Boolean)).toHaveLength(1);
    expect(got).toMatch(REFUSED);
    expect(await get('pwned')).toBe('NOT_FOUND');
    expect(await get('victim')).toBe('safe');
    expect(await rejected('http_request')).toBe(before + 1);
  });

  it('curl: a POST body and a PUT request line write nothing', async () => {
    const url = `http://127.0.0.1:${node.port}/ssrf-key`;
    const curl = (args: string[]) =>
      run('curl', ['-s', '--max-time', '10', '--http1.1', ...args, url]).then(
        (r) => r.stdout,
        (e: { stdout?: string }) => e.stdout ?? '', // curl exits non-zero: not an HTTP reply
      );
    await curl(['--data-binary', 'PUT curl-pwned yes\n']);
    // A server-side request forgery with the method PUT: `PUT /ssrf-key HTTP/1.1` is a valid
    // text command (key /ssrf-key, value HTTP/1.1) unless it is taken for a request line.
    await curl(['-X', 'PUT', '--data-binary', 'x']);
    expect(await get('curl-pwned')).toBe('NOT_FOUND');
    expect(await get('/ssrf-key')).toBe('NOT_FOUND');
  });

  it('a Host: header alone closes the connection, after the replies to what came before', async () => {
    const got = await closedAfter('PING\nHost: example\nPUT after-host x\n');
    const lines = got.split('\n');
    expect(lines[0]).toBe('PONG');
    expect(lines[1]).toMatch(REFUSED);
    expect(lines.slice(2).join('')).toBe('');
    expect(await get('after-host')).toBe('NOT_FOUND');
  });

  it('RESP: a command named POST or Host: closes the connection, as Redis does', async () => {
    for (const name of ['POST', 'host:']) {
      const got = await closedAfter(
        resp('PING') + resp(name, '/') + resp('SET', 'resp-after', 'x'),
      );
      expect(got).toMatch(
        /^\+PONG\r\n-ERR PROTOCOL server: this looks like an HTTP request[^\r\n]*\r\n$/,
      );
    }
    expect(await get('resp-after')).toBe('NOT_FOUND');
  });

  it('values and keys that merely contain HTTP words are data as before', async () => {
    const c = await line();
    expect(await c.call('PUT http-value GET / HTTP/1.1')).toBe('OK');
    expect(await c.call('GET http-value')).toBe('GET / HTTP/1.1');
    expect(await c.call('PUT post x')).toBe('OK');
    expect(await c.call('PUT Host:x y')).toBe('OK');
    expect(await c.call('GET Host:x')).toBe('y');
    expect(await c.call('PING')).toBe('PONG');
  });
});

describe('a value ending in a carriage return', () => {
  it('is NOT_REPRESENTABLE on a text GET, never read back without it', async () => {
    const r = await raw();
    r.socket.write(resp('SET', 'cr-value', 'x\r') + resp('SET', 'cr-inside', 'a\rb'));
    expect(await r.text(10)).toBe('+OK\r\n+OK\r\n');
    const c = await line();
    expect(await c.call('GET cr-value')).toMatch(/^ERR NOT_REPRESENTABLE /);
    // A carriage return inside a value is not a line's end: it reads back as it is.
    c.send('GET cr-inside\n');
    const inside = await c.lines(1);
    expect(inside).toEqual(['a\rb']);
    // The project's own client reads lines as the protocol defines them (one \r before \n is
    // the terminator's): before, it answered 'x' for the value 'x\r'.
    const client = await KvClient.connect({ port: node.port });
    defer(() => client.close());
    await expect(client.get('cr-value')).rejects.toMatchObject({ code: 'NOT_REPRESENTABLE' });
  });

  it('is refused by a text PUT or SETEX, which could not read it back', async () => {
    const c = await line();
    c.send('PUT cr-put x\r\r\nSETEX cr-setex 100 y\r\r\n');
    const [put, setex] = await c.lines(2);
    expect(put).toMatch(/^ERR NOT_REPRESENTABLE .*carriage return/);
    expect(setex).toMatch(/^ERR NOT_REPRESENTABLE .*carriage return/);
    expect(await c.call('GET cr-put')).toBe('NOT_FOUND');
    expect(await c.call('GET cr-setex')).toBe('NOT_FOUND');
    // One \r before \n ends the line, as always: the value is 'v'.
    c.send('PUT cr-crlf v\r\n');
    expect(await c.lines(1)).toEqual(['OK']);
    expect(await c.call('GET cr-crlf')).toBe('v');
  });
});

describe('--max-line-bytes at its floor (key + value + 8)', () => {
  it('still reads every valid command: SETEX and a paged RANGE of the longest keys', async () => {
    // 8-byte keys, 16-byte values, 32-byte lines: a PUT of both fits (29 bytes), a SETEX with
    // the largest seconds is 45 and a paged RANGE of three such keys 49.
    const small = await startNodeProcess({
      args: ['--max-key-bytes', '8', '--max-value-bytes', '16', '--max-line-bytes', '32'],
    });
    const c = await LineClient.connect(small.port);
    defer(() => c.close());
    const [k, v] = ['k'.repeat(8), 'v'.repeat(16)];
    expect(await c.call(`SETEX ${k} 9007199254740 ${v}`)).toBe('OK');
    c.send(`RANGE ${k} ${k} LIMIT 10000 CURSOR ${'a'.repeat(8)}\n`);
    expect(await c.lines(2)).toEqual([k, 'END']);
    // Past the longest valid command, a line is still too long.
    expect(await c.call(`PUT ${k} ${'v'.repeat(64)}`)).toMatch(/^ERR LINE_TOO_LONG /);
  });
});

/** One request to the node's HTTP port with the headers given (Host included), on its own connection. */
function http(
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: node.httpPort, method, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('a page that reaches the HTTP port under another name (DNS rebinding)', () => {
  const rebound = () => ({
    host: `rebind.attacker.example:${node.httpPort}`,
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'cors',
  });

  it('reads no backup and decommissions nothing on a node without a cluster secret', async () => {
    const c = await line();
    expect(await c.call('PUT rebind-secret data')).toBe('OK');
    // The page's own origin is http://rebind.attacker.example:<port>: same-origin for the
    // browser once the name points at the node, so the cross-site check let it through.
    const backup = await http('GET', '/admin/backup', rebound());
    expect(backup.status).toBe(403);
    expect(backup.body).toMatch(/DNS rebinding/);
    expect(backup.body).not.toContain('rebind-secret');
    const origin = `http://rebind.attacker.example:${node.httpPort}`;
    const decommission = await http('POST', '/admin/decommission', { ...rebound(), origin });
    expect(decommission.status).toBe(403);
    const status = await http('GET', '/admin/decommission', {});
    expect(JSON.parse(status.body)).toMatchObject({ status: 'active' });
  });

  it('answers the console by address or localhost, and kvctl or the operator by any name', async () => {
    const page = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' };
    for (const host of [`127.0.0.1:${node.httpPort}`, `localhost:${node.httpPort}`]) {
      expect((await http('GET', '/admin/cluster', { ...page, host })).status).toBe(200);
    }
    // No Sec-Fetch-Site nor Origin: not a page (kvctl, the operator through a Service name).
    const svc = { host: `kvstore-0.kvstore.default.svc:${node.httpPort}` };
    expect((await http('GET', '/admin/cluster', svc)).status).toBe(200);
    // An address typed into the browser is its user's own.
    const typed = { host: `rebind.attacker.example:${node.httpPort}`, 'sec-fetch-site': 'none' };
    expect((await http('GET', '/admin/cluster', typed)).status).toBe(200);
  });
});

describe('an admin call whose client leaves before its body ends', () => {
  it('is a warning of the client, not an error of the node', async () => {
    const r = await RawResp.open('127.0.0.1', node.httpPort);
    defer(() => r.socket.destroy());
    // Expect: 100-continue: the node answers once it has the headers and runs the route.
    r.socket.write(
      'POST /admin/restore/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n',
    );
    await r.until(() => r.data.toString().includes('100 Continue'));
    r.socket.write('abc');
    r.socket.destroy();
    const warned = await logged(node, 'admin call ended: the client went away before its body');
    expect(warned.path).toBe('/admin/restore/batch');
    // Before, the same call logged 'admin call failed' at error level with Node's 'aborted' stack.
    expect(node.logs.filter((l) => l.level === 50)).toEqual([]);
  });
});
