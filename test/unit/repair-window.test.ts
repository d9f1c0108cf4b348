// The repair window (repairWithinMs) counts on a tombstone's copies landing within "a tombstone
// copy's timeout" of its version: a read that did not see an acknowledged delete began no earlier
// than that before it. This checks that assumption against the deadline a tombstone's copy
// really carries, as Replicas sends it with the node's apply timeouts (node/cluster.ts): a small
// entry for another member joins the others of its turn in one request (coalescing), whose
// timeout and deadline go by the bytes of all of them. Date is faked (still), so that the
// deadline is the timeout the request was given, not that plus how long the test took.
// And an expired record takes its key's value away as a tombstone does, but its copies carried
// the value, with a value's timeout: a read that missed one may be that much newer than its
// version, so it must not be collected sooner (GcOptions.expiredAfterMs).

import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  collectedAfter,
  collectTombstones,
  copyTimeoutMs,
  expiredLaterMs,
  registerRebalanceMetrics,
  repairWithinMs,
} from '../../src/rebalance/index.ts';
import { type PeerCall, Replicas } from '../../src/replica/index.ts';
import {
  decodeRecord,
  encodeRecord,
  expiredForm,
  HintStore,
  type StoredRecord,
} from '../../src/storage/index.ts';
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
    { graceMs: 3_600_000, offsetMs: 500, turnMs: 0 },
    { graceMs: 5000, offsetMs: 500, turnMs: 0 },
    { graceMs: 10_000, offsetMs: 100, turnMs: 0 },
    // The rest of the turn (other clients' commands) takes 50 ms before its writes go out.
    { graceMs: 5000, offsetMs: 500, turnMs: 50 },
  ])(
    'grace $graceMs ms, offset $offsetMs ms, sent with a large write of its turn ($turnMs ms more in it)',
    async ({ graceMs, offsetMs, turnMs }) => {
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
        const copied = Promise.all([
          replicas.apply('b', [[Buffer.from('big'), encodeRecord(big)]], [big]),
          replicas.apply('b', [[Buffer.from('gone'), encodeRecord(tomb)]], [tomb]),
        ]);
        vi.setSystemTime(Date.now() + turnMs);
        await copied;
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

/** The node's defaults but for the grace and offset: 1 KiB keys, 1 MiB values. */
const MAX_RECORD = 1024 + 1024 * 1024 + 512;

/** A 1 MiB value written with PX 10 at `wall`, as every replica holds it once it expired. */
const expired = (wall: number): StoredRecord =>
  expiredForm({
    version: { wall, logical: 0, node: 'a' },
    tombstone: false,
    value: Buffer.alloc(1024 * 1024),
    expiresAt: wall + 10,
  });

describe('a record that expired is collected only once no repair that missed it can land', () => {
  it.each([
    { graceMs: 3_600_000, offsetMs: 500 },
    { graceMs: 10_000, offsetMs: 500 },
    { graceMs: 5000, offsetMs: 100 },
  ])('grace $graceMs ms, offset $offsetMs ms, a 1 MiB value', ({ graceMs, offsetMs }) => {
    const rec = expired(1_000_000);
    // A copy of it could land until its version plus its copy's timeout (plus an offset), so a
    // read that did not see it may have begun until two offsets past that.
    const copy = copyTimeoutMs(PEER_TIMEOUT, graceMs - offsetMs, MAX_RECORD);
    const lastStart = rec.version.wall + copy + 2 * offsetMs;
    // Its repair lands by that plus the window (plus an offset, on the replica's clock).
    const lands = lastStart + repairWithinMs(PEER_TIMEOUT, graceMs, offsetMs) + offsetMs;
    const after = expiredLaterMs(PEER_TIMEOUT, graceMs, offsetMs, MAX_RECORD);
    // Collected there once the grace passed since collectedAfter, on that replica's clock.
    expect(collectedAfter(rec, after) + graceMs).toBeGreaterThan(lands);
  });

  it('collection keeps it until then, on a store', async () => {
    try {
      const graceMs = 10_000;
      const storage = openStore('a');
      const key = Buffer.from('gone');
      const after = expiredLaterMs(PEER_TIMEOUT, graceMs, 500, MAX_RECORD);
      // Expired (and its grace passed) 1 s ago; a copy of its value may have landed later.
      const rec = expired(Date.now() - graceMs - 1010);
      await storage.apply(key, rec);
      await storage.flush();
      const o = {
        self: 'a',
        storage,
        topology: new Topology(['a', 'b'], null, 2),
        replicas: {
          get: async () => null,
          synced: async () => ({ process: undefined, hints: 0 }),
        } as unknown as Replicas,
        quiet: () => true,
        graceMs,
        expiredAfterMs: after,
        metrics: registerRebalanceMetrics(new Registry(), new HintStore(storage, 1000)),
        logger: createLogger('silent', {}),
      };
      expect(await collectTombstones(o)).toBe(0);
      vi.setSystemTime(Date.now() + after);
      expect(await collectTombstones(o)).toBe(1);
    } finally {
      await cleanup();
    }
  });
});
