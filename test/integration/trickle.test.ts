// A client that sends its request a few bytes per TCP segment: the node holds about what it counts
// of the unfinished request, not a socket read's objects for every segment.

import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ARG_OVERHEAD } from '../../src/protocol/index.ts';
import { defer } from '../helpers/defer.ts';
import { heldAfterGc, INSPECT_ENV, metric } from '../helpers/node-memory.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(cleanup);

const CONNECTIONS = 100;
const ROUNDS = 2000;

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
    s.once('error', reject);
    defer(() => s.destroy());
  });
}

/**
 * Opens CONNECTIONS connections, sends `head` on each, then ROUNDS rounds of `piece` on every
 * connection, a millisecond apart, so the node reads most pieces on their own. Resolves with what
 * the node held after a full GC, and counted (kvstore_client_buffered_bytes), once the heads were
 * in and again once every piece was.
 */
async function trickle(
  node: NodeProcess,
  head: { bytes: string; counted: number },
  piece: { bytes: string; counted: number },
) {
  const held = await heldAfterGc(node);
  const counted = () => metric(node, 'kvstore_client_buffered_bytes');
  const sockets = await Promise.all(
    Array.from({ length: CONNECTIONS }, () => openSocket(node.port)),
  );
  for (const s of sockets) {
    s.on('error', () => {});
    s.write(head.bytes);
  }
  await expect.poll(counted, { timeout: 30_000 }).toBe(CONNECTIONS * head.counted);
  const start = { held: await held(), counted: await counted() };
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of sockets) s.write(piece.bytes);
    await delay(1);
  }
  const expected = start.counted + CONNECTIONS * ROUNDS * piece.counted;
  await expect.poll(counted, { timeout: 60_000 }).toBe(expected);
  const end = { held: await held(), counted: await counted() };
  for (const s of sockets) s.destroy();
  await expect.poll(counted, { timeout: 10_000 }).toBe(0);
  return { heldGrowth: end.held - start.held, countedGrowth: end.counted - start.counted };
}

describe('requests sent a few bytes per segment', () => {
  // Before: each 1-byte read was kept as a view in the unfinished line; 100 connections sending
  // 2,000 bytes each (200 KB counted) made the node hold 33 MB more after a full GC (0.6 MB now).
  it('a text line: the node holds about the bytes it counts', async () => {
    const node = await startNodeProcess({ env: INSPECT_ENV });
    const { heldGrowth, countedGrowth } = await trickle(
      node,
      { bytes: 'PUT key ', counted: 8 },
      { bytes: 'a', counted: 1 },
    );
    expect(countedGrowth).toBe(CONNECTIONS * ROUNDS);
    expect(heldGrowth, `held +${heldGrowth} B`).toBeLessThan(10 * countedGrowth);
  }, 120_000);

  // Before: 25 MB held for the same 200 KB (0.7 MB now).
  it('a RESP bulk string: the node holds about the bytes it counts', async () => {
    const node = await startNodeProcess({ env: INSPECT_ENV });
    // Counted so far: SET's and the key's bytes, and ARG_OVERHEAD for each of the three.
    const head = '*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$100000\r\n';
    const { heldGrowth, countedGrowth } = await trickle(
      node,
      { bytes: head, counted: 6 + 3 * ARG_OVERHEAD },
      { bytes: 'a', counted: 1 },
    );
    expect(countedGrowth).toBe(CONNECTIONS * ROUNDS);
    expect(heldGrowth, `held +${heldGrowth} B`).toBeLessThan(10 * countedGrowth);
  }, 120_000);

  // Before: each argument was a view of its own read, kept alive with it: 38.7 MB held for 32.2 MB
  // counted (23.9 MB now). A short argument of a request that spans reads is copied out of them.
  it('a RESP request of one-byte arguments, one per segment: held under its count', async () => {
    const node = await startNodeProcess({ env: INSPECT_ENV });
    const { heldGrowth, countedGrowth } = await trickle(
      node,
      { bytes: `*${ROUNDS + 2}\r\n$1\r\na\r\n`, counted: 1 + ARG_OVERHEAD },
      { bytes: '$1\r\na\r\n', counted: 1 + ARG_OVERHEAD },
    );
    expect(countedGrowth).toBe(CONNECTIONS * ROUNDS * (1 + ARG_OVERHEAD));
    expect(heldGrowth, `held +${heldGrowth} B`).toBeLessThan(countedGrowth);
  }, 120_000);
});
