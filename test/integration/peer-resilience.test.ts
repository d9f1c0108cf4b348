import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  LARGE_FRAME_BYTES,
  type PeerHandler,
  PeerPool,
  type PeerPoolOptions,
} from '../../src/peer/index.ts';
import {
  NO_ANTI_ENTROPY,
  metric as nodeMetric,
  openClient,
  startStaticCluster,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup } from '../helpers/node-process.ts';
import { peerClient as client, peerServer as server } from '../helpers/peer.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const logger = createLogger('silent', {});

async function metric(registry: Registry, name: string, labels: Record<string, string>) {
  const values = (await registry.getSingleMetric(name)!.get()).values;
  const match = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return match?.value ?? 0;
}

async function failure(p: Promise<unknown>): Promise<KvError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error('expected a rejection');
}

/**
 * Retries `fn` every 10 ms until it returns true or resolves, failing after `ms` (a bound for a
 * hang: 5 s ran out at load average 35 while 50 requests reached a server).
 */
async function until<T>(fn: () => Promise<T> | T, ms = 60_000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false) return v;
    } catch (err) {
      if (performance.now() > deadline) throw err;
    }
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A gate handlers can wait on; opened by the test (and by cleanup, so nothing hangs). */
function gate(): { wait: Promise<void>; open: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  defer(async () => resolve());
  return { wait: promise, open: resolve };
}

const CHILD_SERVER = `
const { PeerServer } = await import(${JSON.stringify(join(ROOT, 'src/peer/index.ts'))});
const { createLogger } = await import(${JSON.stringify(join(ROOT, 'src/observability/index.ts'))});
let puts = 0;
const handler = (m, b) =>
  m === 'hang' ? new Promise(() => {}) : m === 'put' ? ++puts : m === 'puts' ? puts : b;
const s = await PeerServer.start({
  host: '127.0.0.1', port: Number(process.argv[1]), handler, logger: createLogger('silent', {}),
});
console.log(s.port);
`;

/** A PeerServer in its own process, so the test can SIGKILL it. */
async function childServer(port: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(NODE, ['--input-type=module', '-e', CHILD_SERVER, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  defer(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  });
  const line = await new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', res);
    child.once('exit', (code) => rej(new Error(`child server exited with ${code}`)));
  });
  return { child, port: Number(line) };
}

