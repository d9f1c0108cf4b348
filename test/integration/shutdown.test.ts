// Bounded shutdown: whatever clients and peers do, SIGTERM drains and the node exits 0.

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FORCE_GRACE_MS } from '../../src/lifecycle/index.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

function raw(port: number, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(s));
    s.once('error', reject);
    s.on('error', () => {});
    defer(() => s.destroy());
  });
}

async function metric(node: NodeProcess, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1));
}

const msgs = (node: NodeProcess) => node.logs.map((l) => l.msg);

/** A client that sends GETs of a 16 KiB value and never reads: the node stops reading it. */
async function stuckClient(node: NodeProcess): Promise<Socket> {
  const c = await LineClient.connect(node.port);
  expect(await c.call(`PUT big ${'v'.repeat(16 * 1024)}`)).toBe('OK');
  c.close();
  const s = await raw(node.port);
  s.pause();
  s.write(Buffer.from('GET big\n'.repeat(2_000_000))); // 30 GiB of replies
  // Accepted is enough: the drain cannot finish, it would have to deliver 30 GiB to the socket.
  await expect.poll(() => metric(node, 'kvstore_connections'), { timeout: 15_000 }).toBe(1);
  return s;
}

// A node that waited for a client would sit at --shutdown-timeout-ms (10 minutes here) and the
// test would time out; "shutdown timed out" would be logged had the deadline been what ended it.
const NEVER = ['--shutdown-timeout-ms', '600000'];

describe('bounded shutdown', () => {
  it('closes idle client, HTTP and peer connections at once and exits 0', async () => {
    const node = await startNodeProcess({ args: NEVER });
    const idle = await LineClient.connect(node.port);
    expect(await idle.call('PING')).toBe('PONG');
    const silent = await raw(node.port); // connected, never sends a byte
    const deaf = await raw(node.port, true); // ignores the node's FIN, never closes
    deaf.write('PING\n');
    await once(deaf, 'data');
    await raw(node.httpPort); // an HTTP connection with no request
    await raw(node.peerPort, true); // a peer connection that never authenticates nor closes
    await expect.poll(() => metric(node, 'kvstore_connections'), { timeout: 15_000 }).toBe(3);
    const eofs = [once(silent, 'end'), once(deaf, 'end')];
    expect(await node.stop('SIGTERM')).toBe(0);
    await Promise.all(eofs);
    expect(msgs(node)).toContain('node stopped');
    expect(msgs(node)).not.toContain('shutdown timed out');
    expect(idle.closed).toBe(true);
  }, 60_000);

  it('does not wait for a client that writes after the EOF (PING, then close)', async () => {
    const node = await startNodeProcess({ args: NEVER });
    const s = await raw(node.port, true);
    s.on('end', () => {
      s.write('PING\n');
      s.end();
    });
    s.write('PING\n');
    await once(s, 'data');
    const closed = new Promise((resolve) => s.once('close', resolve));
    expect(await node.stop('SIGTERM')).toBe(0);
    await closed;
    expect(msgs(node)).not.toContain('shutdown timed out');
  }, 60_000);

  it('cuts a client that never reads at --shutdown-timeout-ms and exits 0', async () => {
    const node = await startNodeProcess({ args: ['--shutdown-timeout-ms', '1000'] });
    const s = await stuckClient(node);
    const closed = new Promise((resolve) => s.once('close', resolve));
    expect(await node.stop('SIGTERM')).toBe(0);
    expect(msgs(node)).toContain('shutdown timed out');
    expect(msgs(node)).toContain('node stopped');
    s.resume(); // lets the socket see the reset
    await closed;
  }, 60_000);

  it('answers what a mid-pipeline client sent before the drain; every OK is durable', async () => {
    const dataDir = tempDir();
    const node = await startNodeProcess({ dataDir, args: NEVER });
    const c = await LineClient.connect(node.port);
    let sent = 0;
    let replies: string[] = [];
    const pump = async () => {
      while (!c.closed) {
        c.send(
          Array.from({ length: 200 }, (_, i) => `PUT pipe:${sent + i} v${sent + i}\n`).join(''),
        );
        sent += 200;
        replies = replies.concat(await c.lines(200).catch(() => []));
      }
    };
    const pumping = pump();
    await expect.poll(() => replies.length, { timeout: 15_000 }).toBeGreaterThan(1000);
    expect(await node.stop('SIGTERM')).toBe(0);
    await pumping;
    expect(msgs(node)).not.toContain('shutdown timed out');
    expect(replies.every((r) => r === 'OK')).toBe(true);
    const again = await startNodeProcess({ dataDir });
    const d = await LineClient.connect(again.port);
    const got = await Promise.all(
      [0, Math.floor(replies.length / 2), replies.length - 1].map((i) => d.call(`GET pipe:${i}`)),
    );
    expect(got).toEqual(
      [0, Math.floor(replies.length / 2), replies.length - 1].map((i) => `v${i}`),
    );
    d.close();
  }, 60_000);
});

describe('stop signals', () => {
  it('a second signal within the grace period does not cut the drain short: exit 0', async () => {
    const node = await startNodeProcess({ args: ['--shutdown-timeout-ms', '2000'] });
    await stuckClient(node); // keeps the drain busy until its deadline
    // As one Ctrl-C reaches a node twice: the terminal's SIGINT and a supervisor's SIGTERM.
    node.child.kill('SIGINT');
    node.child.kill('SIGTERM');
    await expect
      .poll(() => msgs(node), { timeout: 15_000 })
      .toContain('signal received again, still draining');
    expect(await node.exited).toBe(0);
    expect(msgs(node)).toContain('shutdown timed out');
  }, 60_000);

  it('a second signal after the grace period exits at once with 1, the directory free again', async () => {
    const node = await startNodeProcess({ args: NEVER });
    await stuckClient(node);
    node.child.kill('SIGTERM');
    await expect.poll(() => msgs(node), { timeout: 15_000 }).toContain('signal received');
    // Past FORCE_GRACE_MS after the node took the first signal (it logged it before we saw it).
    await new Promise((r) => setTimeout(r, FORCE_GRACE_MS + 200));
    expect(msgs(node)).not.toContain('node stopped'); // still draining: the drain never ends
    node.child.kill('SIGINT');
    expect(await node.exited).toBe(1);
    expect(msgs(node)).toContain('signal received again, exiting now');
    expect(msgs(node)).not.toContain('signal received again, still draining');
    const again = await startNodeProcess({ dataDir: node.dataDir });
    const c = await LineClient.connect(again.port);
    expect((await c.call('GET big')).length).toBe(16 * 1024);
    c.close();
  }, 60_000);
});
