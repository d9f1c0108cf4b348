// RESP2 on the client port, driven by real clients: redis-cli, ioredis, redis-benchmark.

import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterNode, startStaticCluster } from '../helpers/cluster.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import {
  closeResp,
  ioredis,
  RawResp,
  redisCli,
  runTool,
  type ToolResult,
} from '../helpers/resp-tools.ts';

const HOST = '127.0.0.1';
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

afterAll(async () => {
  closeResp();
  await cleanup();
});

/** Every key SCAN returns from `r` for `match`, as latin1 strings, in SCAN order. */
async function scanAll(r: Redis, match?: string): Promise<string[]> {
  const stream = r.scanBufferStream({ ...(match ? { match } : {}), count: 7 });
  const keys: string[] = [];
  for await (const batch of stream)
    for (const k of batch as Buffer[]) keys.push(k.toString('latin1'));
  return keys;
}

function benchmark(host: string, port: number): Promise<ToolResult> {
  return runTool('redis-benchmark', [
    '-h',
    host,
    '-p',
    String(port),
    '-t',
    'set,get',
    '-n',
    '2000',
    '-q',
  ]);
}

function expectBenchmarkOk(res: ToolResult): void {
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(/SET: [\d.]+ requests per second/);
  expect(res.stdout).toMatch(/GET: [\d.]+ requests per second/);
  expect(`${res.stdout}${res.stderr}`).not.toMatch(/Error|ERR/);
}

