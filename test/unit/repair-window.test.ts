// The repair window (repairWithinMs) counts on a tombstone's copies landing within "a tombstone
// copy's timeout" of its version: a read that did not see an acknowledged delete began no earlier
// than that before it. This checks that assumption against the deadline a tombstone's copy
// really carries, as Replicas sends it with the node's apply timeouts (node/cluster.ts): a small
// entry for another member joins the others of its turn in one request (coalescing), whose
// timeout and deadline go by the bytes of all of them. Date is faked (still), so that the
// deadline is the timeout the request was given, not that plus how long the test took.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { copyTimeoutMs, repairWithinMs } from '../../src/rebalance/index.ts';
import { type PeerCall, Replicas } from '../../src/replica/index.ts';
import { decodeRecord, encodeRecord } from '../../src/storage/index.ts';
import { openStore } from '../helpers/coordinators.ts';
import { cleanup } from '../helpers/node-process.ts';

const PEER_TIMEOUT = 2000;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('a tombstone copy lands within the time the repair window allows for it', () => {
  it.each([
    { graceMs: 3_600_000, offsetMs: 500 },
    { graceMs: 5000, offsetMs: 500 },
    { graceMs: 10_000, offsetMs: 100 },
  ])(
    'grace $graceMs ms, offset $offsetMs ms, sent with a large write of its turn',
    async ({ graceMs, offsetMs }) => {
      try {
        const store = openStore('a');
        const sent: { d: number; e: [Buffer, Buffer][] }[] = [];
        const call: PeerCall = async (_name, method, body) => {
          if (method === 'apply') sent.push(body as { d: number; e: [Buffer, Buffer][] });
          return { n: (body as { e: unknown[] }).e.length };
        };
        const freshWithin = graceMs - offsetMs;
        const replicas = new Replicas('a', store, call, undefined, undefined, (bytes) =>
          copyTimeoutMs(PEER_TIMEOUT, freshWithin, bytes),
        );
        // A client's SET of a 54 KiB value and a DEL in one turn, each copied to b.
        const big = {
          version: store.clock.now(),
          tombstone: false,
          value: Buffer.alloc(54 * 1024),
        };
        const tomb = { version: store.clock.now(), tombstone: true, value: Buffer.alloc(0) };
        await Promise.all([
          replicas.apply('b', [[Buffer.from('big'), encodeRecord(big)]], [big]),
          replicas.apply('b', [[Buffer.from('gone'), encodeRecord(tomb)]], [tomb]),
        ]);
        const request = sent.find((r) => r.e.some(([, raw]) => decodeRecord(raw).tombstone))!;
        // The time the window leaves for a tombstone's copy: grace - 3 offsets - window - 1 ms.
        const allowed =
          graceMs - 3 * offsetMs - repairWithinMs(PEER_TIMEOUT, graceMs, offsetMs) - 1;
        expect(request.d - tomb.version.wall).toBeLessThanOrEqual(allowed);
      } finally {
        await cleanup();
      }
    },
  );
});
