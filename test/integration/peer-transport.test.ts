import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  answerPeerChallenge,
  checkPeerProof,
  type PeerChallengeState,
  peerHandshake,
} from '../../src/auth/index.ts';
import { KvError } from '../../src/errors/index.ts';
import { decodeRequest, encodeResult, FrameDecoder, frameHeader } from '../../src/peer/index.ts';
import { defer } from '../helpers/defer.ts';
import { peerClient as client, peerServer as server } from '../helpers/peer.ts';

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<KvError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error('expected a rejection');
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const values = (await registry.getSingleMetric(name)!.get()).values;
  const match = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return match?.value ?? 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A server that answers `hang` only when the test releases it (`hung`; all released when the
 * test ends) and echoes anything else.
 */
async function hangingServer() {
  const hung: (() => void)[] = [];
  defer(async () => {
    for (const release of hung) release();
  });
  const s = await server((method, body) =>
    method === 'hang' ? new Promise((resolve) => hung.push(() => resolve('late'))) : body,
  );
  return { s, hung };
}

describe('peer transport', () => {
  it('multiplexes concurrent requests answered out of order; Buffers round-trip', async () => {
    const order: number[] = [];
    const s = await server(async (method, body) => {
      const b = body as { n: number; data: Buffer };
      await sleep(Math.random() * 20);
      order.push(b.n);
      return { method, n: b.n, data: b.data, len: b.data.length };
    });
    const c = client(s.port);
    const sent = Array.from({ length: 2000 }, (_, n) => ({
      n,
      data: Buffer.from(`value-${n}-${'x'.repeat(n % 50)}\u0000\u00ff`),
    }));
    const replies = await Promise.all(
      sent.map((b) =>
        c.request<{ method: string; n: number; data: Buffer; len: number }>('echo', b),
      ),
    );
    replies.forEach((r, n) => {
      expect(r.n).toBe(n);
      expect(r.method).toBe('echo');
      expect(Buffer.isBuffer(r.data)).toBe(true);
      expect(r.data.equals(sent[n]!.data)).toBe(true);
      expect(r.len).toBe(sent[n]!.data.length);
    });
    // Handlers really finished out of order, so matching by id was exercised.
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
  });

  it('times out a request that is never answered; later requests still work', async () => {
    const { s, hung } = await hangingServer();
    const c = client(s.port, { timeoutMs: 200 });
    expect(await c.request('echo', 1)).toBe(1);
    const started = performance.now();
    const err = await failure(c.request('hang', null));
    const elapsed = performance.now() - started;
    expect(err.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(err.message).toMatch(/^peer: hang to 127\.0\.0\.1:\d+ timed out after 200 ms/);
    // Not before the timeout (how late after it depends on the machine's load, not the code).
    expect(elapsed).toBeGreaterThanOrEqual(190);
    // A per-request timeout overrides the client's: the message names the one that fired.
    const short = await failure(c.request('hang', null, { timeoutMs: 50 }));
    expect(short.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(short.message).toMatch(/ timed out after 50 ms/);
    // The late responses are ignored; the connection stays usable.
    for (const release of hung.splice(0)) release();
    expect(await c.request('echo', 'after')).toBe('after');
    expect(c.state).toBe('connected');
    expect(c.inFlight).toBe(0);
  });

  it('times out each outstanding request after its own timeout, however many wait at once', async () => {
    const { s, hung } = await hangingServer();
    const c = client(s.port, { timeoutMs: 300 });
    // The echoes are answered at once, but get a timeout of their own that no load reaches: at
    // load 29 one with the client's 300 ms timed out (the process not scheduled in time).
    const echo = (v: unknown) => c.request('echo', v, { timeoutMs: 30_000 });
    expect(await echo(0)).toBe(0);
    /** When `p` settled, in ms after `from`, and how. */
    const timed = (p: Promise<unknown>, from: number) =>
      p.then(
        (v) => ({ ms: performance.now() - from, err: null, v }),
        (err: KvError) => ({ ms: performance.now() - from, err, v: undefined }),
      );
    const firstAt = performance.now();
    const first = timed(c.request('hang', 'first'), firstAt);
    await sleep(150);
    // Sent while the first waits: one with the client's timeout, one with its own (shorter),
    // one answered at once.
    const secondAt = performance.now();
    const second = timed(c.request('hang', 'second'), secondAt);
    const short = timed(c.request('hang', 'short', { timeoutMs: 100 }), secondAt);
    expect(await echo(1)).toBe(1);
    const [a, b, s2] = await Promise.all([first, second, short]);
    expect(s2.err?.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(s2.err?.message).toMatch(/ timed out after 100 ms/);
    expect(s2.ms).toBeGreaterThanOrEqual(98);
    expect(a.err?.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(a.ms).toBeGreaterThanOrEqual(298);
    // Not with the first: 300 ms after it was sent itself (how late after it depends on the load).
    expect(b.err?.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(b.err?.message).toMatch(/^peer: hang to 127\.0\.0\.1:\d+ timed out after 300 ms/);
    expect(b.ms).toBeGreaterThanOrEqual(298);
    expect(c.inFlight).toBe(0);
    // Nothing waited meanwhile: a request sent now still times out, after its whole timeout.
    const lastAt = performance.now();
    const last = await timed(c.request('hang', 'last'), lastAt);
    expect(last.err?.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(last.ms).toBeGreaterThanOrEqual(298);
    for (const release of hung.splice(0)) release();
    expect(await echo('after')).toBe('after');
  });

  it('propagates remote error codes; other failures become KV_ERR_INTERNAL', async () => {
    const s = await server(async (method) => {
      if (method === 'sync-kv') throw new KvError('KV_ERR_INVALID_KEY', 'storage: bad key');
      if (method === 'async-kv') {
        await sleep(1);
        throw new KvError('KV_ERR_STORAGE', 'storage: disk full');
      }
      if (method === 'plain') throw new TypeError('boom');
      if (method === 'unencodable') return 2n ** 80n;
      return 'ok';
    });
    const c = client(s.port);
    const e1 = await failure(c.request('sync-kv', null));
    expect([e1.code, e1.message]).toEqual(['KV_ERR_INVALID_KEY', 'storage: bad key']);
    const e2 = await failure(c.request('async-kv', null));
    expect([e2.code, e2.message]).toEqual(['KV_ERR_STORAGE', 'storage: disk full']);
    const e3 = await failure(c.request('plain', null));
    expect([e3.code, e3.message]).toEqual(['KV_ERR_INTERNAL', 'peer: boom']);
    const e4 = await failure(c.request('unencodable', null));
    expect(e4.code).toBe('KV_ERR_INTERNAL');
    expect(await c.request('fine', null)).toBe('ok');
  });

  it('uses exactly one TCP connection for 1000 requests', async () => {
    const registry = new Registry();
    let accepted = 0;
    const s = await server((_m, body) => body, { registry });
    const c = client(s.port, { registry });
    // In bursts and one at a time, with idle gaps between.
    await Promise.all(Array.from({ length: 500 }, (_, i) => c.request('echo', i)));
    for (let i = 0; i < 100; i++) expect(await c.request('echo', i)).toBe(i);
    await sleep(20);
    for (let burst = 0; burst < 4; burst++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => c.request('echo', i)));
    }
    accepted = await metric(registry, 'kvstore_peer_connections_accepted_total');
    expect(accepted).toBe(1);
    expect(s.connectionCount).toBe(1);
    expect(await metric(registry, 'kvstore_peer_connects_total', { result: 'ok' })).toBe(1);
    expect(await metric(registry, 'kvstore_peer_requests_sent_total', { method: 'echo' })).toBe(
      1000,
    );
    expect(await metric(registry, 'kvstore_peer_requests_received_total')).toBe(1000);
  });

  it('exports kvstore_peer_* metrics without address labels', async () => {
    const registry = new Registry();
    const s = await server((m) => (m === 'bad' ? Promise.reject(new Error('x')) : 'ok'), {
      registry,
    });
    const c = client(s.port, { registry });
    await c.request('good', null);
    await failure(c.request('bad', null));
    const text = await registry.metrics();
    expect(text).toMatch(
      /kvstore_peer_request_duration_seconds_bucket\{le="0.0001",method="good"\}/,
    );
    expect(
      await metric(registry, 'kvstore_peer_errors_total', { code: 'INTERNAL', side: 'client' }),
    ).toBe(1);
    expect(
      await metric(registry, 'kvstore_peer_errors_total', { code: 'INTERNAL', side: 'server' }),
    ).toBe(1);
    expect(await metric(registry, 'kvstore_peer_connections', { side: 'client' })).toBe(1);
    expect(await metric(registry, 'kvstore_peer_connections', { side: 'server' })).toBe(1);
    expect(await metric(registry, 'kvstore_peer_requests_in_flight', { side: 'client' })).toBe(0);
    expect(
      await metric(registry, 'kvstore_peer_sent_bytes_total', { side: 'client' }),
    ).toBeGreaterThan(0);
    expect(await metric(registry, 'kvstore_peer_received_bytes_total', { side: 'client' })).toBe(
      await metric(registry, 'kvstore_peer_sent_bytes_total', { side: 'server' }),
    );
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toMatch(/\b(peer|address|remote)="/);
  });
});

/** A raw TCP peer: records how the client's bytes arrive and answers every request frame. */
async function rawPeer(): Promise<{
  server: Server;
  port: number;
  chunks: number[];
  sockets: Socket[];
}> {
  const chunks: number[] = [];
  const sockets: Socket[] = [];
  const srv = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk.length);
      decoder.push(chunk);
      for (let f = decoder.next(); f !== null; f = decoder.next()) {
        const req = decodeRequest(f);
        const body = encodeResult(req.i, req.b);
        socket.write(Buffer.concat([frameHeader(body.length), body]));
      }
    });
    socket.on('error', () => {});
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => srv.close(resolve));
  });
  return { server: srv, port: (srv.address() as AddressInfo).port, chunks, sockets };
}

