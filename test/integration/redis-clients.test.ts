// Real Redis client libraries with their DEFAULT settings, from four languages, against one
// node and against a 3-node cluster, both with a password: redis-py 8 (Python, RESP3), node-redis
// 6 and ioredis 6 (JavaScript, RESP3), go-redis v9 (Go, RESP3), Jedis 7 (Java, RESP2). Each connects (AUTH),
// does SET/GET/MGET/DEL, a pipeline, a SCAN iteration, a transaction that applies and one that
// aborts, and a conditional write that is refused. test/clients/install.sh installs redis-py,
// builds the go-redis program and the Jedis check into a cache (.ci/run calls it first).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterNode, startStaticCluster } from '../helpers/cluster.ts';
import { cleanup, startNodeProcess } from '../helpers/node-process.ts';
import { closeResp, ioredis, type Target } from '../helpers/resp-tools.ts';

const run = promisify(execFile);
const PASSWORD = 'client-s3cret';

afterAll(async () => {
  closeResp();
  await cleanup();
});

/** What every client reports; the same answers are expected from each. */
interface Result {
  proto: number;
  get: string;
  getAbsent: null;
  mget: (string | null)[];
  pipelineLast: string;
  scanned: number;
  scanFirst: string;
  tx: string[];
  txAbort: string;
  txAbortApplied: number;
  setnx: string;
  del: number;
}

function expectResult(r: Result, prefix: string, proto: number): void {
  expect(r).toEqual({
    proto,
    get: '1',
    getAbsent: null,
    mget: ['1', null, '2'],
    pipelineLast: '49',
    scanned: 50,
    scanFirst: `${prefix}:p00`,
    tx: ['OK', 't'],
    // EXECABORT, or (redis-py) the queued command's own NOT_ATOMIC error it raises instead.
    txAbort: expect.stringMatching(/EXECABORT|previous errors|NOT_ATOMIC/),
    txAbortApplied: 0,
    setnx: expect.stringMatching(
      /NOT_ATOMIC protocol: SETNX needs an atomic read-modify-write.*docs\/redis\.md#conditional-writes/,
    ),
    del: 2,
  });
}

let tools: { 'redis-py': string; 'go-redis': string; jedis: string };

beforeAll(async () => {
  const { stdout } = await run('bash', ['test/clients/install.sh'], { timeout: 15 * 60_000 });
  tools = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=')),
  ) as typeof tools;
}, 15 * 60_000);

async function redisPy(t: Target, prefix: string): Promise<Result> {
  const { stdout } = await run(
    'python3',
    ['test/clients/redis_py_check.py', t.host, String(t.port), prefix, PASSWORD],
    { env: { ...process.env, PYTHONPATH: tools['redis-py'] }, timeout: 60_000 },
  );
  const r = JSON.parse(stdout) as Result & { set: boolean };
  expect(r.set).toBe(true);
  const { set: _, ...rest } = r;
  return rest;
}

async function goRedis(t: Target, prefix: string): Promise<Result> {
  const { stdout } = await run(
    tools['go-redis'],
    ['-addr', `${t.host}:${t.port}`, '-password', PASSWORD, '-prefix', prefix],
    { timeout: 60_000 },
  );
  const r = JSON.parse(stdout) as Record<string, unknown>;
  return {
    proto: r.proto as number,
    get: r.get as string,
    getAbsent: r.getAbsentIsNil === true ? null : (r.getAbsentIsNil as null),
    mget: r.mget as (string | null)[],
    pipelineLast: r.pipelineLast as string,
    scanned: r.scanned as number,
    scanFirst: r.scanFirst as string,
    tx: ['OK', r.txGet as string],
    txAbort: r.txAbort as string,
    txAbortApplied: r.txAbortApplied as number,
    setnx: r.setnx as string,
    del: r.del as number,
  };
}

async function jedis(t: Target, prefix: string): Promise<Result> {
  const dir = tools.jedis;
  const { stdout } = await run(
    'java',
    ['-cp', `${dir}/lib/*:${dir}/classes`, 'JedisCheck', t.host, String(t.port), prefix, PASSWORD],
    { timeout: 60_000 },
  );
  const r = JSON.parse(stdout) as Record<string, string | null>;
  const list = (s: string | null) =>
    s!
      .slice(1, -1)
      .split(', ')
      .map((v) => (v === 'null' ? null : v));
  return {
    proto: Number(/proto, (\d)/.exec(r.hello!)?.[1]),
    get: r.get!,
    getAbsent: r.getAbsent as null,
    mget: list(r.mget!),
    pipelineLast: r.pipelineLast!,
    scanned: Number(r.scanned),
    scanFirst: r.scanFirst!,
    tx: list(r.tx!) as string[],
    txAbort: r.txAbort!,
    txAbortApplied: Number(r.txAbortApplied),
    setnx: r.setnx!,
    del: Number(r.del),
  };
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (err) {
    return String(err);
  }
}

