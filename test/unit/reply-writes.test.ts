// How a real KvServer's replies reach the kernel: while a client socket's stream holds nothing,
// a turn's replies are one write(2) on its descriptor, not a Writable write (its WriteWrap, view
// and nextTick per write: most of a GET P1 reply's cost in JavaScript); what the kernel does not
// take goes through the stream, and a client reading late still gets every byte in order.

import { connect, Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { Replicas } from '../../src/replica/index.ts';
import { KvServer } from '../../src/server/server.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(() => cleanup());

const MiB = 1024 * 1024;

/** A one-member node (RF=1) in this process; counts the stream writes of its client sockets. */
async function node() {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  const coordinator = new ClusterCoordinator({
    storage,
    topology: new Topology(['n1'], null, 1),
    replicas: new Replicas('n1', storage, () => Promise.reject(new Error('no peers'))),
    isUp: () => true,
    hint: () => Promise.resolve(),
    info: () => ({}),
    readQuorum: 1,
    writeQuorum: 1,
    readRepairChance: 0,
    readSpeculateMs: 60_000,
    maxScanKeys: 100,
    registry: new Registry(),
  });
  const server = await KvServer.start({
    host: '127.0.0.1',
    port: 0,
    limits: { maxKeyBytes: 64, maxValueBytes: 2 * MiB, maxScanKeys: 100 },
    maxLineBytes: 4096,
    maxPipeline: 1024,
    maxConnections: 10,
    coordinator,
    registry: new Registry(),
    logger: createLogger('silent', {}),
  });
  defer(() => server.shutdown(100));
  // Every Writable write of a socket whose local port is the server's: its client sockets.
  let streamWrites = 0;
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
    if (this.localPort === server.port) streamWrites++;
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as typeof write;
  defer(() => {
    Socket.prototype.write = write;
  });
  const client = await new Promise<Socket>((resolve, reject) => {
    const s = connect(server.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  defer(() => client.destroy());
  return { client, streamWrites: () => streamWrites };
}

/** Reads from `client` until `n` bytes came; resolves with them. */
function readBytes(client: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got < n) return;
      client.off('data', onData);
      client.pause();
      resolve(Buffer.concat(parts));
    };
    client.on('data', onData);
    client.resume();
  });
}

const resp = (...args: (string | Buffer)[]) =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => [
      Buffer.from(`$${Buffer.byteLength(a)}\r\n`),
      Buffer.from(a),
      Buffer.from('\r\n'),
    ]),
  ]);

describe("a client socket's replies", () => {
  it('reach the kernel without a stream write while the kernel takes them', async () => {
    const { client, streamWrites } = await node();
    client.write(resp('SET', 'k', 'hello'));
    expect((await readBytes(client, 5)).toString()).toBe('+OK\r\n');
    for (let i = 0; i < 20; i++) {
      client.write(resp('GET', 'k'));
      expect((await readBytes(client, 11)).toString()).toBe('$5\r\nhello\r\n');
    }
    // Pipelined, text and RESP: one write of all of them.
    client.write(Buffer.concat([resp('GET', 'k'), resp('GET', 'nope'), resp('PING')]));
    expect((await readBytes(client, 11 + 5 + 7)).toString()).toBe(
      '$5\r\nhello\r\n$-1\r\n+PONG\r\n',
    );
    expect(streamWrites()).toBe(0);
  });

  it('go through the stream for what the kernel does not take, every byte in order', async () => {
    const { client, streamWrites } = await node();
    // Distinct values, each byte telling its key and place, so a byte out of order shows.
    const values = Array.from({ length: 6 }, (_, k) => {
      const v = Buffer.alloc(MiB + 17 * k);
      for (let i = 0; i < v.length; i++) v[i] = (k * 31 + i * 7) & 0xff;
      return v;
    });
    const sets = Buffer.concat(values.map((v, k) => resp('SET', `k${k}`, v)));
    client.write(sets);
    expect((await readBytes(client, 5 * values.length)).toString()).toBe('+OK\r\n'.repeat(6));
    const before = streamWrites();
    // Many GETs of large values and small ones between, sent while the client reads nothing:
    // the kernel's buffers fill, and the rest waits in the socket's stream.
    const order: number[] = [];
    for (let round = 0; round < 4; round++) for (let k = 0; k < values.length; k++) order.push(k);
    const requests: Buffer[] = [];
    const want: Buffer[] = [];
    for (const k of order) {
      requests.push(resp('GET', `k${k}`), resp('PING'));
      want.push(Buffer.from(`$${values[k]!.length}\r\n`), values[k]!, Buffer.from('\r\n+PONG\r\n'));
    }
    client.pause();
    client.write(Buffer.concat(requests));
    // Read nothing until the kernel's buffers are full: the stream has taken a write.
    await expect.poll(() => streamWrites()).toBeGreaterThan(before);
    const expected = Buffer.concat(want);
    const got = await readBytes(client, expected.length);
    expect(got.length).toBe(expected.length);
    expect(got.equals(expected)).toBe(true);
    expect(streamWrites()).toBeGreaterThan(before);
  });
});
