// A peer request whose frame waits behind others to a member that takes them slowly: waited for
// while the connection's bytes leave at the floor rate (4 Mbit/s) or faster, its deadline set as it
// leaves, and failed as before when the member reads nothing or reads slower, or reads and answers
// nothing.

import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  decodeRequest,
  encodeResultFrame,
  FLOOR_RATE,
  FrameDecoder,
} from '../../src/peer/index.ts';
import { tcpScansBegun } from '../../src/peer/tcp-table.ts';
import { defer } from '../helpers/defer.ts';
import { peerClient } from '../helpers/peer.ts';

/**
 * A peer on loopback that reads its connections at `rate` bytes a second (a slow link; none
 * after `stopAfter` bytes) and answers each request at once with whether it came past the
 * deadline its body carries (`d`, ms since the epoch), or never (`answer` false: handlers that
 * hang). `read`: the bytes it has read so far.
 */
async function slowReader(rate: number, stopAfter = Number.POSITIVE_INFINITY, answer = true) {
  const state = { read: 0, late: 0 };
  const sockets: Socket[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const srv = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    const start = performance.now();
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      state.read += chunk.length;
      decoder.push(chunk);
      for (let f = decoder.next(); f !== null; f = decoder.next()) {
        const req = decodeRequest(f);
        const { d } = req.b as { d?: number };
        const late = d !== undefined && Date.now() > d;
        if (late) state.late++;
        if (answer) socket.write(encodeResultFrame(req.i, { late }));
      }
      // Paused until the bytes read so far are due at `rate`.
      const due = state.read >= stopAfter ? Number.POSITIVE_INFINITY : (state.read / rate) * 1000;
      const wait = start + due - performance.now();
      if (wait <= 0) return;
      socket.pause();
      if (!Number.isFinite(wait)) return;
      const t = setTimeout(() => {
        timers.delete(t);
        socket.resume();
      }, wait);
      timers.add(t);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  defer(async () => {
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => srv.close(resolve));
  });
  return { port: (srv.address() as AddressInfo).port, state };
}

const MiB = 1024 * 1024;

/**
 * `n` requests of 1 MiB each and a small one behind them, each with a deadline of its own: their
 * timeout is the client's plus their bytes at 4 Mbit/s (as copies' are), 2.3 s for 1 MiB.
 */
function queueUp(c: ReturnType<typeof peerClient>, n: number, timeoutMs: number) {
  const ask = (size: number) => {
    const t = timeoutMs + Math.ceil((size * 1000) / FLOOR_RATE);
    const body = { d: Date.now() + t, pad: Buffer.alloc(size, 7) };
    return c.request<{ late: boolean }>('put', body, { deadline: true, timeoutMs: t });
  };
  return [...Array.from({ length: n }, () => ask(MiB)), ask(10)];
}

/** What each of `requests` settled as: `ok`, `late` (answered, past its deadline) or a code. */
async function outcomes(requests: Promise<{ late: boolean }>[]) {
  const seen: Record<string, number> = {};
  for (const r of await Promise.allSettled(requests)) {
    const k =
      r.status === 'fulfilled'
        ? r.value.late
          ? 'late'
          : 'ok'
        : r.reason instanceof KvError
          ? r.reason.code
          : String(r.reason);
    seen[k] = (seen[k] ?? 0) + 1;
  }
  return seen;
}

/**
 * 60 requests of 256 KiB, one every 100 ms (five times the floor), each with a 300 ms timeout, to
 * a member that reads its connection at once and answers nothing: what each came to, the bytes
 * the member read, and how many failed while the requests were still being sent.
 */