describe('peer failures and recovery', () => {
  it('rejects pending requests when the server is killed and reconnects after restart', async () => {
    const first = await childServer(0);
    const c = client(first.port, { initialBackoffMs: 10, maxBackoffMs: 50, timeoutMs: 5000 });
    expect(await c.request('echo', 'before')).toBe('before');
    const pending = Array.from({ length: 20 }, () => failure(c.request('hang', null)));
    await until(() => c.inFlight === 20);
    const killed = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await killed;
    const errors = await Promise.all(pending);
    for (const e of errors) expect(e.code).toBe('KV_ERR_PEER_UNAVAILABLE');
    // While it is down, requests fail fast instead of waiting for the timeout: refused within
    // the backoff, or by the refused connect, never KV_ERR_PEER_TIMEOUT (what says it, not a
    // wall time, which measures the machine's load).
    for (const i of [1, 2]) {
      expect(await failure(c.request('echo', i))).toMatchObject({
        code: 'KV_ERR_PEER_UNAVAILABLE',
        message: expect.stringMatching(/unreachable, retrying after backoff|cannot connect to/),
      });
    }

    await childServer(first.port);
    expect(await until(() => c.request('echo', 'after'))).toBe('after');
    expect(c.state).toBe('connected');
  });

  // A stopped peer's kernel takes a few MiB and then nothing: every request written after that
  // stayed in the client's socket buffer, timed out, and was sent anyway once the peer ran again
  // (all 64 here), long after the caller had given up on it (and hinted a write's copy).
  it('never sends the requests that timed out while a stopped peer did not read', async () => {
    const registry = new Registry();
    const peer = await childServer(0);
    const c = client(peer.port, { timeoutMs: 300, registry });
    // The short timeout is for the writes to the stopped peer; an echo gets time for a loaded
    // machine (300 ms ran out at load average 35).
    const echo = { timeoutMs: 30_000 };
    expect(await c.request('echo', 'before', echo)).toBe('before');
    peer.child.kill('SIGSTOP');
    defer(() => peer.child.kill('SIGCONT'));
    const value = Buffer.alloc(1024 * 1024, 1);
    const sent = 64;
    const errors = await Promise.all(
      Array.from({ length: sent }, () => failure(c.request('put', value))),
    );
    for (const e of errors) expect(e.code).toBe('KV_ERR_PEER_TIMEOUT');
    // What the socket holds beyond the kernel's buffers (4 MiB and the frame that passed it); the
    // rest was dropped (before: all 64 MiB stayed queued, to be written on SIGCONT).
    expect(c.queuedBytes).toBeLessThanOrEqual(4 * 1024 * 1024 + value.length + 1024);
    peer.child.kill('SIGCONT');
    // The connection carries on: no frame was cut, what was held back is gone.
    const received = await c.request<number>('puts', null, { timeoutMs: 10_000 });
    const dropped = await metric(registry, 'kvstore_peer_requests_dropped_total', {
      lane: 'small',
    });
    console.log(`${received} of ${sent} timed-out requests reached the peer; ${dropped} dropped`);
    expect(received + dropped).toBeLessThanOrEqual(sent);
    // What the kernels' buffers held (a few MiB here) still arrives; the rest never left.
    expect(dropped).toBeGreaterThanOrEqual(sent / 2);
    expect(received).toBeLessThan(sent / 2);
    expect(await c.request('echo', 'after', echo)).toBe('after');
  });

  it('close() waits for running handlers, then the client reconnects to a new server', async () => {
    const registry = new Registry();
    const g = gate();
    let started = 0;
    const handler: PeerHandler = async (method, body) => {
      started++;
      if (method === 'slow') await g.wait;
      return body;
    };
    const s1 = await server(handler, { registry });
    const port = s1.port;
    const c = client(port, { initialBackoffMs: 10, maxBackoffMs: 50 });
    const slow = c.request('slow', 'done');
    await until(() => started === 1);
    let closed = false;
    const closing = s1.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    g.open();
    expect(await slow).toBe('done');
    await closing;
    await until(
      async () => (await failure(c.request('echo', 1))).code === 'KV_ERR_PEER_UNAVAILABLE',
    );

    await server(handler, { port });
    expect(await until(() => c.request('echo', 'back'))).toBe('back');
  });

  it('destroys connections whose handlers outlive closeTimeoutMs', async () => {
    const s = await server(() => new Promise(() => {}), { closeTimeoutMs: 100 });
    const c = client(s.port, { timeoutMs: 5000 });
    const pending = failure(c.request('hang', null));
    await until(() => s.connectionCount === 1 && c.state === 'connected');
    await s.close();
    expect((await pending).code).toBe('KV_ERR_PEER_UNAVAILABLE');
  });

  it('fails fast during backoff when nothing listens', async () => {
    const s = await server(() => null);
    const port = s.port;
    await s.close();
    const c = client(port, { initialBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const first = await failure(c.request('x', null));
    expect(first.code).toBe('KV_ERR_PEER_UNAVAILABLE');
    expect(first.message).toBe(`peer: cannot connect to 127.0.0.1:${port}`);
    expect(c.state).toBe('backoff');
    const second = await failure(c.request('x', null));
    expect(second.message).toMatch(/retrying after backoff/);
  });
});

describe('peer backpressure', () => {
  it('lets at most maxInFlightPerConnection requests in and stops reading the rest', async () => {
    const registry = new Registry();
    const g = gate();
    let running = 0;
    let peak = 0;
    let calls = 0;
    const s = await server(
      async (_m, body) => {
        calls++;
        peak = Math.max(peak, ++running);
        await g.wait;
        running--;
        return (body as { n: number }).n;
      },
      { maxInFlightPerConnection: 50, registry },
    );
    const c = client(s.port, { timeoutMs: 20_000 });
    // 4000 requests of 2 KiB: 8 MiB, far more than the server may read while blocked.
    const pad = Buffer.alloc(2048, 1);
    const n = 4000;
    const all = Promise.all(Array.from({ length: n }, (_, i) => c.request('m', { n: i, pad })));
    await until(() => calls === 50);
    // Give the rest every chance to (wrongly) get in.
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(50);
    const read = await metric(registry, 'kvstore_peer_received_bytes_total', { side: 'server' });
    expect(read).toBeLessThan(2 * 1024 * 1024);
    g.open();
    expect(await all).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(calls).toBe(n);
    expect(peak).toBe(50);
  });

  it('refuses requests beyond the client maxInFlight with KV_ERR_PEER_OVERLOADED', async () => {
    const g = gate();
    const s = await server(async (_m, body) => {
      await g.wait;
      return body;
    });
    const c = client(s.port, { maxInFlight: 10 });
    const admitted = Array.from({ length: 10 }, (_, i) => c.request('m', i));
    const err = await failure(c.request('m', 10));
    expect(err.code).toBe('KV_ERR_PEER_OVERLOADED');
    g.open();
    expect(await Promise.all(admitted)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(await c.request('m', 11)).toBe(11);
  });
});

/** A server whose `hang` requests wait for `g`, and a pool with `opts` to it. */
async function hangingPool(opts: Partial<PeerPoolOptions>) {
  const registry = new Registry();
  const g = gate();
  const s = await server((m, body) => (m === 'hang' ? g.wait : body), { registry });
  const pool = new PeerPool({ logger, registry, ...opts });
  defer(() => pool.close());
  return { g, s, address: `127.0.0.1:${s.port}`, pool };
}

/**
 * A TCP proxy on 127.0.0.1 to `port` that passes the client's bytes on at `bytesPerSec` (it
 * stops reading between chunks, so the client's socket fills as behind a slow link); closed when
 * the test ends.
 */
async function slowProxy(port: number, bytesPerSec: number): Promise<number> {
  const sockets = new Set<Socket>();
  const proxy = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    outbound.pipe(inbound);
    inbound.on('data', (chunk: Buffer) => {
      inbound.pause();
      outbound.write(chunk);
      setTimeout(() => inbound.resume(), (chunk.length / bytesPerSec) * 1000);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => proxy.close(r));
  });
  return (proxy.address() as AddressInfo).port;
}

describe('a peer behind a slow link', () => {
  // The stall check counted bytes taken by whole write requests, and one request carries every
  // frame queued behind the one before (megabytes): over a slow link nothing seemed taken for
  // seconds while the peer read all along, and its connection was closed as not reading.
  it('is not taken for one that does not read while it takes the queued bytes slowly', async () => {
    const registry = new Registry();
    const s = await server(() => null, { registry });
    // 4 MB/s: one frame of 48 MiB is one write request, which the kernel takes a step at a time
    // for 10 s (what its buffers do not hold at once), over the stall timeout of 2 s (the
    // default) several times: room for a loaded machine slowing the proxy (this process's
    // timers).
    const port = await slowProxy(s.port, 4 * 1024 * 1024);
    const c = client(port, { registry, timeoutMs: 2000, maxQueuedBytes: 16 * 1024 * 1024 });
    const big = c.request('put', Buffer.alloc(48 * 1024 * 1024), { timeoutMs: 120_000 }).then(
      () => 'ok',
      (err: KvError) => err.message,
    );
    await new Promise((resolve) => setImmediate(resolve));
    // Refused for the full queue: the stall check starts.
    const refused = await failure(c.request('put', Buffer.alloc(1024)));
    expect(refused.message).toMatch(/bytes queued/);
    // Before, the write request counted as nothing taken until it completed: closed after 2 s.
    expect(await big).toBe('ok');
    expect(await metric(registry, 'kvstore_peer_connections_stalled_total', {})).toBe(0);
  }, 60_000);
});

describe('PeerPool', () => {
  it('reuses one client per address; round-robins when configured with more', async () => {
    const registry = new Registry();
    const s = await server((_m, body) => body, { registry });
    const address = `127.0.0.1:${s.port}`;
    const pool = new PeerPool({ logger, registry });
    defer(() => pool.close());
    expect(pool.get(address)).toBe(pool.get(address));
    await Promise.all(Array.from({ length: 100 }, (_, i) => pool.get(address).request('m', i)));

    const pool2 = new PeerPool({ logger, registry, connectionsPerAddress: 2 });
    defer(() => pool2.close());
    const a = pool2.get(address);
    const b = pool2.get(address);
    expect(a).not.toBe(b);
    expect(pool2.get(address)).toBe(a);
    await Promise.all(Array.from({ length: 100 }, (_, i) => pool2.get(address).request('m', i)));
    await until(() => s.connectionCount === 3);

    const pending = failure(a.request('m', 1));
    await pool2.remove(address);
    expect(pool2.addresses).toEqual([]);
    expect(a.state).toBe('closed');
    expect((await pending).code).toBe('KV_ERR_PEER_UNAVAILABLE');
    expect(pool2.get(address)).not.toBe(a);
    await pool2.close();
    expect(() => pool2.get(address)).toThrow(/pool closed/);
  });

  it('gives each address one control client on a connection of its own, closed with the rest', async () => {
    const { g, s, address, pool } = await hangingPool({ connectionsPerAddress: 2 });
    const control = pool.get(address, 'control');
    expect(pool.get(address, 'control')).toBe(control);
    const data = [pool.get(address), pool.get(address)];
    expect(data).not.toContain(control);
    // The data connections' handlers hang; the control connection still answers.
    const hung = data.map((c) => failure(c.request('hang', null)));
    expect(await control.request('m', 'hello')).toBe('hello');
    await until(() => s.connectionCount === 3);
    await pool.remove(address);
    expect(control.state).toBe('closed');
    for (const e of await Promise.all(hung)) expect(e.code).toBe('KV_ERR_PEER_UNAVAILABLE');
    expect(pool.get(address, 'control')).not.toBe(control);
    g.open();
  });

  it('sends frames over 64 KiB, and bulk requests, on a large lane of their own; small ones keep their order', async () => {
    // Each request answers the port of the connection it came on, and its place on it.
    const order = new Map<string, number>();
    const s = await server((_m, _b, ctx) => {
      const n = (order.get(ctx.remote) ?? 0) + 1;
      order.set(ctx.remote, n);
      return [ctx.remote, n];
    });
    const address = `127.0.0.1:${s.port}`;
    const pool = new PeerPool({ logger });
    defer(() => pool.close());
    const ask = (body: unknown, bulk = false) =>
      pool.request<[string, number]>(address, 'm', body, { bulk });
    const small = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(i)));
    const large = await ask(Buffer.alloc(LARGE_FRAME_BYTES));
    const bulk = await ask(1, true);
    const smallConn = small[0]![0];
    expect(small.map(([conn]) => conn)).toEqual(small.map(() => smallConn));
    // In the order they were sent.
    expect(small.map(([, n]) => n)).toEqual(small.map((_, i) => i + 1));
    expect(large[0]).not.toBe(smallConn);
    expect(bulk[0]).toBe(large[0]);
    expect(pool.get(address, 'large')).not.toBe(pool.get(address));
    // A frame of exactly the threshold is small: a 64 KiB body is over it with its envelope.
    expect((await ask(Buffer.alloc(LARGE_FRAME_BYTES - 64)))[0]).toBe(smallConn);
  });

  it('warm() connects the small and large clients of an address ahead of their first request', async () => {
    const { s, address, pool } = await hangingPool({ connectionsPerAddress: 2 });
    pool.warm(address); // no clients yet: nothing to do
    expect(pool.addresses).toEqual([]);
    expect(await pool.get(address, 'control').request('m', 'hello')).toBe('hello');
    const data = [pool.get(address), pool.get(address)];
    expect(data.map((c) => c.state)).toEqual(['idle', 'idle']);
    pool.warm(address);
    data.push(pool.get(address, 'large'));
    await until(() => data.every((c) => c.state === 'connected') && s.connectionCount === 4);
    pool.warm(address); // connected: nothing to do
    expect(s.connectionCount).toBe(4);
  });

  it('closes an idle address with its control client, not while a probe is out', async () => {
    const { g, address, pool } = await hangingPool({ idleCloseMs: 50 });
    const control = pool.get(address, 'control');
    const probe = control.request('hang', null);
    // Six sweeps with nobody asking for the address (a bounded window, not a wait for a
    // condition): the probe out keeps it.
    await new Promise((r) => setTimeout(r, 300));
    expect(pool.addresses).toEqual([address]);
    g.open();
    await probe;
    await until(() => pool.addresses.length === 0, 5000);
    expect(control.state).toBe('closed');
  });

  // Over a link saturated with replica data, one answer lost and resent late is common; a new
  // connection crosses that link four times (connect, challenge, auth, probe) before its first
  // answer. Before, the first probe that timed out closed the connection, and the next ones,
  // reconnecting, timed out too: a live member was called down (failure-detector.test.ts).
  it('keeps the control connection through one unanswered probe, closes it after two in a row', async () => {
    const g = gate();
    const s = await server((m, body) => (m === 'hang' ? g.wait : body));
    const registry = new Registry();
    const pool = new PeerPool({ logger, registry });
    defer(() => pool.close());
    const control = pool.get(`127.0.0.1:${s.port}`, 'control');
    const connects = () => metric(registry, 'kvstore_peer_connects_total', { result: 'ok' });
    const unanswered = async () => {
      const err = await failure(control.request('hang', null, { timeoutMs: 100 }));
      expect(err.code).toBe('KV_ERR_PEER_TIMEOUT');
    };
    expect(await control.request('echo', 1)).toBe(1);
    await unanswered();
    // Answered on the same connection (before: on a new one), which starts the count again.
    expect(await control.request('echo', 2)).toBe(2);
    expect(await connects()).toBe(1);
    await unanswered();
    await unanswered();
    // Two in a row with nothing back: closed (had the first closed it, the second would have
    // gone on a new connection and left it open); the next request connects afresh.
    await until(() => control.state === 'idle', 10_000);
    expect(await control.request('echo', 3)).toBe(3);
    expect(await connects()).toBe(2);
    g.open();
  });
});

