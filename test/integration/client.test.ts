// The TypeScript client against a real kvstore process: pipelining, errors, paging, failures.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvClientError } from '../../src/client/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

const pad = (i: number) => String(i).padStart(5, '0');

/** Resolves with the rejection of `p` (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<KvClientError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KvClientError);
    return err as KvClientError;
  }
  throw new Error('expected a rejection');
}

/**
 * Bytes that reached the node's client port and that it has not read yet, summed over its
 * established connections (Linux /proc/net/tcp, rx_queue of local port `port`).
 */
function unreadBytes(port: number): number {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let total = 0;
  for (const row of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f[1]?.endsWith(local) && f[3] === '01') total += Number.parseInt(f[4]!.split(':')[1]!, 16);
  }
  return total;
}

describe('client against one node', () => {
  let node: NodeProcess;

  async function client(opts: { timeoutMs?: number; maxReplyBytes?: number } = {}) {
    const c = await KvClient.connect({ port: node.port, ...opts });
    defer(() => c.destroy());
    return c;
  }

  beforeAll(async () => {
    node = await startNodeProcess({ args: ['--max-scan-keys', '500', '--max-key-bytes', '64'] });
  });
  afterAll(cleanup);

  it('puts, gets and removes, with values that have spaces or are empty', async () => {
    const c = await client();
    await c.put('greeting', 'hello  big world ');
    await c.put('empty', '');
    expect(await c.get('greeting')).toBe('hello  big world ');
    expect(await c.get('empty')).toBe('');
    expect(await c.getBuffer('greeting')).toEqual(Buffer.from('hello  big world '));
    expect(await c.get('absent')).toBeNull();
    expect(await c.remove('greeting')).toBe(true);
    expect(await c.remove('greeting')).toBe(false);
    expect(await c.get('greeting')).toBeNull();
    await c.ping();
  });

  it('keeps mixed pipelined commands matched to their replies', async () => {
    const c = await client();
    const [a, b, d, e, f, g] = await Promise.all([
      c.put('mix:a', 'A'),
      c.get('mix:a'),
      c.range('mix:', 'mix:~', { limit: 1 }),
      c.remove('mix:a'),
      c.get('mix:a'),
      c.prefix('mix:'),
    ]);
    expect([a, b, d, e, f, g]).toEqual([
      undefined,
      'A',
      { keys: ['mix:a'], next: null },
      true,
      null,
      { keys: [], next: null },
    ]);
  });

  it('surfaces the node error code and stays usable', async () => {
    const c = await client();
    const tooLong = await rejection(c.get('k'.repeat(65)));
    expect(tooLong.code).toBe('INVALID_KEY');
    expect(tooLong.remote).toBe(true);
    expect(tooLong.message).toMatch(/^protocol: key is 65 bytes/);
    const cap = await rejection(c.prefix('many:', { limit: 501 }));
    expect(cap.code).toBe('INVALID_ARGUMENT');
    expect(cap.remote).toBe(true);
    await Promise.all(Array.from({ length: 501 }, (_, i) => c.put(`many:${pad(i)}`, 'v')));
    expect((await c.prefix('many:', { limit: 500 })).next).toBe(`many:${pad(499)}`);
    const unpaged = await rejection(c.prefix('many:'));
    expect(unpaged.code).toBe('LIMIT_EXCEEDED');
    expect(await c.raw('FROB x')).toMatch(/^ERR UNKNOWN_COMMAND /);
    await c.ping();
  });

  it('rejects bad arguments before sending, with the same codes', async () => {
    const c = await client();
    expect((await rejection(c.put('a b', 'v'))).code).toBe('INVALID_KEY');
    expect((await rejection(c.get(''))).code).toBe('INVALID_KEY');
    expect((await rejection(c.put('k', 'two\nlines'))).code).toBe('INVALID_VALUE');
    expect((await rejection(c.range('a', 'z', { limit: 0 }))).code).toBe('INVALID_ARGUMENT');
    const local = await rejection(c.remove('tab\there'));
    expect(local.remote).toBe(false);
    // Had any of those reached the node, the replies would now be out of step.
    await c.put('after-bad', 'fine');
    expect(await c.get('after-bad')).toBe('fine');
  });

  it('pages through a range and a prefix with scanAll, every key once, in order', async () => {
    const c = await client();
    const want = Array.from({ length: 1234 }, (_, i) => `scan:${pad(i)}`);
    await Promise.all(want.map((k) => c.put(k, 'v')));
    await c.put('scan', 'outside');
    await c.put('scan;', 'outside');
    const all: string[] = [];
    for await (const k of c.scanAll({ prefix: 'scan:' }, { pageSize: 100 })) all.push(k);
    expect(all).toEqual(want);
    const some: string[] = [];
    const range = { start: 'scan:00100', end: 'scan:00299' };
    for await (const k of c.scanAll(range, { pageSize: 7 })) some.push(k);
    expect(some).toEqual(want.slice(100, 300));
    const resumed: string[] = [];
    const from = { cursor: 'scan:01200', pageSize: 10 };
    for await (const k of c.scanAll({ prefix: 'scan:' }, from)) {
      resumed.push(k);
    }
    expect(resumed).toEqual(want.slice(1201));
    const first = await c.prefix('scan:', { limit: 2 });
    expect(first).toEqual({ keys: want.slice(0, 2), next: want[1] });
  });

  it('reads keys that look like error replies as keys', async () => {
    const c = await client();
    await Promise.all(['ERR', 'INVALID_KEY', 'LIMIT_EXCEEDED'].map((k) => c.put(k, 'x')));
    expect(await c.range('A', 'M', { limit: 5 })).toEqual({
      keys: ['ERR', 'INVALID_KEY', 'LIMIT_EXCEEDED'],
      next: null,
    });
    expect(await c.range('A', 'M')).toEqual({
      keys: ['ERR', 'INVALID_KEY', 'LIMIT_EXCEEDED'],
      next: null,
    });
    expect(await c.raw('range A M limit 2')).toBe('ERR INVALID_KEY\nMORE INVALID_KEY');
    await c.ping(); // the stream is still in step
  });

  it('fails an over-long reply with REPLY_TOO_LONG and keeps the stream in step', async () => {
    const c = await client({ maxReplyBytes: 64 });
    await c.put('long:1', 'x'.repeat(100));
    await c.put('long:2', 'short');
    expect((await rejection(c.get('long:1'))).code).toBe('REPLY_TOO_LONG');
    const wide = `long:${'k'.repeat(55)}`;
    await c.put(`${wide}1`, 'v');
    await c.put(`${wide}2`, 'v');
    // The keys line is too long; its END line still comes and must be consumed with it.
    expect((await rejection(c.prefix('long:', { limit: 10 }))).code).toBe('REPLY_TOO_LONG');
    expect(await c.get('long:2')).toBe('short');
  });

  it('closes gracefully: sent requests finish, later calls reject', async () => {
    const c = await client();
    const puts = Array.from({ length: 200 }, (_, i) => c.put(`close:${pad(i)}`, 'v'));
    const closing = c.close();
    await Promise.all(puts);
    await closing;
    expect((await rejection(c.ping())).code).toBe('CONNECTION_CLOSED');
    const check = await client();
    expect((await check.prefix('close:')).keys.length).toBe(200);
  });

  it('opens a new connection on the next call after QUIT', async () => {
    const c = await client();
    expect(await c.raw('quit')).toBe('OK');
    await c.put('after-quit', 'yes');
    expect(await c.get('after-quit')).toBe('yes');
  });

  it('rejects connecting to a port nobody listens on', async () => {
    const gone = await startNodeProcess();
    const port = gone.port;
    await gone.stop('SIGKILL');
    const err = await rejection(KvClient.connect({ port }));
    expect(err.code).toBe('CONNECTION_CLOSED');
    expect(err.message).toMatch(/cannot connect/);
  });
});

