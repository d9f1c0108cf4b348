import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { heldAfterGc, INSPECT_ENV, metric, rss, untilStill } from '../helpers/node-memory.ts';
import { cleanup, startNodeProcess } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;

/** A connection that sends `requests` and never reads (until the test resumes it). */
function stuckClient(port: number, requests: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => {
      s.pause();
      s.write(requests);
      resolve(s);
    });
    s.on('error', () => {});
    s.once('error', reject);
    defer(() => s.destroy());
  });
}

/** Resumes a paused socket and counts what arrives until at least `n` bytes did. */
function readAtLeast(socket: Socket, n: number): Promise<number> {
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes >= n) resolve(bytes);
    });
    socket.once('close', () => reject(new Error(`closed after ${bytes}/${n} bytes`)));
    socket.resume();
  });
}

const EVICTED = 'kvstore_connections_rejected_total{reason="output_full"}';

/** A RESP MGET of `keys`. */
const mgetOf = (keys: readonly string[]) =>
  `*${keys.length + 1}\r\n$4\r\nMGET\r\n${keys.map((k) => `$${k.length}\r\n${k}\r\n`).join('')}`;

/**
 * Sends `request` and reads the reply at `bytesPerSecond` (pausing the socket whenever it is
 * ahead) until `total` bytes arrived; `got` is what arrived so far. Rejects if the node closes it.
 */
function slowReader(port: number, request: string, total: number, bytesPerSecond: number) {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  defer(() => s.destroy());
  const state = { got: 0, done: null as unknown as Promise<void> };
  state.done = new Promise<void>((resolve, reject) => {
    let start = 0;
    s.on('data', (d: Buffer) => {
      if (start === 0) start = performance.now();
      state.got += d.length;
      if (state.got >= total) return resolve();
      const ahead = (state.got / bytesPerSecond) * 1000 - (performance.now() - start);
      if (ahead <= 0) return;
      s.pause();
      setTimeout(() => s.resume(), ahead);
    });
    s.once('close', () => reject(new Error(`reader closed after ${state.got}/${total} bytes`)));
    s.once('connect', () => s.write(request));
  });
  return state;
}

