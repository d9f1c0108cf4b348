import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { atTurnEnd } from '../../src/net/index.ts';
import { Output, WRITE_NOW_BYTES } from '../../src/server/output.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

interface Pair {
  readonly server: Socket;
  readonly client: Socket;
}

/** A connected pair on loopback: the server's end, and the client's (paused: nothing is read). */
async function pair(): Promise<Pair> {
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

/** Resumes the client and gives the first chunk it reads, as text. */
async function firstRead(client: Socket): Promise<string> {
  const got = once(client, 'data');
  client.resume();
  const [data] = (await got) as [Buffer];
  return data.toString();
}

/** Encodes `text` into `out` and sends it to `socket`. */
function sendText(out: Output, socket: Socket, text: string): void {
  out.push(Buffer.from(text));
  out.send(socket);
}

/** The end of this turn: every end-of-turn pass queued so far has run. */
const turnEnd = () => new Promise((r) => setImmediate(r));

/** An Output whose last turn wrote to two sockets, so this turn's replies wait for its end. */
async function busyOutput(): Promise<Output> {
  const out = new Output();
  const x = await pair();
  const y = await pair();
  sendText(out, x.server, '+x\r\n');
  sendText(out, y.server, '+y\r\n');
  await turnEnd();
  return out;
}

/** Two connected pairs and a busy Output (see busyOutput). */
async function busyPairs(): Promise<{ a: Pair; b: Pair; out: Output }> {
  return { a: await pair(), b: await pair(), out: await busyOutput() };
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
    out.send(server);
    out.writeAll();
    expect(out.length).toBe(0);
    expect(await firstRead(client)).toBe(`$5\r\nhello\r\n${'a'.repeat(80)}`);
  });

  it('never overwrites bytes a write still holds when the kernel did not take them at once', async () => {
    const { server, client } = await pair();
    const out = new Output();
    const piece = 256 * 1024;
    // Fill the kernel's buffers until a write stays queued in the socket.
    let queued = 0;
    while (server.writableLength === 0) {
      out.pushRange(Buffer.alloc(piece, 0x41), 0, piece);
      out.send(server); // past WRITE_NOW_BYTES: written at once
      queued += piece;
      expect(queued).toBeLessThan(1024 * 1024 * 1024);
    }
    // The next replies must go to another buffer: the queued write still points at the old one.
    out.pushRange(Buffer.alloc(piece, 0x42), 0, piece);
    out.send(server);
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

  it('writes each socket its own bytes at the end of the turn, not when sent', async () => {
    const { a, b, out } = await busyPairs();
    sendText(out, a.server, '+A1\r\n');
    sendText(out, b.server, '+B1\r\n');
    sendText(out, a.server, '+A2\r\n');
    // Nothing is written while this run goes on: the sends wait for the turn's end.
    expect(a.server.bytesWritten + b.server.bytesWritten).toBe(0);
    expect(out.length).toBe(15);
    await turnEnd();
    expect(out.length).toBe(0);
    expect(a.server.bytesWritten).toBe(10);
    expect(b.server.bytesWritten).toBe(5);
    const got = Promise.all([once(a.client, 'data'), once(b.client, 'data')]);
    a.client.resume();
    b.client.resume();
    const [[da], [db]] = (await got) as [[Buffer], [Buffer]];
    expect(da.toString()).toBe('+A1\r\n+A2\r\n');
    expect(db.toString()).toBe('+B1\r\n');
  });

  it("merges a socket's sends in a row into one write", async () => {
    const { server, client } = await pair();
    const out = await busyOutput();
    const writes: number[] = [];
    const write = server.write.bind(server);
    server.write = ((chunk: Buffer) => {
      writes.push(chunk.length);
      return write(chunk);
    }) as typeof server.write;
    for (let i = 0; i < 5; i++) {
      out.push(Buffer.from(`:${i}\r\n`));
      out.send(server);
    }
    out.writeAll();
    expect(writes).toEqual([20]);
    expect(await firstRead(client)).toBe(':0\r\n:1\r\n:2\r\n:3\r\n:4\r\n');
  });

  it('writes at once once WRITE_NOW_BYTES wait, every socket sent before included', async () => {
    const { a, b, out } = await busyPairs();
    sendText(out, a.server, '+small\r\n');
    expect(a.server.bytesWritten).toBe(0);
    out.pushRange(Buffer.alloc(WRITE_NOW_BYTES, 0x62), 0, WRITE_NOW_BYTES);
    out.send(b.server);
    expect(out.length).toBe(0);
    expect(a.server.bytesWritten).toBe(8);
    expect(b.server.bytesWritten).toBe(WRITE_NOW_BYTES);
  });

  it('skips a socket destroyed before the turn ended, and the others still get theirs', async () => {
    const { a, b, out } = await busyPairs();
    sendText(out, a.server, '+gone\r\n');
    sendText(out, b.server, '+kept\r\n');
    a.server.destroy();
    const errors: unknown[] = [];
    a.server.on('error', (e) => errors.push(e));
    await turnEnd();
    expect(await firstRead(b.client)).toBe('+kept\r\n');
    expect(a.server.bytesWritten).toBe(0);
    expect(errors).toEqual([]);
  });

  it('keeps bytes encoded but not sent yet across a writeAll, for the socket that sends them', async () => {
    const { a, b, out } = await busyPairs();
    sendText(out, a.server, '+a\r\n');
    out.push(Buffer.from('+later\r\n')); // encoded, not sent yet
    out.writeAll();
    expect(a.server.bytesWritten).toBe(4);
    expect(out.unsent).toBe(8);
    out.send(b.server);
    out.writeAll();
    expect(await firstRead(b.client)).toBe('+later\r\n');
    expect(await firstRead(a.client)).toBe('+a\r\n');
  });

  it('discard drops only what was not sent yet', async () => {
    const { server, client } = await pair();
    const out = await busyOutput();
    sendText(out, server, '+sent\r\n');
    out.push(Buffer.from('+dropped\r\n'));
    out.discard();
    expect(out.length).toBe(7);
    expect(out.unsent).toBe(0);
    out.writeAll();
    expect(await firstRead(client)).toBe('+sent\r\n');
  });

  it('writes replies flushed later in the same end-of-turn pass (atTurnEnd) with the others', async () => {
    const { a, b, out } = await busyPairs();
    sendText(out, a.server, '+first\r\n'); // its write is queued for the end of this turn
    // A connection whose reply finished asynchronously flushes at the end of the turn too.
    atTurnEnd(() => {
      sendText(out, b.server, '+b\r\n');
    });
    await turnEnd();
    expect(a.server.bytesWritten).toBe(8);
    expect(b.server.bytesWritten).toBe(4);
    expect(out.length).toBe(0);
  });

  it("writes a lone connection's reply at once, and waits again after a turn with several", async () => {
    const a = await pair();
    const b = await pair();
    const out = new Output();
    sendText(out, a.server, '+1\r\n');
    expect(a.server.bytesWritten).toBe(4); // the turn before wrote to no socket: at once
    await turnEnd();
    sendText(out, a.server, '+2\r\n');
    expect(a.server.bytesWritten).toBe(8); // the turn before had one socket: at once
    sendText(out, b.server, '+3\r\n');
    expect(b.server.bytesWritten).toBe(0); // a second socket in this turn waits for its end
    await turnEnd();
    expect(b.server.bytesWritten).toBe(4);
    sendText(out, a.server, '+4\r\n');
    expect(a.server.bytesWritten).toBe(8); // the turn before had two sockets: waits
    await turnEnd();
    expect(a.server.bytesWritten).toBe(12);
    sendText(out, b.server, '+5\r\n');
    expect(b.server.bytesWritten).toBe(8); // the turn before had one socket again
    let got = '';
    a.client.on('data', (d: Buffer) => {
      got += d.toString();
    });
    a.client.resume();
    await expect.poll(() => got).toBe('+1\r\n+2\r\n+4\r\n');
  });
});
