// Pipelined HTTP requests on the HTTP port (open to whoever reaches it for /metrics): a connection
// that sends many at once is closed instead of making the node render and hold every answer.

import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { rss } from '../helpers/node-memory.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;
const METRICS = 'GET /metrics HTTP/1.1\r\nHost: kvstore\r\n\r\n';

/** A connection to the HTTP port that keeps what it receives, and whether the node closed it. */
async function httpSocket(node: NodeProcess) {
  const socket = connect({ host: '127.0.0.1', port: node.httpPort });
  defer(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const conn = { socket, data: '', closed: false };
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    conn.data += d.toString('latin1');
  });
  socket.once('close', () => {
    conn.closed = true;
  });
  return conn;
}

describe('pipelined requests on the HTTP port', () => {
  // Before: 2,000 pipelined GET /metrics (80 KB sent) grew the node by 280 MiB while it rendered
  // every answer, and nothing came back for 10 s.
  it('closes a connection with more than 8 requests in progress; the node holds little for it', async () => {
    const node = await startNodeProcess();
    const before = rss(node);
    let peak = before;
    const flood = await httpSocket(node);
    flood.socket.write(METRICS.repeat(2000));
    // Until the node closed it, or grew past what the bound allows.
    await expect
      .poll(
        () => {
          peak = Math.max(peak, rss(node));
          return flood.closed || peak - before > 64 * MiB;
        },
        { timeout: 30_000, interval: 20 },
      )
      .toBe(true);
    expect(peak - before, `grew by ${((peak - before) / MiB).toFixed(0)} MiB or more`).toBeLessThan(
      64 * MiB,
    );
    expect(flood.closed).toBe(true);
    // Eight at once are all answered, and the probes are.
    const eight = await httpSocket(node);
    eight.socket.write(METRICS.repeat(8));
    await expect
      .poll(() => eight.data.split('HTTP/1.1 200 OK').length - 1, { timeout: 20_000 })
      .toBe(8);
    expect(eight.closed).toBe(false);
    expect((await fetch(`http://127.0.0.1:${node.httpPort}/healthz`)).status).toBe(200);
  }, 60_000);
});