describe('peer handshake', () => {
  /** A server that requires the cluster-secret handshake, as the replica handler does. */
  async function authServer(secret: string, seen: string[], challengeDelayMs = 0) {
    return server(
      async (method, body, ctx) => {
        seen.push(method);
        if (method === 'challenge') {
          await sleep(challengeDelayMs);
          const { reply, state } = answerPeerChallenge(secret, body);
          ctx.session.handshake = state;
          return reply;
        }
        if (method === 'auth') {
          checkPeerProof(secret, body, (ctx.session.handshake as PeerChallengeState) ?? null);
          ctx.session.authenticated = true;
          return { ok: true };
        }
        if (!ctx.session.authenticated) throw new KvError('KV_ERR_NOAUTH', 'not authenticated');
        return body;
      },
      { requireAuth: true },
    );
  }

  it('holds the requests made while the handshake runs and sends them after it, in order', async () => {
    const seen: string[] = [];
    const s = await authServer('swordfish', seen, 100);
    const c = client(s.port, { handshake: peerHandshake('swordfish') });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, n) => c.request('echo', n)));
    expect(replies).toEqual(Array.from({ length: 50 }, (_, n) => n));
    // The server refuses (and hangs up on) anything before the proof: none came early.
    expect(seen).toEqual(['challenge', 'auth', ...Array<string>(50).fill('echo')]);
  });

  it('fails the held requests when the node does not prove the secret, then backs off', async () => {
    const seen: string[] = [];
    const s = await authServer('swordfish', seen);
    const c = client(s.port, { handshake: peerHandshake('guess'), maxBackoffMs: 60_000 });
    const errs = await Promise.all(
      [c.request('echo', 1), c.request('echo', 2)].map((p) => failure(p)),
    );
    for (const err of errs) {
      expect(err.code).toBe('KV_ERR_NOAUTH');
      expect(err.message).toMatch(/did not prove the cluster secret/);
    }
    // Nothing but the challenge left this client: no proof of its own, no request.
    expect(seen).toEqual(['challenge']);
    await expect.poll(() => c.state).toBe('backoff');
    expect((await failure(c.request('echo', 3))).message).toMatch(/retrying after backoff/);
    expect(seen).toEqual(['challenge']);
  });
});

