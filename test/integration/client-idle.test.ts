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
    const refused = await raw(node.port);
    await expect.poll(refused.closed, WAIT).toBe(true);
    expect(refused.got()).toBe(`${LINE}\n`);
    for (const s of [silent, pinging, guessing])
      await expect.poll(s.closed, { timeout: 30_000 }).toBe(true);
    clearInterval(pings);
    // Each is told why, after the replies to what it sent.
    const told =
      'ERR NOAUTH server: not authenticated within 10 s of connecting, connection closed\n';
    expect(silent.got()).toBe(told);
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
