// Idle clients cannot starve others: --client-idle-timeout-ms, and ERR MAX_CLIENTS in both framings.

import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(cleanup);

/** A raw connection that records what it received and whether the node closed it. */
async function raw(
  port: number,
): Promise<{ socket: Socket; got: () => string; closed: () => boolean }> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => {});
  defer(() => socket.destroy());
  let got = '';
  let closed = false;
  socket.on('data', (d: Buffer) => {
    got += d.toString();
  });
  socket.on('close', () => {
    closed = true;
  });
  return { socket, got: () => got, closed: () => closed };
}

async function metric(node: NodeProcess, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1));
}

const LINE = 'ERR MAX_CLIENTS server: too many client connections';
const DISPLACED = `${LINE}: this one, silent or not authenticated since it connected, was closed for a new one`;
const WAIT = { timeout: 15_000 };

describe('the connection cap', () => {
  it('answers ERR MAX_CLIENTS framed like the client (text, RESP, silent) and closes', async () => {
    const node = await startNodeProcess({ args: ['--max-connections', '2'] });
    const a = await LineClient.connect(node.port);
    const b = await LineClient.connect(node.port);
    expect(await a.call('PING')).toBe('PONG');
    expect(await b.call('PING')).toBe('PONG');

    const text = await raw(node.port);
    text.socket.write('PING\n');
    const resp = await raw(node.port);
    resp.socket.write('*1\r\n$4\r\nPING\r\n');
    const silent = await raw(node.port); // says nothing: gets the text line
    for (const r of [text, resp, silent]) await expect.poll(r.closed, WAIT).toBe(true);
    expect(text.got()).toBe(`${LINE}\n`);
    expect(resp.got()).toBe(`-${LINE}\r\n`);
    expect(silent.got()).toBe(`${LINE}\n`);

    expect(await metric(node, 'kvstore_connections_rejected_total{reason="limit"}')).toBe(3);
    expect(await metric(node, 'kvstore_connections')).toBe(2);
    expect(await a.call('PING')).toBe('PONG'); // the clients inside are undisturbed
    a.close();
    await expect.poll(() => metric(node, 'kvstore_connections'), WAIT).toBe(1);
    const c = await LineClient.connect(node.port); // room again
    expect(await c.call('PING')).toBe('PONG');
    b.close();
    c.close();
  }, 60_000);
});

// With a password set, connections that never authenticate held every slot for good (as in Redis:
// no timeout by default), and no client with the password could connect until they left.
describe('connections that do not authenticate', () => {
  it('are closed after 10 s, freeing their slots; an authenticated idle one stays', async () => {
    const password = 'open sesame';
    const node = await startNodeProcess({
      args: ['--max-connections', '4'],
      env: { KV_PASSWORD: password },
    });
    const member = await LineClient.connect(node.port);
    defer(() => member.close());
    expect(await member.call(`AUTH ${password}`)).toBe('OK');
    // Three strangers take the other slots: one silent, one pinging, one with a wrong password.
    const silent = await raw(node.port);
    const pinging = await raw(node.port);
    const guessing = await raw(node.port);
    guessing.socket.write('AUTH guess\n');
    const pings = setInterval(() => pinging.socket.write('PING\n'), 1000);
    defer(() => clearInterval(pings));
    // The cap is reached: a newcomer takes the slot of the oldest one not authenticated.
    const newcomer = await raw(node.port);
    await expect.poll(silent.closed, WAIT).toBe(true);
    expect(silent.got()).toBe(`${DISPLACED}\n`);
    for (const s of [newcomer, pinging, guessing])
      await expect.poll(s.closed, { timeout: 30_000 }).toBe(true);
    clearInterval(pings);
    // Each is told why, after the replies to what it sent.
    const told =
      'ERR NOAUTH server: not authenticated within 10 s of connecting, connection closed\n';
    expect(newcomer.got()).toBe(told);
    expect(pinging.got()).toMatch(/^(PONG\n)+ERR NOAUTH server: not authenticated within 10 s/);
    expect(guessing.got()).toMatch(/^ERR .*\nERR NOAUTH server: not authenticated within 10 s/);
    expect(await metric(node, 'kvstore_connections_rejected_total{reason="auth_timeout"}')).toBe(3);
    // The slots are free for clients with the password; the authenticated one was left alone.
    const next = await LineClient.connect(node.port);
    defer(() => next.close());
    expect(await next.call(`AUTH ${password}`)).toBe('OK');
    expect(await member.call('PING')).toBe('PONG');
  }, 60_000);
});

