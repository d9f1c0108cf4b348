// A peer request whose answer is arriving when its timeout runs out: waited for while the answer's
// bytes keep coming at the floor rate (4 Mbit/s) or faster, failed as before when they stop or
// come slower, and never past the client's maxWaitMs.

import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { decodeRequest, encodeResultFrame, FrameDecoder } from '../../src/peer/index.ts';
import { defer } from '../helpers/defer.ts';
import { peerClient } from '../helpers/peer.ts';
import { until } from '../helpers/write-log.ts';

/** How the trickling peer sends: `piece` bytes every `everyMs`, none after `stopAfter` in all. */
interface Trickle {
  readonly piece: number;
  readonly everyMs: number;
  readonly stopAfter?: number;
}

/**
 * A peer on loopback that answers each request `{ n }` with a Buffer of n bytes, its answers'
 * frames one after the other as a connection's answers are, `piece` bytes of them every `everyMs`
 * ms (a slow link). `sent`: the bytes it has sent so far, over all connections.
 */
async function tricklingPeer(how: Trickle) {
  const state = { sent: 0 };
  const sockets: Socket[] = [];
  const srv = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    let out = Buffer.alloc(0);
    const timer = setInterval(() => {
      const left = (how.stopAfter ?? Number.POSITIVE_INFINITY) - state.sent;
      const n = Math.min(how.piece, out.length, left);
      if (n <= 0) return;
      socket.write(out.subarray(0, n));
      out = out.subarray(n);
      state.sent += n;
    }, how.everyMs);
    socket.on('close', () => clearInterval(timer));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== null; f = decoder.next()) {
        const req = decodeRequest(f);
        const { n } = req.b as { n: number };
        out = Buffer.concat([out, encodeResultFrame(req.i, Buffer.alloc(n, 7))]);
      }
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => srv.close(resolve));
  });
  return { port: (srv.address() as AddressInfo).port, state };
}

/** The error `p` rejects with, and the peer's bytes sent by then. */
async function failure(p: Promise<unknown>, state: { sent: number }) {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return { err: err as KvError, sent: state.sent };
  }
  throw new Error('expected a rejection');
}

const MiB = 1024 * 1024;

describe('a peer request whose answer is arriving', () => {
  it('is answered when the answer takes longer than its timeout at over 4 Mbit/s, and so is the one behind it', async () => {
    // 256 KiB every 20 ms: 13 MB/s at most, 8 MiB in 640 ms or more; the timeout is 150 ms.
    const { port, state } = await tricklingPeer({ piece: 256 * 1024, everyMs: 20 });
    const c = peerClient(port, { timeoutMs: 150 });
    // Before: both failed KV_ERR_PEER_TIMEOUT after 150 ms, the large answer partly received.
    const [big, small] = await Promise.all([
      c.request<Buffer>('get', { n: 8 * MiB }),
      c.request<Buffer>('get', { n: 10 }),
    ]);
    expect(big.length).toBe(8 * MiB);
    expect(small.length).toBe(10);
    expect(state.sent).toBeGreaterThan(8 * MiB);
  });

  it('times out when the answer stops coming halfway, and when it comes slower than 4 Mbit/s', async () => {
    // Stops after 512 KiB of 2 MiB.
    const stopped = await tricklingPeer({ piece: 64 * 1024, everyMs: 20, stopAfter: 512 * 1024 });
    const c = peerClient(stopped.port, { timeoutMs: 150 });
    const cut = await failure(c.request('get', { n: 2 * MiB }), stopped.state);
    expect(cut.err.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(cut.sent).toBe(512 * 1024);
    // 8 KiB every 50 ms: 160 KiB/s at most, 1 MiB in 6.4 s or more.
    const slow = await tricklingPeer({ piece: 8 * 1024, everyMs: 50 });
    const d = peerClient(slow.port, { timeoutMs: 150 });
    const late = await failure(d.request('get', { n: MiB }), slow.state);
    expect(late.err.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(late.sent).toBeLessThan(MiB);
  });

  it('times out at maxWaitMs however fast the answers come', async () => {
    const { port, state } = await tricklingPeer({ piece: 64 * 1024, everyMs: 20 });
    const c = peerClient(port, { timeoutMs: 100, maxWaitMs: 300 });
    // 8 MiB take 128 pieces, 2.56 s or more; its own timeout is longer than that.
    const big = c.request<Buffer>('get', { n: 8 * MiB }, { timeoutMs: 60_000 });
    await until(
      () => state.sent > 0,
      10_000,
      () => 'the peer sent nothing',
    );
    // Behind it: waited for while it arrives, up to 300 ms after it was sent, not until it is in.
    const capped = await failure(c.request('get', { n: 10 }), state);
    expect(capped.err.code).toBe('KV_ERR_PEER_TIMEOUT');
    expect(capped.sent).toBeLessThan(8 * MiB);
    expect((await big).length).toBe(8 * MiB);
  });
});
