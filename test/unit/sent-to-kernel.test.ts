import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { TLSSocket, connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { directWrites, writeDirect } from '../../src/net/index.ts';
import { sentToKernel } from '../../src/server/client-output.ts';
import { createPki } from '../helpers/certs.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;

/** Polls sentToKernel(socket) until it stood still over five polls; resolves with it. */
async function settled(socket: Socket): Promise<number> {
  let last = -1;
  let still = 0;
  await until(
    async () => {
      const now = sentToKernel(socket);
      still = now === last ? still + 1 : 0;
      last = now;
      return still >= 5;
    },
    10_000,
    'the kernel to stop taking bytes',
    50,
  );
  return last;
}

/**
 * A server socket that wrote one 32 MiB reply to a client that does not read; the count stands
 * still, then grows once the client reads part of the reply, while writableLength still counts
 * the whole write (why client-output.ts does not go by it).
 */
async function check(
  listen: (onSocket: (s: Socket) => void) => Server,
  open: (port: number) => Socket,
) {
  let served: Socket | null = null;
  const server = listen((s) => {
    served = s;
    s.write(Buffer.alloc(32 * MiB, 0x61));
  });
  defer(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = open(port);
  client.on('error', () => {});
  defer(() => client.destroy());
  // A TLS client reads until its handshake is done, then stops.
  client.once(client instanceof TLSSocket ? 'secureConnect' : 'connect', () => client.pause());
  await until(async () => served !== null, 10_000, 'the connection', 10);
  const socket = served as unknown as Socket;
  defer(() => socket.destroy());
  const stalled = await settled(socket);
  expect(stalled).toBeGreaterThan(0); // the kernel took what its buffers hold
  let read = 0;
  client.on('data', (d: Buffer) => {
    read += d.length;
    if (read >= 8 * MiB) client.pause();
  });
  client.resume();
  await until(async () => read >= 8 * MiB, 20_000, 'the client to read 8 MiB', 10);
  await until(async () => sentToKernel(socket) > stalled, 10_000, 'the count to grow', 10);
  expect(socket.writableLength).toBeGreaterThanOrEqual(32 * MiB); // the write is not done yet
}

describe('sentToKernel', () => {
  it('stands still while a client does not read and grows once it reads (TCP)', async () => {
    await check(
      (onSocket) => createServer(onSocket),
      (port) => connect({ port, host: '127.0.0.1' }),
    );
  });

  it('does the same for a TLS socket, through its TCP socket', async () => {
    const pki = createPki();
    const { cert, key } = pki.issue('server', ['127.0.0.1']);
    await check(
      (onSocket) =>
        tlsServer({ cert: readFileSync(cert), key: readFileSync(key) }, onSocket) as Server,
      (port) => tlsConnect({ port, host: '127.0.0.1', ca: readFileSync(pki.ca) }),
    );
  });

  it('counts the bytes written on the descriptor itself (net/writes.ts), which Node does not see', async () => {
    let served: Socket | null = null;
    const server = createServer((s) => {
      served = s;
    });
    defer(() => new Promise<void>((r) => server.close(() => r())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect({
      port: (server.address() as { port: number }).port,
      host: '127.0.0.1',
    });
    defer(() => client.destroy());
    await until(async () => served !== null, 10_000, 'the connection', 10);
    const socket = served as unknown as Socket;
    defer(() => socket.destroy());
    directWrites(socket);
    const before = sentToKernel(socket);
    expect(writeDirect(socket, Buffer.alloc(1000, 0x61), 100, 900)).toBe(false);
    expect(socket.bytesWritten).toBe(0); // Node did not see it
    expect(sentToKernel(socket)).toBe(before + 800);
  });
});
