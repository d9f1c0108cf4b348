// test/fetch-setup.ts: a test's fetch never sends a request on a connection the server may be closing.

import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';

/**
 * An HTTP server that answers one request per connection with keep-alive, and closes a
 * connection on which a second request arrives without answering it: what a server does whose
 * keep-alive timeout fires as the next request arrives (a node's HTTP port: 5 s), which a loaded
 * machine makes likely. Resolves with its port and the connections it accepted.
 */
async function closingServer(): Promise<{ port: number; connections: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let served = 0;
    let head = '';
    socket.on('data', (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      head = '';
      if (served++ > 0) return void socket.destroy();
      socket.write(
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok',
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  defer(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as { port: number }).port, connections: () => accepted };
}

it('a connection per GET: one the server closes after its answer fails no later GET', async () => {
  const { port, connections } = await closingServer();
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(await r.text()).toBe('ok');
  }
  expect(connections()).toBe(3);
});

it('a request with a body answered before the body was read gets the answer', async () => {
  // As the admin API refuses a POST without a valid proof (401) before reading its body.
  const server = createHttpServer((_req, res) => res.writeHead(401).end('no\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  defer(() => new Promise((r) => server.close(r)));
  const { port } = server.address() as { port: number };
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/admin`, {
      method: 'POST',
      body: Buffer.alloc(256 * 1024),
    });
    expect([r.status, await r.text()]).toEqual([401, 'no\n']);
  }
});
