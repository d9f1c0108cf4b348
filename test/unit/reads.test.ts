// onReads: a server socket's input through the process's shared read buffer, each read a Buffer
// of its own, with pause/resume and 'end' as with the stream.

import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { onReads, type Reads } from '../../src/net/index.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A server whose sockets read through onReads; returns its port and the accepted sockets. */
interface Accepted {
  socket: Socket;
  reads: Reads;
  /** Every read, then 'END' once onEnd was called. */
  chunks: Buffer[];
}

/** A server whose sockets read through onReads; returns its port and the accepted sockets. */
async function serve(): Promise<{ port: number; accepted: Promise<Accepted>[] }> {
  const waiters: ((v: Accepted) => void)[] = [];
  const accepted = Array.from({ length: 4 }, () => new Promise<Accepted>((r) => waiters.push(r)));
  const server: Server = createServer((socket) => {
    const chunks: Buffer[] = [];
    // Anything the stream emits itself would mean the shared buffer was not used.
    socket.on('data', (d: Buffer) => {
      if (d.length > 0) chunks.push(Buffer.from(`stream:${d.length}`));
    });
    const reads = onReads(
      socket,
      (chunk) => chunks.push(chunk),
      () => chunks.push(Buffer.from('END')),
    );
    socket.on('error', () => {});
    waiters.shift()?.({ socket, reads, chunks });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return { port: (server.address() as AddressInfo).port, accepted };
}

async function client(port: number): Promise<Socket> {
  const c = connect(port, '127.0.0.1');
  cleanups.push(() => c.destroy());
  await once(c, 'connect');
  return c;
}

function write(c: Socket, s: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => c.write(s, (err) => (err ? reject(err) : resolve())));
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

it('gives each read as a Buffer of its own, kept intact by later reads of any socket, and then end', async () => {
  const { port, accepted } = await serve();
  const a = await client(port);
  const b = await client(port);
  const [sa, sb] = await Promise.all([accepted[0]!, accepted[1]!]);
  const sent = { a: '', b: '' };
  for (let i = 0; i < 50; i++) {
    const pa = `a${i}:${'x'.repeat(i * 37)}|`;
    const pb = `b${i}:${'y'.repeat(i * 11)}|`;
    sent.a += pa;
    sent.b += pb;
    await write(a, pa);
    await write(b, pb);
    await until(() => Buffer.concat(sa.chunks).length === sent.a.length, 'a');
    await until(() => Buffer.concat(sb.chunks).length === sent.b.length, 'b');
  }
  // A read larger than the Buffer pool's pieces, too.
  const big = Buffer.alloc(200_000, 'z');
  await write(a, big);
  sent.a += big.toString();
  await until(() => Buffer.concat(sa.chunks).length === sent.a.length, 'a big');
  expect(Buffer.concat(sa.chunks).toString()).toBe(sent.a);
  expect(Buffer.concat(sb.chunks).toString()).toBe(sent.b);
  expect(sa.chunks.length).toBeGreaterThan(50);
  a.end();
  await until(() => sa.chunks.at(-1)?.toString() === 'END', 'the end');
});

/** A client and its server socket, which read 'first' and was then paused. */
async function pausedAfterFirst() {
  const { port, accepted } = await serve();
  const a = await client(port);
  const sa = await accepted[0]!;
  await write(a, 'first');
  await until(() => sa.chunks.length === 1, 'first read');
  sa.reads.pause();
  return { port, accepted, a, sa };
}

it('delivers nothing while paused, then what came meanwhile and the end after resume', async () => {
  const { port, accepted, a, sa } = await pausedAfterFirst();
  // Once the write returned, the bytes are in the server's receive queue; a second socket's
  // bytes delivered after that show the loop polled since, when a delivering socket's would
  // have come.
  await write(a, 'second');
  const b = await client(port);
  const sb = await accepted[1]!;
  await write(b, 'probe');
  await until(() => sb.chunks.length === 1, 'probe');
  expect(Buffer.concat(sa.chunks).toString()).toBe('first');
  a.end();
  sa.reads.resume();
  // Nothing from inside resume(): the queue comes in a later tick, then the end.
  expect(Buffer.concat(sa.chunks).toString()).toBe('first');
  await until(() => Buffer.concat(sa.chunks).toString() === 'firstsecondEND', 'second read, end');
});

it('sees a reset while paused: the socket closes with its input undelivered', async () => {
  const { a, sa } = await pausedAfterFirst();
  await write(a, 'second');
  const closed = new Promise((resolve) => sa.socket.once('close', resolve));
  a.resetAndDestroy();
  await closed;
  expect(Buffer.concat(sa.chunks).toString()).toBe('first');
});
