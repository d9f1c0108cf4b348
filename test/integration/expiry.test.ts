// Expiring keys on one node, side by side with a real Redis 7 (Debian's redis-server): every
// TTL command and every bad TTL answers as Redis does; the text protocol's form; the sweeper
// and tombstone collection give the space back.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess, tempDir } from '../helpers/node-process.ts';
import { closeResp, ioredis } from '../helpers/resp-tools.ts';

const HOST = '127.0.0.1';
let node: NodeProcess;
let redisServer: ChildProcess;
let kv: Redis;
let redis: Redis;

/** Starts Debian's redis-server on a unix socket in a temp dir (no port to collide on). */
async function startRedis(): Promise<{ child: ChildProcess; socket: string }> {
  const dir = tempDir('kvstore-redis-');
  const socket = join(dir, 'redis.sock');
  const child = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 10_000;
  while (!/ready to accept connections/i.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, socket };
}

beforeAll(async () => {
  const started = await startRedis();
  redisServer = started.child;
  redis = await ioredis(HOST, 0, { path: started.socket });
  node = await startNodeProcess({
    args: [
      '--expiry-sweep-interval-ms',
      '100',
      '--expiry-sweep-batch',
      '7',
      '--tombstone-grace-ms',
      '3000',
      '--gc-interval-ms',
      '300',
    ],
  });
  kv = await ioredis(HOST, node.port);
});

afterAll(async () => {
  closeResp();
  if (redisServer && redisServer.exitCode === null) {
    redisServer.kill('SIGKILL');
    await once(redisServer, 'exit');
  }
  await node?.stop();
  await cleanup();
});