describe('RESP2 on one node', () => {
  let node: NodeProcess;
  const cli = (...args: string[]) => redisCli(HOST, node.port, args);

  beforeAll(async () => {
    node = await startNodeProcess({
      args: ['--max-key-bytes', '64', '--max-value-bytes', '256', '--max-scan-keys', '50'],
    });
  });

  afterAll(async () => {
    await node.stop();
  });

  it('redis-cli one-shot commands get Redis-shaped replies', async () => {
    const cases: [string[], string][] = [
      [['SET', 'greeting', 'hello world'], 'OK'],
      [['GET', 'greeting'], 'hello world'],
      [['GET', 'missing'], ''],
      [['EXISTS', 'greeting', 'missing', 'greeting'], '2'],
      [['MSET', 'm:1', 'a', 'm:2', 'b'], 'OK'],
      [['MGET', 'm:1', 'missing', 'm:2'], 'a\n\nb'],
      [['DEL', 'm:1', 'm:2', 'm:1', 'missing'], '2'],
      [['MGET', 'm:1'], ''],
      [['PUT', 'r:1', 'x'], 'OK'],
      [['MSET', 'r:2', 'y', 'r:3', 'z'], 'OK'],
      [['RANGE', 'r:1', 'r:2'], 'r:1\nr:2'],
      [['PREFIX', 'r:', 'LIMIT', '2'], 'r:1\nr:2\nr:2'],
      [['PREFIX', 'r:', 'LIMIT', '2', 'CURSOR', 'r:2'], 'r:3\n'],
      [['REMOVE', 'r:3'], 'OK'],
      [['REMOVE', 'r:3'], ''],
      [['KEYS', 'r:*'], 'r:1\nr:2'],
      [['PING'], 'PONG'],
      [['PING', 'hi there'], 'hi there'],
      [['ECHO', 'echo'], 'echo'],
      [['SELECT', '0'], 'OK'],
      [['SELECT', '1'], 'ERR DB index is out of range'],
      [['SET', 'k', 'v', 'EX', '10', 'PX', '10'], 'ERR syntax error'],
      [['GET'], "ERR wrong number of arguments for 'get' command"],
      [['FLY', 'away'], "ERR unknown command 'FLY', with args beginning with: 'away'"],
      [['CLUSTER', 'INFO'], 'ERR This instance has cluster support disabled'],
      [['HELLO', '4'], 'NOPROTO unsupported protocol version'],
      [
        ['SCAN', '0', 'MATCH', 'r?*'],
        "ERR INVALID_ARGUMENT protocol: MATCH supports only a literal prefix followed by '*'",
      ],
      [['CLIENT', 'ID'], expect.stringMatching(/^\d+$/) as unknown as string],
    ];
    for (const [args, want] of cases) {
      const res = await cli(...args);
      expect(res.stdout.trim(), args.join(' ')).toEqual(
        typeof want === 'string' ? want.trim() : want,
      );
    }
    const cluster = JSON.parse((await cli('CLUSTER')).stdout) as { node: string };
    expect(cluster.node).toBe('test-node');
  });

  it("refuses a client name, lib-name or lib-ver over 1024 bytes: each is kept for the connection's life", async () => {
    // Unbounded, 300 connections that each set 1 MiB of the three grew a node by 620 MiB.
    const long = 'n'.repeat(1025);
    for (const [args, what] of [
      [['CLIENT', 'SETNAME', long], 'name'],
      [['CLIENT', 'SETINFO', 'LIB-NAME', long], 'LIB-NAME'],
      [['CLIENT', 'SETINFO', 'lib-ver', long], 'LIB-VER'],
      [['HELLO', '2', 'SETNAME', long], 'name'],
    ] as const) {
      expect((await cli(...args)).stdout.trim(), `${args[0]} ${args[1]} ${what}`).toBe(
        `ERR INVALID_ARGUMENT protocol: a client ${what} is at most 1024 bytes, not 1025`,
      );
    }
    expect((await cli('CLIENT', 'SETNAME', 'n'.repeat(1024))).stdout.trim()).toBe('OK');
    expect((await cli('CLIENT', 'SETINFO', 'LIB-VER', 'v'.repeat(1024))).stdout.trim()).toBe('OK');
  });

  it('redis-cli reads a script of commands from stdin (after its COMMAND DOCS handshake)', async () => {
    const script = [
      'SET script:a 1',
      'GET script:a',
      'CLIENT SETNAME tester',
      'CLIENT GETNAME',
      'DEL script:a',
      'GET script:a',
      'DBSIZE',
    ];
    const res = await redisCli(HOST, node.port, [], `${script.join('\n')}\n`);
    expect(res.code).toBe(0);
    const lines = res.stdout.split('\n');
    expect(lines.slice(0, 6)).toEqual(['OK', '1', 'OK', 'tester', '1', '']);
    expect(lines[6]).toMatch(/^\d+$/);
  });

  it('INFO has the server, clients, replication and keyspace sections; DBSIZE matches SCAN', async () => {
    const r = await ioredis(HOST, node.port);
    await r.mset('info:a', '1', 'info:b', '2');
    const info = await r.info();
    expect(info).toMatch(/^# Server\r\n/);
    expect(info).toContain(`tcp_port:${node.port}\r\n`);
    expect(info).toMatch(/kvstore_version:\d+\.\d+\.\d+\r\n/);
    expect(info).toMatch(/# Clients\r\nconnected_clients:[1-9]\d*\r\n/);
    expect(info).toMatch(/# Replication\r\nrole:master\r\n/);
    expect(info).toContain('kvstore_members:1\r\n');
    const keys = await scanAll(r);
    expect(info).toContain(`# Keyspace\r\ndb0:keys=${keys.length},expires=0,avg_ttl=0\r\n`);
    expect(await r.dbsize()).toBe(keys.length);
    expect(await r.info('keyspace')).toBe(
      `# Keyspace\r\ndb0:keys=${keys.length},expires=0,avg_ttl=0\r\n`,
    );
  });

  it('ioredis: set/get/del/exists/mget/mset', async () => {
    const r = await ioredis(HOST, node.port);
    expect(await r.set('io:a', 'alpha')).toBe('OK');
    expect(await r.get('io:a')).toBe('alpha');
    expect(await r.get('io:none')).toBeNull();
    expect(await r.mset({ 'io:b': 'beta', 'io:c': 'gamma' })).toBe('OK');
    expect(await r.mget('io:a', 'io:none', 'io:c')).toEqual(['alpha', null, 'gamma']);
    expect(await r.exists('io:a', 'io:b', 'io:none')).toBe(2);
    expect(await r.del('io:a', 'io:b', 'io:none')).toBe(2);
    expect(await r.exists('io:a', 'io:b', 'io:c')).toBe(1);
    await expect(r.call('SET', 'io:x', 'y', 'EX', '10', 'PX', '10')).rejects.toThrow(
      'ERR syntax error',
    );
    await expect(r.get('')).rejects.toThrow(/^ERR INVALID_KEY /);
    await expect(r.set('io:big', 'v'.repeat(300))).rejects.toThrow(/^ERR VALUE_TOO_LARGE /);
    expect(await r.ping()).toBe('PONG');
  });

  it('ioredis: a pipeline of 1000 commands answers in order, reads seeing earlier writes', async () => {
    const r = await ioredis(HOST, node.port);
    const p = r.pipeline();
    for (let i = 0; i < 500; i++) p.set(`pipe:${i}`, `v${i}`).get(`pipe:${i}`);
    const results = await p.exec();
    expect(results).toHaveLength(1000);
    results!.forEach(([err, value], i) => {
      expect(err).toBeNull();
      expect(value).toBe(i % 2 === 0 ? 'OK' : `v${(i - 1) / 2}`);
    });
  });

  it('ioredis: SCAN streams every matching key exactly once; KEYS is bounded', async () => {
    const r = await ioredis(HOST, node.port);
    const names = Array.from({ length: 120 }, (_, i) => `scan:${String(i).padStart(3, '0')}`);
    await r.mset(...names.flatMap((k) => [k, 'v']));
    await r.set('scanx', 'not matched');
    expect(await scanAll(r, 'scan:*')).toEqual(names);
    const all = await scanAll(r);
    expect(all).toEqual([...all].sort());
    expect(all).toEqual(expect.arrayContaining([...names, 'scanx']));
    await expect(r.keys('scan:*')).rejects.toThrow(/^ERR LIMIT_EXCEEDED /);
    expect(await r.keys('scan:01*')).toEqual(names.slice(10, 20));
    const cliScan = await redisCli(HOST, node.port, ['--scan', '--pattern', 'scan:*']);
    expect(cliScan.stdout.trim().split('\n')).toEqual(names);
    // TYPE: every key is a string (before: ERR syntax error).
    const typed: string[] = [];
    for await (const batch of r.scanStream({ match: 'scan:*', type: 'string', count: 7 }))
      typed.push(...(batch as string[]));
    expect(typed).toEqual(names);
    expect(await r.call('SCAN', '0', 'MATCH', 'scan:*', 'TYPE', 'hash')).toEqual(['0', []]);
  });

  it('keys and values are binary-safe: every byte 0x00..0xff through ioredis Buffers', async () => {
    const r = await ioredis(HOST, node.port);
    const key = (b: number) => Buffer.from([0x62, 0x69, 0x6e, 0x3a, b, 0xff - b, 0x0d, 0x0a]); // bin:..
    const value = (b: number) => Buffer.concat([ALL_BYTES.subarray(b), ALL_BYTES.subarray(0, b)]);
    const p = r.pipeline();
    for (let b = 0; b < 256; b++) p.set(key(b), value(b));
    for (const [err, res] of (await p.exec())!) expect([err, res]).toEqual([null, 'OK']);
    for (const b of [0, 10, 13, 32, 127, 128, 255])
      expect(await r.getBuffer(key(b))).toEqual(value(b));
    expect(await r.mgetBuffer(key(0), Buffer.from('bin:none'), key(255))).toEqual([
      value(0),
      null,
      value(255),
    ]);
    const scanned = await scanAll(r, 'bin:*');
    const expected = Array.from({ length: 256 }, (_, b) => key(b)).sort(Buffer.compare);
    expect(scanned).toEqual(expected.map((k) => k.toString('latin1')));
    const viaPrefix = (await r.callBuffer('PREFIX', 'bin:', 'LIMIT', '50')) as [Buffer[], Buffer];
    expect(viaPrefix[0]).toEqual(expected.slice(0, 50));
    expect(viaPrefix[1]).toEqual(expected[49]);
    // The text protocol cannot carry these keys or values on a line: it says so, and keeps going.
    const line = await LineClient.connect(node.port);
    try {
      expect(await line.call('PREFIX bin: LIMIT 10')).toMatch(/^ERR NOT_REPRESENTABLE /);
      await r.set('text:newline', 'two\nlines');
      expect(await line.call('GET text:newline')).toMatch(/^ERR NOT_REPRESENTABLE /);
      await r.set('text:plain', 'one line');
      expect(await line.call('GET text:plain')).toBe('one line');
      expect(await line.call('PUT text:fromtext spaced value')).toBe('OK');
      expect(await r.get('text:fromtext')).toBe('spaced value');
    } finally {
      line.close();
    }
    expect(await r.del(...expected)).toBe(256);
    expect(await scanAll(r, 'bin:*')).toEqual([]);
  });

  it('a malformed frame gets one protocol error after the earlier replies, then the connection closes', async () => {
    const a = await RawResp.open(HOST, node.port);
    a.socket.write('*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n*1\r\n$4\r\nPING\r\n');
    await a.until(() => a.closed);
    expect(a.data.toString()).toBe('+PONG\r\n-ERR Protocol error: invalid bulk length\r\n');
    // An oversized bulk is refused at its header, before its bytes are sent.
    const b = await RawResp.open(HOST, node.port);
    b.socket.write('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999\r\n');
    await b.until(() => b.closed);
    expect(b.data.toString()).toBe('-ERR Protocol error: invalid bulk length\r\n');
  });

  it('a malformed command gets one error and the connection goes on; QUIT closes', async () => {
    const c = await RawResp.open(HOST, node.port);
    c.socket.write(
      '*2\r\n$3\r\nGET\r\n$0\r\n\r\n*1\r\n$5\r\nHELLO\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n',
    );
    await c.until(() => c.closed);
    const text = c.data.toString();
    expect(text).toMatch(/^-ERR INVALID_KEY protocol: key is empty\r\n\*14\r\n\$6\r\nserver\r\n/);
    expect(text.endsWith('+PONG\r\n+OK\r\n')).toBe(true);
  });

  it('pipelined GETs answer in order around writes, expiry, TYPE and RESP3, and are counted', async () => {
    const metric = async (series: string) => {
      const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
      return Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.split(' ')[1],
      );
    };
    const gets = () => metric('kvstore_requests_total{command="get"}');
    const timed = () => metric('kvstore_request_duration_seconds_count{command="get"}');
    const [getsBefore, timedBefore] = [await gets(), await timed()];
    const req = (...args: string[]) =>
      `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    const c = await RawResp.open(HOST, node.port);
    c.socket.write(
      req('SET', 'fast:a', 'one') +
        req('SET', 'fast:gone', 'x', 'PX', '1') +
        req('SET', 'fast:empty', '') +
        req('GET', 'fast:a') +
        req('SET', 'fast:a', 'two') +
        req('GET', 'fast:a') +
        req('TYPE', 'fast:a') +
        req('DEL', 'fast:a') +
        req('GET', 'fast:a') +
        req('GET', 'fast:empty'),
    );
    const first =
      '+OK\r\n+OK\r\n+OK\r\n$3\r\none\r\n+OK\r\n$3\r\ntwo\r\n+string\r\n:1\r\n$-1\r\n$0\r\n\r\n';
    await c.until(() => c.data.length >= first.length);
    expect(c.data.toString()).toBe(first);
    await new Promise((r) => setTimeout(r, 20)); // fast:gone expires
    c.data = Buffer.alloc(0);
    c.socket.write(
      req('GET', 'fast:gone') +
        req('HELLO', '3') +
        req('GET', 'fast:gone') +
        req('GET', 'fast:empty'),
    );
    await c.until(() => c.data.toString().endsWith('_\r\n$0\r\n\r\n'));
    expect(c.data.toString()).toMatch(/^\$-1\r\n%\d+\r\n[\s\S]*_\r\n\$0\r\n\r\n$/);
    // Seven GETs and a TYPE (a GET with a shape): each counted and timed, however answered.
    expect(await gets()).toBe(getsBefore + 8);
    expect(await timed()).toBe(timedBefore + 8);
    const list = (await cli('CLIENT', 'LIST')).stdout;
    expect(list).toMatch(/ cmd=get .*resp=3 /);
  });

  it('redis-benchmark -t set,get runs clean and its writes are there', {
    timeout: 120_000,
  }, async () => {
    expectBenchmarkOk(await benchmark(HOST, node.port));
    // Its value is 3 random printable bytes (-d 3).
    expect((await cli('GET', 'key:__rand_int__')).stdout).toMatch(/^[!-~]{3}\n$/);
  });
});

describe('RESP2 on a 3-node cluster (any node, server-side forwarding)', () => {
  let nodes: ClusterNode[];

  beforeAll(async () => {
    nodes = await startStaticCluster(3);
  }, 60_000);

  it('writes through one node are read, scanned and counted through every node', async () => {
    const [a, b, c] = await Promise.all(nodes.map((n) => ioredis(n.host, n.proc.port)));
    const names = Array.from({ length: 100 }, (_, i) => `c:${String(i).padStart(3, '0')}`);
    expect(await a!.mset(...names.flatMap((k) => [k, `v-${k}`]))).toBe('OK');
    expect(await b!.mget(...names.slice(0, 5))).toEqual(names.slice(0, 5).map((k) => `v-${k}`));
    expect(await c!.get('c:099')).toBe('v-c:099');
    for (const r of [a!, b!, c!]) expect(await scanAll(r, 'c:*')).toEqual(names);
    expect(await scanAll(b!)).toEqual(names); // no MATCH: every key, from every member
    // RF=3 on 3 nodes: every node holds every key, so the estimate is exact once replicas caught up.
    for (const r of [a!, b!, c!])
      await expect.poll(() => r.dbsize(), { timeout: 20_000 }).toBe(100);
    expect(await c!.del('c:000', 'c:001', 'missing')).toBe(2);
    expect(await a!.exists('c:000', 'c:001', 'c:002')).toBe(1);
    const info = await b!.info('replication');
    expect(info).toContain('kvstore_members:3\r\nkvstore_members_up:3\r\n');
    expect(info).toContain('kvstore_replication_factor:3\r\n');
    expect(info).toContain('kvstore_refusing:none\r\n');
  });

  it('redis-cli and redis-benchmark work against any node', { timeout: 120_000 }, async () => {
    const [n0, n1, n2] = nodes;
    expect((await redisCli(n0!.host, n0!.proc.port, ['SET', 'cli:k', 'from-0'])).stdout).toBe(
      'OK\n',
    );
    expect((await redisCli(n2!.host, n2!.proc.port, ['GET', 'cli:k'])).stdout).toBe('from-0\n');
    expectBenchmarkOk(await benchmark(n1!.host, n1!.proc.port));
    const written = await redisCli(n2!.host, n2!.proc.port, ['GET', 'key:__rand_int__']);
    expect(written.stdout).toMatch(/^[!-~]{3}\n$/);
  });

  it('a write that cannot reach its quorum is -ERR UNAVAILABLE, never +OK', async () => {
    const r = await ioredis(nodes[0]!.host, nodes[0]!.proc.port);
    await Promise.all([nodes[1]!.proc.stop('SIGKILL'), nodes[2]!.proc.stop('SIGKILL')]);
    await expect(r.set('quorum:k', 'v')).rejects.toThrow(
      /^ERR UNAVAILABLE replication: write quorum/,
    );
    await expect(r.get('quorum:k')).rejects.toThrow(/^ERR UNAVAILABLE /);
  });
});