/**
 * An attacker that keeps `n` connections to `port` open, half of them silent and half sending a
 * line one byte a second (slowloris), and opens another 20 ms after the node closes one.
 */
function crowd(port: number, n: number) {
  let stopped = false;
  const open = new Set<Socket>();
  const dial = (i: number) => {
    if (stopped) return;
    const s = connect({ port, host: '127.0.0.1' });
    open.add(s);
    s.on('error', () => {});
    const drip = i % 2 === 0 ? null : setInterval(() => s.writable && s.write('P'), 1000).unref();
    s.once('close', () => {
      open.delete(s);
      if (drip !== null) clearInterval(drip);
      if (!stopped) setTimeout(() => dial(i), 20);
    });
  };
  for (let i = 0; i < n; i++) dial(i);
  const stop = () => {
    stopped = true;
    for (const s of open) s.destroy();
  };
  defer(stop);
  return stop;
}

// Before, strangers that connected and said nothing (or a line a byte a second) held every slot
// for as long as they liked: with no password nothing closed them (--client-idle-timeout-ms is off
// by default), and with one, the 10 s auth timeout freed each slot for the next redial.
describe('strangers at the connection cap', () => {
  it.each([
    ['with no password', undefined],
    ['with a password', 'open sesame'],
  ])(
    'do not keep clients out %s',
    async (_, password) => {
      const node = await startNodeProcess({
        args: ['--max-connections', '20'],
        ...(password === undefined ? {} : { env: { KV_PASSWORD: password } }),
      });
      crowd(node.port, 30);
      await expect.poll(() => metric(node, 'kvstore_connections'), WAIT).toBe(20);
      const clients: LineClient[] = [];
      for (let i = 0; i < 5; i++) {
        const c = await LineClient.connect(node.port);
        defer(() => c.close());
        if (password !== undefined) expect(await c.call(`AUTH ${password}`)).toBe('OK');
        expect(await c.call('PING')).toBe('PONG');
        clients.push(c);
      }
      // The attacker keeps at it for 2 s more; the clients keep their connections.
      await new Promise((r) => setTimeout(r, 2000));
      for (const c of clients) expect(await c.call('PING')).toBe('PONG');
      expect(
        await metric(node, 'kvstore_connections_rejected_total{reason="evicted"}'),
      ).toBeGreaterThan(0);
    },
    60_000,
  );
});

describe('a connection closed for a new one', () => {
  it('is gone within a second even when it does not read the reason', async () => {
    const node = await startNodeProcess({
      args: ['--max-connections', '1'],
      env: { KV_PASSWORD: 'open sesame' },
    });
    // Unauthenticated PINGs are answered; never read, their PONGs fill the socket's buffers.
    const stuffed = await raw(node.port);
    stuffed.socket.pause();
    stuffed.socket.write('PING\n'.repeat(2_000_000));
    await expect
      .poll(() => metric(node, 'kvstore_client_output_bytes'), WAIT)
      .toBeGreaterThan(64 * 1024);
    const newcomer = await raw(node.port);
    await expect.poll(() => metric(node, 'kvstore_connections'), WAIT).toBe(1);
    expect(newcomer.closed()).toBe(false);
    expect(await metric(node, 'kvstore_connections_rejected_total{reason="evicted"}')).toBe(1);
  }, 60_000);
});

describe('--client-idle-timeout-ms', () => {
  it('closes a connection idle that long; traffic keeps one open', async () => {
    const node = await startNodeProcess({ args: ['--client-idle-timeout-ms', '3000'] });
    const idle = await raw(node.port);
    idle.socket.write('PING\n');
    const busy = await LineClient.connect(node.port);
    // 4 s of PINGs 200 ms apart: longer than the timeout, so only the traffic keeps it open.
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      expect(await busy.call('PING')).toBe('PONG');
      await new Promise((r) => setTimeout(r, 200));
    }
    await expect.poll(idle.closed, WAIT).toBe(true);
    expect(idle.got()).toBe('PONG\n');
    expect(busy.closed).toBe(false);
    expect(await metric(node, 'kvstore_connections_idle_closed_total')).toBe(1);
    busy.close();
  }, 60_000);
});