async function toHungMember(opts: { maxInFlight?: number }) {
  const { port, state } = await slowReader(64 * MiB, Number.POSITIVE_INFINITY, false);
  const c = peerClient(port, { timeoutMs: 300, ...opts });
  let sending = true;
  let failedWhileSending = 0;
  const held: number[] = [];
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    const body = { d: Date.now() + 300, pad: Buffer.alloc(256 * 1024) };
    const sent = performance.now();
    const request = c.request('put', body, { timeoutMs: 300 });
    all.push(
      request.then(
        () => 'answered',
        (err: unknown) => {
          held.push(Math.round(performance.now() - sent));
          if (sending) failedWhileSending++;
          return err instanceof KvError ? err.code : String(err);
        },
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
  }
  sending = false;
  const seen = await Promise.all(all);
  held.sort((x, y) => x - y);
  console.log(`held (ms): median ${held[held.length >> 1]}, max ${held.at(-1)}`);
  return { seen, read: state.read, failedWhileSending };
}

describe('a peer request queued behind others to a slow member', () => {
  it('times out when the member stops reading, and when it reads slower than 4 Mbit/s', async () => {
    // The two members side by side, each with a client of its own. One stops after the first
    // 512 KiB: nothing is answered.
    const stopped = await slowReader(2 * MiB, 512 * 1024);
    const c = peerClient(stopped.port, { timeoutMs: 300 });
    // The other reads 128 KiB/s: 8 s for each 1 MiB; the first may be answered, not the ones
    // behind it.
    const slow = await slowReader(128 * 1024);
    const d = peerClient(slow.port, { timeoutMs: 300 });
    const [none, seen] = await Promise.all([
      outcomes(queueUp(c, 12, 300)),
      outcomes(queueUp(d, 12, 300)),
    ]);
    expect(none).toEqual({ KV_ERR_PEER_TIMEOUT: 13 });
    expect(seen.KV_ERR_PEER_TIMEOUT).toBeGreaterThanOrEqual(12);
    expect(slow.state.read).toBeLessThan(12 * MiB);
  });

  // One history for both: the request with a fixed deadline goes behind the 13, which it does
  // not disturb (it is refused or dropped, the others are waited for as without it).
  it('is answered while the frames ahead of it leave at over 4 Mbit/s, before its deadline; one whose deadline was fixed when it was made (landBy) is not waited for past it', async () => {
    // 2 MiB/s (four times the floor): 12 MiB take 6 s or more, each 1 MiB has 2.3 s.
    const { port, state } = await slowReader(2 * MiB);
    const c = peerClient(port, { timeoutMs: 300 });
    // Before: every request not read by 2.3 s (300 ms for the small one) failed
    // KV_ERR_PEER_TIMEOUT; the deadlines they carried were set when they were made, so those
    // that got there were refused (here: answered `late`).
    const ahead = queueUp(c, 12, 300);
    // A tombstone's copy, or small copies coalesced in a turn, keep the deadline they were sent
    // with (the repair window counts on it): the member refuses them once it has passed, so
    // waiting for them longer only delays that answer (and holds their place in flight).
    const landBy = Date.now() + 300;
    const fixed = c.request<{ late: boolean }>(
      'put',
      { d: landBy, pad: Buffer.alloc(10) },
      { timeoutMs: 300, landBy },
    );
    expect(await outcomes([fixed])).toEqual({ KV_ERR_PEER_TIMEOUT: 1 });
    // The ones with deadlines set as they leave are still waited for.
    expect(await outcomes(ahead)).toEqual({ ok: 13 });
    expect(state.late).toBe(0);
    expect(state.read).toBeGreaterThan(12 * MiB);
  });

  // Two hung members side by side, one per client: the default maxInFlight, and 16.
  it('times out behind others when the member reads its connection but answers nothing, also past twice maxInFlight frames', async () => {
    // It takes every byte at once (handlers that hang, a disk slow enough to hold its writes but
    // not yet called stalled): the bytes leave fast, but the frames ahead are never answered.
    // Before, every request behind the first was waited for as long as the node kept writing.
    // The client keeps at most 2 x maxInFlight unanswered frames to judge the first by: past 32
    // with maxInFlight 16. Dropping the first then made each later one the first, just written,
    // and waited for again: every request after the 32nd was held until the writes stopped (and
    // filled the client's 16 slots: KV_ERR_PEER_OVERLOADED).
    const runs = await Promise.all([toHungMember({}), toHungMember({ maxInFlight: 16 })]);
    for (const [i, { seen, read, failedWhileSending }] of runs.entries()) {
      const which = i === 0 ? 'default maxInFlight' : 'maxInFlight 16';
      expect(new Set(seen), which).toEqual(new Set(['KV_ERR_PEER_TIMEOUT']));
      // It did read what was sent.
      expect(read, which).toBeGreaterThan(50 * 256 * 1024);
      // Each fails about a timeout or two after it was sent, not once the writes stop (before: 1
      // of 60 failed while they went on, the first).
      expect(failedWhileSending, which).toBeGreaterThan(40);
    }
  });

  it("is waited for behind a frame still crossing to the member past that frame's own timeout", async () => {
    // The frame ahead takes 3 s to cross at 2 MiB/s, far past its own 1 s (a link slower than
    // the floor while it crossed): it is not answered within its timeout, but the member's kernel
    // has not had all of it yet (its bytes are still on their way, not held by a handler), so the
    // requests behind it are waited for while the bytes move. (Judging by that frame's answer
    // alone failed them at 2 s: its timeout, then a look.)
    const { port, state } = await slowReader(2 * MiB);
    const c = peerClient(port, { timeoutMs: 1000 });
    const ask = (size: number) =>
      c.request<{ late: boolean }>('put', { pad: Buffer.alloc(size, 7) }, { timeoutMs: 1000 });
    const first = ask(6 * MiB);
    const behind = Array.from({ length: 5 }, () => ask(10));
    // The first has its own timeout only (its frame crossing counts: copies get their bytes at
    // the floor in theirs).
    expect(await outcomes([first])).toEqual({ KV_ERR_PEER_TIMEOUT: 1 });
    expect(await outcomes(behind)).toEqual({ ok: 5 });
    expect(state.read).toBeGreaterThan(6 * MiB);
  });

  it('asks the kernel about a frame still crossing past its own timeout about once a second, not at each look behind it', async () => {
    // 4 MiB frames with a 1 s timeout cross at 2 MiB/s (2 s each: overdue, still crossing), and a
    // small request goes every 10 ms behind them: each looks once a second, at its own time.
    // Before, each look read the kernel's TCP table (tcpLine: one scan per ask not made at once
    // with another; ~15 ms of CPU a scan with 10,000 sockets).
    const { port } = await slowReader(2 * MiB);
    const c = peerClient(port, { timeoutMs: 1000 });
    const all: Promise<{ late: boolean }>[] = [];
    const scans = tcpScansBegun();
    const started = performance.now();
    for (let i = 0; i < 400; i++) {
      if (i % 100 === 0) all.push(c.request('put', { pad: Buffer.alloc(4 * MiB, 7) }));
      all.at(-1)!.catch(() => {});
      all.push(c.request('put', { pad: Buffer.alloc(100, 7) }, { timeoutMs: 1000 }));
      all.at(-1)!.catch(() => {}); // counted by outcomes, once all are made
      await new Promise((r) => setTimeout(r, 10));
    }
    const seen = await outcomes(all);
    const seconds = (performance.now() - started) / 1000;
    const asked = tcpScansBegun() - scans;
    console.log(JSON.stringify({ seen, seconds: Math.round(seconds), scans: asked }));
    // The small requests were waited for behind the frames crossing (about 400 answered).
    expect(seen.ok).toBeGreaterThan(350);
    // 10-25 in 8 s (3 runs: about one a second for the frame crossing, and those of requests
    // whose frames showed no movement); 351-443 before, nearly one for each small request's look.
    expect(asked).toBeLessThan(all.length / 4);
  });

  it('times out at its maxWaitMs however fast the frames ahead of it leave', async () => {
    const { port } = await slowReader(2 * MiB);
    // Shorter than the 1 MiB requests' own timeout: those are not waited for past it; the small
    // one behind them, with its 300 ms, is waited for up to 2 s.
    const c = peerClient(port, { timeoutMs: 300, maxWaitMs: 2000 });
    const seen = await outcomes(queueUp(c, 12, 300));
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.KV_ERR_PEER_TIMEOUT).toBeGreaterThan(1);
    expect(seen.late ?? 0).toBe(0);
  });
});