async function nodeRedis(t: Target, prefix: string): Promise<Result> {
  const c = createClient({
    socket: { host: t.host, port: t.port, reconnectStrategy: false },
    password: PASSWORD,
  });
  c.on('error', () => {});
  await c.connect();
  try {
    const k = (s: string) => `${prefix}:${s}`;
    const hello = (await c.sendCommand(['HELLO'])) as unknown;
    const proto =
      hello instanceof Map ? hello.get('proto') : (hello as Record<string, number>).proto;
    await c.set(k('a'), '1');
    await c.set(k('b'), '2');
    const pipe = c.multi();
    for (let i = 0; i < 50; i++) pipe.set(k(`p${String(i).padStart(2, '0')}`), String(i));
    pipe.get(k('p49'));
    const piped = await pipe.execAsPipeline();
    const scanned: string[] = [];
    for await (const keys of c.scanIterator({ MATCH: `${prefix}:p*`, COUNT: 7 }))
      scanned.push(...keys);
    scanned.sort();
    const result: Result = {
      proto: Number(proto),
      get: (await c.get(k('a'))) as string,
      getAbsent: (await c.get(k('absent'))) as null,
      mget: (await c.mGet([k('a'), k('absent'), k('b')])) as (string | null)[],
      pipelineLast: String(piped[50]),
      scanned: scanned.length,
      scanFirst: scanned[0]!,
      tx: (await c.multi().set(k('tx'), 't').get(k('tx')).exec()).map(String),
      txAbort: await errorOf(c.multi().set(k('aborted'), 't').incr(k('counter')).exec()),
      txAbortApplied: await c.exists([k('aborted'), k('counter')]),
      setnx: await errorOf(c.setNX(k('a'), 'x')),
      del: await c.del([k('a'), k('b'), k('absent')]),
    };
    return result;
  } finally {
    c.destroy();
  }
}

async function ioRedis(t: Target, prefix: string): Promise<Result> {
  const r = await ioredis(t.host, t.port, { password: PASSWORD });
  const k = (s: string) => `${prefix}:${s}`;
  const hello = (await r.call('HELLO')) as unknown[];
  await r.set(k('a'), '1');
  await r.set(k('b'), '2');
  const pipe = r.pipeline();
  for (let i = 0; i < 50; i++) pipe.set(k(`p${String(i).padStart(2, '0')}`), String(i));
  pipe.get(k('p49'));
  const piped = (await pipe.exec())!;
  const scanned: string[] = [];
  for await (const keys of r.scanStream({ match: `${prefix}:p*`, count: 7 }))
    scanned.push(...(keys as string[]));
  scanned.sort();
  const tx = (await r.multi().set(k('tx'), 't').get(k('tx')).exec())!;
  const result: Result = {
    proto: hello[hello.indexOf('proto') + 1] as number,
    get: (await r.get(k('a')))!,
    getAbsent: (await r.get(k('absent'))) as null,
    mget: await r.mget(k('a'), k('absent'), k('b')),
    pipelineLast: piped[50]![1] as string,
    scanned: scanned.length,
    scanFirst: scanned[0]!,
    tx: tx.map(([, v]) => v as string),
    txAbort: await errorOf(r.multi().set(k('aborted'), 't').incr(k('counter')).exec()),
    txAbortApplied: await r.exists(k('aborted'), k('counter')),
    setnx: await errorOf(r.setnx(k('a'), 'x')),
    del: await r.del(k('a'), k('b'), k('absent')),
  };
  r.disconnect();
  return result;
}

/** Every client against `t`, each under its own key prefix; `via` names the node for the prefix. */
async function everyClient(t: Target, via: string): Promise<void> {
  expectResult(await redisPy(t, `py${via}`), `py${via}`, 3);
  expectResult(await nodeRedis(t, `nr${via}`), `nr${via}`, 3);
  expectResult(await ioRedis(t, `io${via}`), `io${via}`, 3);
  expectResult(await goRedis(t, `go${via}`), `go${via}`, 3);
  expectResult(await jedis(t, `jd${via}`), `jd${via}`, 2); // Jedis defaults to RESP2
}

describe('Redis clients with default settings, one node with a password', () => {
  it('redis-py, node-redis, ioredis, go-redis, Jedis', { timeout: 120_000 }, async () => {
    const node = await startNodeProcess({ args: ['--password', PASSWORD] });
    await everyClient({ host: '127.0.0.1', port: node.port }, '1');
  });
});

describe('Redis clients with default settings, a 3-node cluster with a password', () => {
  let nodes: ClusterNode[];

  beforeAll(async () => {
    nodes = await startStaticCluster(3, ['--password', PASSWORD]);
  }, 60_000);

  it('redis-py, node-redis, ioredis, go-redis, Jedis, each through another node', {
    timeout: 180_000,
  }, async () => {
    for (const [i, n] of nodes.entries())
      await everyClient({ host: n.host, port: n.proc.port }, `c${i}`);
  });
});
