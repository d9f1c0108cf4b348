import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Output } from '../../src/server/output.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A connected pair on loopback: the server's end, and the client's (paused: nothing is read). */
async function pair(): Promise<{ server: Socket; client: Socket }> {
  const listener = createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as { port: number };
  const accepted = once(listener, 'connection');
  const client = connect({ port, host: '127.0.0.1' });
  client.pause();
  const [server] = (await accepted) as [Socket];
  closers.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { server, client };
}

describe('Output', () => {
  it('encodes pieces and ranges in order and writes them as one write', async () => {
    const { server, client } = await pair();
    const out = new Output();
    out.push(Buffer.from('$5\r\n'));
    out.pushRange(Buffer.from('xxhelloxx'), 2, 7);
    out.push(Buffer.from('\r\n'));
    out.pushRange(Buffer.alloc(100, 0x61), 10, 90); // longer than a byte-by-byte copy
    expect(out.length).toBe(4 + 5 + 2 + 80);
    out.writeTo(server);
    expect(out.length).toBe(0);
    client.resume();
    const [data] = (await once(client, 'data')) as [Buffer];
    expect(data.toString()).toBe(`$5\r\nhello\r\n${'a'.repeat(80)}`);
  });

  it('never overwrites bytes a write still holds when the kernel did not take them at once', async () => {
    const { server, client } = await pair();
    const out = new Output();
    const piece = 256 * 1024;
    // Fill the kernel's buffers until a write stays queued in the socket.
    let queued = 0;
    while (server.writableLength === 0) {
      out.pushRange(Buffer.alloc(piece, 0x41), 0, piece);
      out.writeTo(server);
      queued += piece;
      expect(queued).toBeLessThan(1024 * 1024 * 1024);
    }
    // The next replies must go to another buffer: the queued write still points at the old one.
    out.pushRange(Buffer.alloc(piece, 0x42), 0, piece);
    out.writeTo(server);
    const want = queued + piece;
    let got = Buffer.alloc(0);
    client.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
    });
    client.resume();
    await expect.poll(() => got.length, { timeout: 10_000 }).toBe(want);
    expect(got.subarray(0, queued).every((b) => b === 0x41)).toBe(true);
    expect(got.subarray(queued).every((b) => b === 0x42)).toBe(true);
  });
});