describe('client when the node stalls or dies', () => {
  afterAll(cleanup);

  it('pipelines: 1000 requests all reach the node before any reply, then settle in order', async () => {
    const node = await startNodeProcess();
    const c = await KvClient.connect({ port: node.port, timeoutMs: 0 });
    try {
      node.child.kill('SIGSTOP'); // the node reads nothing until SIGCONT
      const settled: number[] = [];
      let bytes = 0;
      const puts = Array.from({ length: 1000 }, (_, i) => {
        bytes += `PUT pipe:${pad(i)} value ${i}\n`.length;
        return c.put(`pipe:${pad(i)}`, `value ${i}`).then(() => settled.push(i));
      });
      // A client waiting for each reply would have sent one line; this one sent them all.
      await until(() => unreadBytes(node.port) === bytes, 30_000, 'every line in its socket');
      node.child.kill('SIGCONT');
      await Promise.all(puts);
      expect(settled).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      const keys = Array.from({ length: 1000 }, (_, i) => `pipe:${pad(i)}`);
      const values = await Promise.all(keys.map((k) => c.get(k)));
      expect(values).toEqual(Array.from({ length: 1000 }, (_, i) => `value ${i}`));
    } finally {
      node.child.kill('SIGCONT');
      c.destroy();
    }
  });

  it('times out requests of a stopped node and skips their late replies', async () => {
    const node = await startNodeProcess();
    const c = await KvClient.connect({ port: node.port, timeoutMs: 300 });
    try {
      await c.put('t', 'before');
      node.child.kill('SIGSTOP');
      const stalled = [c.get('t'), c.put('t', 'during'), c.range('a', 'z', { limit: 1 })];
      const results = await Promise.allSettled(stalled);
      for (const r of results) {
        expect((r as PromiseRejectedResult).reason?.code).toBe('TIMEOUT');
      }
      node.child.kill('SIGCONT');
      // The three late replies arrive first and are dropped; these get their own.
      expect(await c.get('t')).toBe('during');
      expect(await c.prefix('t')).toEqual({ keys: ['t'], next: null });
    } finally {
      node.child.kill('SIGCONT');
      c.destroy();
    }
  });

  it('rejects every pending request when the node is killed, then reconnects', async () => {
    const node = await startNodeProcess();
    const c = await KvClient.connect({ port: node.port, timeoutMs: 0 });
    try {
      await c.put('durable', 'yes');
      node.child.kill('SIGSTOP'); // nothing is answered from here on
      const pending = Array.from({ length: 50 }, (_, i) => c.put(`lost:${i}`, 'v'));
      pending.push(c.ping());
      const settled = Promise.allSettled(pending); // handled before they reject
      await node.stop('SIGKILL');
      const results = await settled;
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason;
        expect(err).toBeInstanceOf(KvClientError);
        expect(err.code).toBe('CONNECTION_CLOSED');
      }
      // The next call tries a new connection; nobody listens now.
      expect((await rejection(c.get('durable'))).message).toMatch(/cannot connect/);
      // A node on the same port and data directory: the client reconnects by itself.
      await startNodeProcess({ dataDir: node.dataDir, args: ['--port', String(node.port)] });
      expect(await c.get('durable')).toBe('yes');
    } finally {
      c.destroy();
    }
  });
});