describe('the node-wide bound on client replies', () => {
  it('closes the clients holding the most replies once all hold --max-client-output-bytes; smaller holders and a reading client go on', async () => {
    // Each MGET of 16 values of 1 MiB is a 16 MiB reply: a client that pipelines a few and
    // never reads holds one of them (its per-connection bounds stop it there). 24 such clients
    // grew the node by 400 MiB and more without a node-wide bound; with 64 MiB the largest are
    // closed until the rest is under it.
    const node = await startNodeProcess({
      env: INSPECT_ENV,
      args: [
        '--max-multi-read-bytes',
        String(16 * MiB),
        '--max-client-output-bytes',
        String(64 * MiB),
      ],
    });
    const value = 'v'.repeat(MiB);
    const setup = await LineClient.connect(node.port);
    defer(() => setup.close());
    const keys = Array.from({ length: 16 }, (_, i) => `big${i}`);
    for (const k of keys) expect(await setup.call(`PUT ${k} ${value}`)).toBe('OK');
    expect(await setup.call(`PUT mid ${'m'.repeat(16 * 1024)}`)).toBe('OK');

    // A client that reads its replies works throughout: small writes and reads, and a 1 MiB GET.
    const reader = await LineClient.connect(node.port);
    defer(() => reader.close());
    let stop = false;
    let rounds = 0;
    // Paused between rounds while the node's memory is read: a round in flight holds a 1 MiB
    // value and its reply, and the garbage of the rounds before (freed by a thread of V8's after
    // the collection: late on a loaded machine) made one reading 9 to 31 MiB above another.
    const gate: { resume: PromiseWithResolvers<void> | null; paused: PromiseWithResolvers<void> } =
      { resume: null, paused: Promise.withResolvers<void>() };
    const reading = (async () => {
      while (!stop) {
        if (gate.resume !== null) {
          gate.paused.resolve();
          await gate.resume.promise;
        }
        expect(await reader.call(`PUT w${rounds} ${rounds}`)).toBe('OK');
        expect(await reader.call(`GET w${rounds}`)).toBe(String(rounds));
        expect((await reader.call('GET big0')).length).toBe(MiB);
        rounds++;
      }
    })();
    defer(async () => {
      stop = true;
      await reading.catch(() => {});
    });

    const held = await heldAfterGc(node);
    /** What the node holds after a full collection, read between two of the reader's rounds. */
    const heldNow = async () => {
      const resume = Promise.withResolvers<void>();
      gate.resume = resume;
      await Promise.race([gate.paused.promise, reading]);
      try {
        return await held();
      } finally {
        gate.paused = Promise.withResolvers<void>();
        gate.resume = null;
        resume.resolve();
      }
    };
    const heldBefore = await heldNow();
    const before = rss(node);
    // Clients that stop reading with 16 KiB replies (32 MiB each): the node holds about 13 MiB
    // of each (1024 replies, --max-pipeline, less what the kernel took), less than the 16 MiB
    // of an MGET's: the largest go first, so these stay.
    const smallRequests = Buffer.from('GET mid\n'.repeat(2000));
    const small = await Promise.all(
      Array.from({ length: 4 }, () => stuckClient(node.port, smallRequests)),
    );
    const mget = `*17\r\n$4\r\nMGET\r\n${keys.map((k) => `$${k.length}\r\n${k}\r\n`).join('')}`;
    // They come one after another (each once the last one's first MGET started), so what the
    // node holds is their replies, not 24 MGETs reading at once.
    const mgets = () => metric(node, 'kvstore_requests_total{command="mget"}');
    const started = await mgets();
    let peak = before;
    for (let i = 0; i < 24; i++) {
      await stuckClient(node.port, Buffer.from(mget.repeat(4)));
      await until(
        async () => {
          peak = Math.max(peak, rss(node));
          return (await mgets()) > started + i;
        },
        10_000,
        `stuck client ${i}'s first MGET`,
        10,
      );
    }
    peak = await untilStill(
      node,
      async () => (await mgets()) + (await metric(node, EVICTED)),
      'the node to stop running MGETs and closing clients',
      { peak, stillMs: 1500, ms: 60_000 },
    );
    // Over the limit, the node waits up to 3 s to tell readers from the rest before it closes.
    await until(
      async () => (await metric(node, 'kvstore_client_output_bytes')) <= 64 * MiB,
      20_000,
      'the replies held to be under the limit',
      50,
    );
    // What the node keeps once V8 collected the closed clients' replies: its heap and
    // ArrayBuffers after a full collection, through its inspector. The replies held (at most the
    // 64 MiB limit) and what serving them left (code, connections, buffers: 17 to 25 MiB more):
    // measured +70 to +77 MiB (+65.7 MiB in 3 of 3 runs at load 18, with the reader paused;
    // running, 59 to 83); without the bound (no client closed) +448 MiB. (Its RSS also holds
    // what the allocator keeps of freed memory: +137 to +203 MiB in the same runs.)
    const kept = (await heldNow()) - heldBefore;
    expect(kept).toBeLessThan(64 * MiB + 32 * MiB);
    const evicted = await metric(node, EVICTED);
    expect(await metric(node, 'kvstore_client_output_bytes')).toBeLessThanOrEqual(64 * MiB);
    expect(evicted).toBeGreaterThanOrEqual(20);
    expect(evicted).toBeLessThanOrEqual(24);
    // The peak also holds the garbage of the MGETs read and written (their values, their
    // encoded replies) until the collection that follows the closes: measured +165 MiB with the
    // bound (+256 to +300 MiB without that collection), +575 to +610 MiB without the bound.
    expect(peak - before).toBeLessThan(384 * MiB);

    stop = true;
    await reading;
    expect(reader.closed).toBe(false);
    expect(rounds).toBeGreaterThan(0);
    // The clients that held less were not closed: all their replies arrive once they read.
    const replies = 2000 * (16 * 1024 + 1);
    for (const s of small) expect(await readAtLeast(s, replies)).toBeGreaterThanOrEqual(replies);
  }, 120_000);

  it('closes the clients that do not read before a larger one that reads its reply slowly, and holds the bound', async () => {
    // A client reads a 32 MiB MGET reply at 3 MiB/s (about 11 s); three clients that never read
    // each hold a 16 MiB one. 80 MiB held passes the 72 MiB limit: closing the largest holder
    // (the reader) would bring it under at once, and did (the reader was closed after 5-9 MiB
    // read). The non-readers are closed first: one of them brings it under.
    const limit = 72 * MiB;
    const node = await startNodeProcess({
      args: [
        '--max-multi-read-bytes',
        String(32 * MiB),
        '--max-client-output-bytes',
        String(limit),
      ],
    });
    const value = 'v'.repeat(MiB);
    const setup = await LineClient.connect(node.port);
    defer(() => setup.close());
    const keys = Array.from({ length: 32 }, (_, i) => `big${i}`);
    for (const k of keys) expect(await setup.call(`PUT ${k} ${value}`)).toBe('OK');

    const replyBytes = `*32\r\n`.length + 32 * (`$${MiB}\r\n`.length + MiB + 2);
    const reader = slowReader(node.port, mgetOf(keys), replyBytes, 3 * MiB);
    const failed = reader.done.catch((err: Error) => err);
    await until(async () => reader.got >= 2 * MiB, 20_000, 'the reader to read 2 MiB', 10);

    const mgets = () => metric(node, 'kvstore_requests_total{command="mget"}');
    const started = await mgets();
    const stuck = Buffer.from(mgetOf(keys.slice(0, 16)).repeat(4));
    for (let i = 0; i < 3; i++) {
      await stuckClient(node.port, stuck);
      await until(async () => (await mgets()) > started + i, 10_000, `stuck client ${i}`, 10);
    }
    // The bound is held: over the limit only while the holders are told apart, never past
    // the ceiling (the limit and a quarter) at a scrape.
    let highest = 0;
    await until(
      async () => {
        highest = Math.max(highest, await metric(node, 'kvstore_client_output_bytes'));
        return (await metric(node, EVICTED)) >= 1;
      },
      20_000,
      'a client that does not read to be closed',
      50,
    );
    expect(await metric(node, 'kvstore_client_output_bytes')).toBeLessThanOrEqual(limit);
    expect(highest).toBeLessThanOrEqual(limit + limit / 4);
    expect(await failed).toBeUndefined(); // the reader read its whole reply, not closed
    expect(reader.got).toBe(replyBytes);
    expect(await metric(node, EVICTED)).toBe(1);
  }, 120_000);
});