/** One reply as a comparable value: the error text for errors. */
async function answer(r: Redis, args: readonly string[]): Promise<unknown> {
  try {
    return await r.call(args[0]!, ...args.slice(1));
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

/**
 * Runs `args` on Redis and on kvstore, and returns both replies. TTL/PTTL answers that depend on
 * how long the commands took are reduced to their sign: `positive`.
 */
async function both(...args: string[]): Promise<[unknown, unknown]> {
  const norm = (x: unknown) =>
    /^p?ttl$/i.test(args[0]!) && typeof x === 'number' && x > 0 ? 'positive' : x;
  return [norm(await answer(redis, args)), norm(await answer(kv, args))];
}

describe('expiry commands side by side with Redis 7', () => {
  it('gives every command, good and bad, the answer Redis gives, and applies nothing on an error', async () => {
    const future = Math.floor(Date.now() / 1000) + 86_400;
    const script: string[][] = [
      ['SET', 'k', 'v'],
      // Bad TTLs on SET: zero, negative, not a number, beyond 64-bit ms, mixed options.
      ['SET', 'k', 'w', 'EX', '0'],
      ['SET', 'k', 'w', 'EX', '-5'],
      ['SET', 'k', 'w', 'PX', '0'],
      ['SET', 'k', 'w', 'PX', '-1'],
      ['SET', 'k', 'w', 'EX', 'abc'],
      ['SET', 'k', 'w', 'EX', '1.5'],
      ['SET', 'k', 'w', 'EX', '+10'],
      ['SET', 'k', 'w', 'EX', '9223372036854775'],
      ['SET', 'k', 'w', 'EX', '9223372036854774'],
      ['SET', 'k', 'w', 'PX', '9223372036854775807'],
      ['SET', 'k', 'w', 'PX', '9223372036854775808'],
      ['SET', 'k', 'w', 'EXAT', '0'],
      ['SET', 'k', 'w', 'EXAT', '9223372036854776'],
      ['SET', 'k', 'w', 'EX', '10', 'PX', '10'],
      ['SET', 'k', 'w', 'EX'],
      ['SET', 'k', 'w', 'KEEPTTL', 'EX', '10'],
      ['SET', 'k', 'w', 'EX', '10', 'KEEPTTL'],
      ['SET', 'k', 'w', 'FOO'],
      ['SET', 'k', 'w', 'PX', '10', 'EX', '10'],
      ['SET', 'k', 'w', 'EXAT', '10', 'PXAT', '10'],
      ['GET', 'k'],
      ['TTL', 'k'],
      // Good TTLs, including beyond 2^53 ms.
      ['SET', 'k', 'v', 'EX', '10', 'EX', '100'],
      ['TTL', 'k'],
      ['SET', 'k', 'v2', 'KEEPTTL', 'KEEPTTL'],
      ['TTL', 'k'],
      ['GET', 'k'],
      ['SET', 'k', 'v', 'PX', '9007199254740993'],
      ['TTL', 'k'],
      ['SET', 'k', 'v', 'EXAT', String(future)],
      ['EXPIRETIME', 'k'],
      ['PEXPIRETIME', 'k'],
      ['SET', 'k', 'v', 'PXAT', String(future * 1000 + 123)],
      ['PEXPIRETIME', 'k'],
      ['EXPIRETIME', 'k'],
      ['SET', 'k', 'v'],
      ['TTL', 'k'],
      ['PTTL', 'k'],
      ['EXPIRETIME', 'k'],
      ['TTL', 'missing'],
      ['PTTL', 'missing'],
      ['EXPIRETIME', 'missing'],
      // An expiry in the past: OK, and the key is gone.
      ['SET', 'k', 'v', 'EXAT', '1'],
      ['GET', 'k'],
      ['EXISTS', 'k'],
      // EXPIRE and its variants.
      ['SET', 'k', 'v'],
      ['EXPIRE', 'k', 'abc'],
      ['EXPIRE', 'k', '10', 'FOO'],
      ['EXPIRE', 'k', 'abc', 'FOO'],
      ['EXPIRE', 'k', '9223372036854775808'],
      ['EXPIRE', 'k', '9223372036854775'],
      ['EXPIRE', 'k', '-9223372036854776'],
      ['PEXPIRE', 'k', '9223372036854775807'],
      ['EXPIREAT', 'k', '9223372036854776'],
      ['TTL', 'k'],
      ['EXPIRE', 'missing', '10'],
      ['EXPIRE', 'k', '100'],
      ['TTL', 'k'],
      ['PEXPIRE', 'k', '100000'],
      ['PTTL', 'k'],
      ['EXPIREAT', 'k', String(future)],
      ['EXPIRETIME', 'k'],
      ['PEXPIREAT', 'k', String(future * 1000 + 7)],
      ['PEXPIRETIME', 'k'],
      ['PERSIST', 'k'],
      ['PERSIST', 'k'],
      ['PERSIST', 'missing'],
      ['TTL', 'k'],
      ['EXPIRE', 'k', '0'],
      ['GET', 'k'],
      ['SET', 'k', 'v'],
      ['EXPIRE', 'k', '-1'],
      ['EXISTS', 'k'],
      ['SET', 'k', 'v'],
      ['EXPIREAT', 'k', '1'],
      ['GET', 'k'],
      ['SET', 'k', 'v'],
      ['PEXPIRE', 'k', '-9223372036854775808'],
      ['GET', 'k'],
      ['SET', 'k', 'v'],
      ['EXPIRE', 'k', '-9223372036854775'],
      ['GET', 'k'],
      // GETEX: the number is checked only once the key is found, as in Redis.
      ['GETEX', 'missing', 'EX', '-1'],
      ['GETEX', 'missing', 'EX', 'abc'],
      ['SET', 'k', 'v'],
      ['GETEX', 'k', 'EX', '-1'],
      ['GETEX', 'k', 'EX', '0'],
      ['GETEX', 'k', 'EX', 'abc'],
      ['GETEX', 'k', 'PX', '9223372036854775807'],
      ['GETEX', 'k', 'PERSIST', 'EX', '10'],
      ['GETEX', 'k', 'EX', '10', 'PERSIST'],
      ['GETEX', 'k', 'KEEPTTL'],
      ['GETEX', 'k', 'EX'],
      ['TTL', 'k'],
      ['GETEX', 'k'],
      ['GETEX', 'k', 'PX', '100000'],
      ['PTTL', 'k'],
      ['GETEX', 'k', 'EXAT', String(future)],
      ['EXPIRETIME', 'k'],
      ['GETEX', 'k', 'PERSIST'],
      ['TTL', 'k'],
      ['GETEX', 'k', 'PERSIST', 'PERSIST'],
      ['GETEX', 'k', 'PX', '100', 'PX', '100000'],
      ['GETEX', 'k', 'PERSIST'],
      ['GETEX', 'k', 'PXAT', '1'],
      ['GET', 'k'],
      // SETEX and PSETEX.
      ['SETEX', 'k', '0', 'v'],
      ['SETEX', 'k', '-1', 'v'],
      ['SETEX', 'k', 'abc', 'v'],
      ['PSETEX', 'k', '0', 'v'],
      ['PSETEX', 'k', '9223372036854775807', 'v'],
      ['GET', 'k'],
      ['SETEX', 'k', '100', 'v'],
      ['TTL', 'k'],
      ['PSETEX', 'k', '100000', 'v'],
      ['PTTL', 'k'],
      // A TTL option on a command that cannot take one.
      ['GET', 'k', 'EX', '10'],
      ['TTL', 'k', 'EX', '10'],
      ['PERSIST', 'k', 'EX', '10'],
      ['DBSIZE', 'EX', '10'],
      ['PTTL', 'k'],
      ['MGET', 'k', 'missing'],
    ];
    const differ: string[] = [];
    for (const args of script) {
      const [fromRedis, fromKv] = await both(...args);
      if (JSON.stringify(fromRedis) !== JSON.stringify(fromKv)) {
        differ.push(
          `${args.join(' ')}: redis ${JSON.stringify(fromRedis)}, kvstore ${JSON.stringify(fromKv)}`,
        );
      }
    }
    expect(differ).toEqual([]);
  });

  it('refuses EXPIRE NX/XX/GT/LT (conditional) with NOT_ATOMIC, nothing applied', async () => {
    await kv.set('c', 'v', 'EX', 100);
    for (const opt of ['NX', 'XX', 'GT', 'LT']) {
      await expect(kv.call('EXPIRE', 'c', '5', opt)).rejects.toThrow(/NOT_ATOMIC/);
    }
    expect(await kv.ttl('c')).toBeGreaterThan(5);
  });

  it('hides an expired key from every read path once its time passed', async () => {
    await kv.set('gone', 'v', 'PX', 50);
    await kv.set('stays', 'v');
    await expect.poll(() => kv.pttl('gone'), { timeout: 10_000 }).toBe(-2);
    expect(await kv.get('gone')).toBeNull();
    expect(await kv.exists('gone', 'stays')).toBe(1);
    expect(await kv.mget('gone', 'stays')).toEqual([null, 'v']);
    expect(await kv.keys('gone*')).toEqual([]);
    expect(await kv.call('PREFIX', 'gone')).toEqual([]);
    expect(await kv.call('RANGE', 'gone', 'gone')).toEqual([]);
    const [, scanned] = await kv.scan('0', 'MATCH', 'gone*');
    expect(scanned).toEqual([]);
    expect(await kv.getex('gone', 'PERSIST')).toBeNull();
    expect(await kv.persist('gone')).toBe(0);
    expect(await kv.expire('gone', 100)).toBe(0);
    expect(await kv.del('gone')).toBe(0);
  });
});

describe('INFO keyspace', () => {
  it('counts the keys that have an expiry in db0 expires=', async () => {
    const expires = async () => {
      const info = await kv.info('keyspace');
      return Number(/expires=(\d+)/.exec(info)?.[1]);
    };
    const before = await expires();
    for (const k of ['i:1', 'i:2', 'i:3']) await kv.set(k, 'v', 'EX', 1000);
    await kv.set('i:4', 'v');
    expect(await expires()).toBe(before + 3);
    await kv.persist('i:1');
    expect(await expires()).toBe(before + 2);
  });
});

describe('expiry over the text protocol', () => {
  it('SETEX, EXPIRE, TTL, PTTL and PERSIST; PUT keeps its value with spaces', async () => {
    const c = await LineClient.connect(node.port, HOST);
    try {
      const call = (line: string) => c.call(line);
      expect(await call('PUT t:1 a value EX 10 with spaces')).toBe('OK');
      expect(await call('GET t:1')).toBe('a value EX 10 with spaces');
      expect(await call('TTL t:1')).toBe('-1');
      expect(await call('EXPIRE t:1 100')).toBe('OK');
      expect(Number(await call('TTL t:1'))).toBeGreaterThan(0);
      expect(Number(await call('PTTL t:1'))).toBeLessThanOrEqual(100_000);
      expect(await call('PERSIST t:1')).toBe('OK');
      expect(await call('TTL t:1')).toBe('-1');
      expect(await call('SETEX t:2 100 hello world')).toBe('OK');
      expect(await call('GET t:2')).toBe('hello world');
      expect(Number(await call('TTL t:2'))).toBeGreaterThan(0);
      expect(await call('TTL t:none')).toBe('NOT_FOUND');
      expect(await call('EXPIRE t:none 10')).toBe('NOT_FOUND');
      expect(await call('PERSIST t:none')).toBe('NOT_FOUND');
      for (const bad of ['0', '-1', 'ten', '1.5', '9007199254741']) {
        expect(await call(`EXPIRE t:1 ${bad}`)).toMatch(/^ERR INVALID_ARGUMENT .*seconds must be/);
        expect(await call(`SETEX t:1 ${bad} x`)).toMatch(/^ERR INVALID_ARGUMENT .*seconds must be/);
      }
      expect(await call('GET t:1 EX 10')).toMatch(/^ERR WRONG_ARITY .*takes no expiry option/);
      expect(await call('REMOVE t:1 PX 10')).toMatch(/^ERR WRONG_ARITY .*takes no expiry option/);
      expect(await call('TTL t:1')).toBe('-1');
      expect(await call('GET t:1')).toBe('a value EX 10 with spaces');
    } finally {
      c.close();
    }
  });
});

describe('expired keys give their space back', () => {
  async function metric(series: string): Promise<number> {
    const res = await fetch(`http://${HOST}:${node.httpPort}/metrics`);
    const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
  }

  it('the sweeper turns them into tombstones in batches, and collection removes those', async () => {
    const before = await metric('kvstore_expired_keys_total');
    const pipeline = kv.pipeline();
    for (let i = 0; i < 40; i++) pipeline.set(`sweep:${i}`, 'x'.repeat(100), 'PX', 50);
    await pipeline.exec();
    await expect
      .poll(() => metric('kvstore_expired_keys_total'), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(before + 40);
    expect(await metric('kvstore_expiry_due_keys')).toBe(0);
    expect(await metric('kvstore_expiry_sweeps_total')).toBeGreaterThanOrEqual(40 / 7);
    // Tombstone collection (grace 3 s) removes them: nothing of them is left on disk.
    await expect.poll(() => metric('kvstore_storage_tombstones'), { timeout: 30_000 }).toBe(0);
    expect(await kv.keys('sweep:*')).toEqual([]);
    expect(await kv.dbsize()).toBe(await metric('kvstore_storage_keys'));
  });
});