/** Anonymous resident memory of process `pid` in bytes (/proc/PID/status RssAnon). */
function rssAnon(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe('a replica that is alive but does not read (SIGSTOP)', () => {
  afterEach(cleanup);

  // The gray failure: the stopped member's kernel accepts the connection and then its receive
  // window stays full, so every frame the coordinator writes stays in user space. Before the
  // bound (--peer-timeout-ms and the failure detector marking it down do not stop writes being
  // tried), 40 s of redis-benchmark 100 KB SETs grew a coordinator's anon RSS by 3.2 GiB.
  it('keeps the bytes queued to it bounded; writes go on with hints, delivered after SIGCONT', async () => {
    // b's answers are not what is measured, c's queue is: a peer timeout of 2 s made b's copies
    // time out at load average 33 (write quorum 1/2, kvstore-1: peer_timeout), b starved of CPU
    // with 8 copies of 1 MiB queued to it. Anything of b's held behind c (a shared queue, lane or
    // budget) still fails the writes: c reads nothing until SIGCONT, longer than any timeout.
    const timeout = ['--peer-timeout-ms', '20000'];
    const [a, , c] = await startStaticCluster(3, [...NO_ANTI_ENTROPY, ...timeout]);
    // The 1 MiB copies go on the large lane; a's other large-lane queue, to b, drains: its share
    // of the node-wide gauge stays small.
    const queued = 'kvstore_peer_queued_bytes{lane="large"}';
    const bound = 128 * 1024 * 1024;
    const pid = a!.proc.child.pid!;
    c!.proc.child.kill('SIGSTOP');
    defer(() => c!.proc.child.kill('SIGCONT'));
    const before = rssAnon(pid);
    let maxQueued = 0;
    let maxRss = before;
    const sampler = setInterval(async () => {
      maxRss = Math.max(maxRss, rssAnon(pid));
      maxQueued = Math.max(maxQueued, await nodeMetric(a!, queued).catch(() => 0));
    }, 100);
    defer(() => clearInterval(sampler));
    // 8 connections write 768 values of 1 MiB (each also sent to c): six times the bound.
    const value = 'v'.repeat(1024 * 1024);
    let next = 0;
    const total = 768;
    const writers = await Promise.all(Array.from({ length: 8 }, () => openClient(a!)));
    const replies = await Promise.all(
      writers.map(async (w) => {
        const got: string[] = [];
        while (next < total) got.push(await w.call(`PUT big-${next++} ${value}`));
        return got;
      }),
    );
    clearInterval(sampler);
    // W=2 of 3: a and b acknowledge every write; c's copies become hints.
    expect(replies.flat()).toEqual(Array.from({ length: total }, () => 'OK'));
    expect(maxQueued).toBeGreaterThan(0);
    expect(maxQueued).toBeLessThanOrEqual(bound + 16 * 1024 * 1024);
    // The copies to c that timed out before they were written were dropped (never sent), so
    // the queue may stay under the bound; those that did not waited in it, and the ones past
    // it were refused.
    const dropped = await nodeMetric(a!, 'kvstore_peer_requests_dropped_total{lane="large"}');
    const refused = await nodeMetric(
      a!,
      'kvstore_peer_requests_refused_total{reason="queue_full"}',
    );
    expect(dropped + refused).toBeGreaterThan(0);
    expect(await nodeMetric(a!, 'kvstore_hints_stored')).toBeGreaterThan(0);
    // Measured on the 2-core dev machine: 2,078 MiB without the bound, 1,000 MiB with it (the
    // rest is garbage of the 1 MiB lines and of closed connections' queues not yet collected),
    // 145 MiB with c not stopped.
    expect(maxRss - before).toBeLessThan(1536 * 1024 * 1024);

    c!.proc.child.kill('SIGCONT');
    // (A bound for a hang: 60 s ran out at load average 28, the delivery is not what is measured.)
    await until(async () => (await nodeMetric(a!, 'kvstore_hints_stored')) === 0, 180_000);
    expect(await nodeMetric(a!, 'kvstore_hints_delivered_total')).toBeGreaterThan(0);
  }, 400_000);
});
