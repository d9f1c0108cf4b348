// Every client connection shares one output buffer, and a turn's replies of every connection are
// written together at its end (src/server/output.ts). This drives many real clients at once
// against one node, with values small and past the 64 KiB at which the output is written at
// once, while other connections leave in the middle of large pipelines: each client must get
// exactly its own replies, in order, and nothing of anyone else's.

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { closeResp, ioredis } from '../helpers/resp-tools.ts';

const HOST = '127.0.0.1';
const CLIENTS = 24;
const KEYS = 30;
/** Value sizes: a byte, a typical small value, several KiB, past 64 KiB, and 200 KB. */
const SIZES = [1, 100, 5000, 70_000, 200_000];

/** The value client `c` stores under its key `i`: its own bytes, unlike any other's. */
function storedValue(c: number, i: number, round: number): Buffer {
  const size = SIZES[(c + i + round) % SIZES.length]!;
  const v = Buffer.alloc(size, (c * 31 + i * 7 + round) & 0xff);
  v.write(`${c}:${i}:${round}:`.slice(0, size));
  return v;
}

/** A connection that asks for large values in one pipeline and leaves before reading them. */
function leaveMidPipeline(port: number, keys: string[]): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: HOST, port }, () => {
      const frames = keys.map((k) => `*2\r\n$3\r\nGET\r\n$${Buffer.byteLength(k)}\r\n${k}\r\n`);
      s.write(frames.join(''));
      // Gone once the first replies arrive: the node still has the rest to write.
      s.once('data', () => s.destroy());
    });
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

let node: NodeProcess;
beforeAll(async () => {
  node = await startNodeProcess({});
});
afterAll(async () => {
  closeResp();
  await cleanup();
});

describe('replies reach only their own connection', () => {
  it('many clients at once, small and large values, others leaving mid-pipeline', async () => {
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, () => ioredis(HOST, node.port)),
    );
    const key = (c: number, i: number) => `iso:${c}:${i}`;
    for (let round = 0; round < 3; round++) {
      const leavers = Array.from({ length: 6 }, (_, l) =>
        leaveMidPipeline(
          node.port,
          Array.from({ length: 40 }, (_, i) => key((l + i) % CLIENTS, i % KEYS)),
        ),
      );
      const work = clients.map(async (r, c) => {
        const writes = r.pipeline();
        for (let i = 0; i < KEYS; i++) writes.set(key(c, i), storedValue(c, i, round));
        const written = await writes.exec();
        expect(written!.every(([err, reply]) => err === null && reply === 'OK')).toBe(true);
        // Reads interleaved with writes of other keys of this client, and a whole MGET.
        const reads = r.pipeline();
        for (let i = 0; i < KEYS; i++) {
          reads.getBuffer(key(c, i));
          reads.set(`iso:${c}:other`, `${c}:${i}`);
        }
        reads.mgetBuffer(...Array.from({ length: KEYS }, (_, i) => key(c, i)));
        const got = await reads.exec();
        for (let i = 0; i < KEYS; i++) {
          const [err, value] = got![2 * i]!;
          expect(err).toBeNull();
          expect((value as Buffer).equals(storedValue(c, i, round))).toBe(true);
          expect(got![2 * i + 1]![1]).toBe('OK');
        }
        const [mgetErr, all] = got![2 * KEYS]!;
        expect(mgetErr).toBeNull();
        const values = all as Buffer[];
        for (let i = 0; i < KEYS; i++)
          expect(values[i]!.equals(storedValue(c, i, round))).toBe(true);
        expect(await r.get(`iso:${c}:other`)).toBe(`${c}:${KEYS - 1}`);
      });
      await Promise.all([...work, ...leavers]);
    }
    // The node is still answering everyone.
    await Promise.all(clients.map(async (r) => expect(await r.ping()).toBe('PONG')));
  });
});
