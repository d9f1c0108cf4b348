// A stalled disk: the stall watch's bound and recovery, and how a stall travels in a hello (an
// older member's hello has no such field) to the members that route data.

import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  type MemberAddress,
  Membership,
  readHello,
  staticSource,
} from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { StallWatch } from '../../src/storage/stall.ts';
import { defer } from '../helpers/defer.ts';
import { until } from '../helpers/write-log.ts';

describe('StallWatch', () => {
  it('calls an operation outstanding past the timeout a stall, and the stall over once it settles', async () => {
    const changes: (string | null)[] = [];
    const watch = new StallWatch({ timeoutMs: 40, onChange: (s) => changes.push(s?.what ?? null) });
    defer(() => watch.close());
    const quick = Promise.withResolvers<void>();
    watch.track('LMDB commit', quick.promise);
    quick.resolve();
    const hung = Promise.withResolvers<void>();
    watch.track('write-ahead log sync', hung.promise);
    await until(() => watch.stalled !== null, 5000, 'the stall');
    expect(watch.stalled!.what).toBe('write-ahead log sync');
    expect(watch.outstandingMs()).toBeGreaterThan(40);
    const err = watch.error();
    expect(err).toBeInstanceOf(KvError);
    expect(err.code).toBe('KV_ERR_STORAGE_STALLED');
    expect(err.message).toMatch(/^storage: stalled: a write-ahead log sync has been outstanding/);
    // A failure settles it too (it is reported where it happens): the stall is over at once.
    hung.reject(new Error('EIO'));
    await hung.promise.catch(() => {});
    await new Promise((r) => setImmediate(r));
    expect(watch.stalled).toBeNull();
    expect(watch.outstandingMs()).toBe(0);
    expect(changes).toEqual(['write-ahead log sync', null]);
  });

  it('times operations that run in order (LMDB commits) from when the one before settled', async () => {
    vi.useFakeTimers({ toFake: ['performance', 'setInterval', 'clearInterval'] });
    defer(() => vi.useRealTimers());
    const watch = new StallWatch({ timeoutMs: 40, onChange: () => {} });
    defer(() => watch.close());
    const first = Promise.withResolvers<void>();
    watch.trackInOrder('first commit', first.promise);
    watch.trackInOrder('second commit', new Promise(() => {}));
    vi.advanceTimersByTime(30);
    first.resolve();
    await first.promise;
    await Promise.resolve();
    // 60 ms since the second was queued, 30 since it could start: a queue, not a stall.
    vi.advanceTimersByTime(30);
    watch.check();
    expect(watch.stalled).toBeNull();
    expect(watch.outstandingMs()).toBe(30);
    vi.advanceTimersByTime(20);
    watch.check();
    expect(watch.stalled?.what).toBe('second commit');
  });

  it('never stalls with timeout 0', async () => {
    const watch = new StallWatch({ timeoutMs: 0, onChange: () => {} });
    watch.track('LMDB commit', new Promise(() => {}));
    await new Promise((r) => setTimeout(r, 30));
    watch.check();
    expect(watch.stalled).toBeNull();
  });
});

const base = {
  name: 'n1',
  incarnation: 'i1',
  status: 'active',
  ringId: 'r',
  rebalanced: null,
  settled: { epoch: 1, members: ['n0', 'n1'], incarnations: {}, lost: [] },
  hints: 0,
};

describe('a stall in the hello', () => {
  it('is read when it says true, and absent otherwise (older members send none)', () => {
    expect(readHello({ ...base, storageStalled: true }).storageStalled).toBe(true);
    for (const other of [{}, { storageStalled: false }, { storageStalled: 'yes' }]) {
      expect(readHello({ ...base, ...other })).not.toHaveProperty('storageStalled');
    }
  });

  it('makes the member down for data while it stays up and a member', async () => {
    const member = (name: string, i: number): MemberAddress => ({
      name,
      host: `127.0.0.${i}`,
      peerPort: 7946,
    });
    let stalled = true;
    const membership = new Membership({
      self: member('n0', 1),
      source: staticSource([member('n0', 1), member('n1', 2)]),
      probe: async () => readHello({ ...base, ...(stalled ? { storageStalled: true } : {}) }),
      selfHello: () => ({ name: 'n0' }) as HelloReply,
      resolveIntervalMs: 60_000,
      probeIntervalMs: 60_000,
      probeFailures: 3,
      logger: createLogger('silent', {}),
      registry: new Registry(),
    });
    defer(() => membership.stop());
    await membership.resolveNow();
    await membership.probeNow();
    expect(membership.isUp('n1')).toBe(true);
    expect(membership.isUpForData('n1')).toBe(false);
    expect(membership.isUpForData('n0')).toBe(true);
    stalled = false;
    await membership.probeNow();
    expect(membership.isUpForData('n1')).toBe(true);
  });
});
