// A hand-off restarted by a ring change starts from the first key: rings A -> B -> A (a member
// joins and goes before the hand-off toward B saved a cursor) must not resume the cursor A's
// earlier stream saved, past keys written to this node meanwhile.

import { afterEach, expect, it } from 'vitest';
import type { WireEntry } from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { testRebalancer } from '../helpers/rebalancer.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const N = 600;

it('a hand-off toward a ring that came back (A -> B -> A) sends every key again', async () => {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  for (let i = 0; i < N; i++) {
    const version = { wall: Date.now(), logical: i, node: 'n1' };
    const key = Buffer.from(`k${String(i).padStart(4, '0')}`);
    await storage.apply(key, { version, tombstone: false, value: Buffer.from(`v${i}`) });
  }
  const a = new Ring(['n1', 'n2', 'n3']);
  const topology = { target: a, rf: () => 1 };
  // Phase 'first': the first chunk (256 records) is taken, then every batch hangs, until phase
  // 'again', where each is taken and its keys noted.
  let phase: 'first' | 'hang' | 'again' = 'first';
  let taken = 0;
  const again = new Set<string>();
  const replicas = {
    apply: (_target: string, entries: WireEntry[]) => {
      if (phase === 'again') {
        for (const [k] of entries) again.add(k.toString());
        return Promise.resolve();
      }
      taken += entries.length;
      if (phase === 'first' && taken <= 256) return Promise.resolve();
      phase = 'hang';
      return new Promise(() => {});
    },
  };
  const rebalancer = testRebalancer(storage, topology, replicas);
  rebalancer.decommission();
  await until(() => phase === 'hang', 5000, 'the first chunk taken, the next hanging');
  // n4 joins (hand-off toward n2, n3, n4: hangs before any cursor), then goes again.
  topology.target = new Ring(['n1', 'n2', 'n3', 'n4']);
  rebalancer.onRingsChanged();
  topology.target = a;
  phase = 'again';
  rebalancer.onRingsChanged();
  await until(() => rebalancer.status === 'decommissioned', 10_000, 'the hand-off done');
  // Before: 344 (k0256..k0599): resumed from the first stream's cursor.
  expect(again.size).toBe(N);
});