describe('peer wire behaviour', () => {
  it('sends the frames queued in one turn in one socket write', async () => {
    const peer = await rawPeer();
    const c = client(peer.port);
    expect(await c.request('warm', 0)).toBe(0); // connected
    peer.chunks.length = 0;
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => c.request('m', i)));
    expect(replies).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // ~3.6 KB written with one writev arrives in one read on loopback.
    expect(peer.chunks.length).toBe(1);
  });

  it('closes a connection that sends an oversize frame; the client reconnects', async () => {
    const s = await server((_m, body) => body, { maxFrameBytes: 1024 });
    const c = client(s.port);
    expect(await c.request('echo', 'small')).toBe('small');
    const pending = c.request('echo', 'x'.repeat(2000));
    expect((await failure(pending)).code).toBe('KV_ERR_PEER_UNAVAILABLE');
    expect(await c.request('echo', 'again')).toBe('again');
  });

  it('refuses a request over its own frame limit without sending it', async () => {
    const s = await server((_m, body) => body);
    const c = client(s.port, { maxFrameBytes: 100 });
    expect(await c.request('echo', 1)).toBe(1);
    const err = await failure(c.request('echo', Buffer.alloc(200)));
    expect(err.code).toBe('KV_ERR_PEER_PROTOCOL');
    expect(c.state).toBe('connected');
    expect(await c.request('echo', 2)).toBe(2);
  });

  it('closes the connection on a malformed request frame', async () => {
    const registry = new Registry();
    const s = await server((_m, body) => body, { registry });
    const { connect } = await import('node:net');
    const socket = connect(s.port, '127.0.0.1');
    defer(async () => socket.destroy());
    await once(socket, 'connect');
    const junk = Buffer.from([0x93, 1, 2, 3]); // an array, not {i, m, b}
    socket.write(Buffer.concat([frameHeader(junk.length), junk]));
    await once(socket, 'close');
    expect(
      await metric(registry, 'kvstore_peer_errors_total', {
        code: 'PEER_PROTOCOL',
        side: 'server',
      }),
    ).toBe(1);
  });
});
