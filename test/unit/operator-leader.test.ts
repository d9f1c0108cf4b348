// Leader election logic against an in-memory Lease store with the apiserver's 404/409 semantics
// (the real apiserver is exercised by test/k8s/operator-leader.test.ts).

import { ApiException, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { LeaderElector } from '../../operator/runtime/index.ts';
import { defer } from '../helpers/defer.ts';

/** One Lease with optimistic concurrency on resourceVersion, like the apiserver. */
class LeaseStore {
  lease: V1Lease | null = null;
  #rv = 0;
  writes = 0;
  failing = false;

  api(): CoordinationV1Api {
    const clone = (l: V1Lease) => JSON.parse(JSON.stringify(l)) as V1Lease;
    const api = {
      readNamespacedLease: async () => {
        if (this.failing) throw new Error('connection refused');
        if (!this.lease) throw new ApiException(404, 'not found', '{"reason":"NotFound"}', {});
        return clone(this.lease);
      },
      createNamespacedLease: async ({ body }: { body: V1Lease }) => {
        if (this.lease) throw new ApiException(409, 'exists', '{"reason":"AlreadyExists"}', {});
        return this.#store(body);
      },
      replaceNamespacedLease: async ({ body }: { body: V1Lease }) => {
        if (body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) {
          throw new ApiException(409, 'conflict', '{"reason":"Conflict"}', {});
        }
        return this.#store(body);
      },
    };
    return api as unknown as CoordinationV1Api;
  }

  #store(body: V1Lease): V1Lease {
    this.writes++;
    const stored = JSON.parse(JSON.stringify(body)) as V1Lease;
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.#rv) };
    this.lease = stored;
    return stored;
  }
}

const silent = pino({ level: 'silent' });

/** A lease no test waits out: taking it over means it was released. */
const HOUR_MS = 3_600_000;

function elector(store: LeaseStore, identity: string, events: string[], leaseDurationMs = 1000) {
  return new LeaderElector({
    api: store.api(),
    namespace: 'ns',
    name: 'lease',
    identity,
    leaseDurationMs,
    renewDeadlineMs: 600,
    retryPeriodMs: 100,
    logger: silent,
    onStartedLeading: () => events.push(`${identity} leads`),
    onStoppedLeading: () => {
      events.push(`${identity} stops`);
    },
  });
}

describe('LeaderElector', () => {
  const run = (e: LeaderElector) => {
    defer(() => e.stop());
    e.start();
    return e;
  };

  it('lets one of two candidates lead and hands over at once on release', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = run(elector(store, 'a', events, HOUR_MS));
    await vi.waitFor(() => expect(a.isLeader).toBe(true));
    const b = run(elector(store, 'b', events));
    await new Promise((r) => setTimeout(r, 400));
    expect(b.isLeader).toBe(false);
    expect(store.lease?.spec?.holderIdentity).toBe('a');
    // The renewTime is a MicroTime: six fractional digits.
    expect(String(store.lease?.spec?.renewTime)).toMatch(/\.\d{6}Z$/);
    // a's lease lasts an hour: b leads because a released it, not because it expired.
    await a.stop();
    await vi.waitFor(() => expect(b.isLeader).toBe(true), { timeout: 10_000 });
    expect(events).toEqual(['a leads', 'a stops', 'b leads']);
    expect(store.lease?.spec?.leaseTransitions).toBe(1);
  });

  it('takes over a lease its holder stopped renewing only after it expires', async () => {
    const store = new LeaseStore();
    const now = new Date().toISOString().replace('Z', '000Z');
    store.lease = {
      metadata: { name: 'lease', namespace: 'ns', resourceVersion: '0' },
      spec: { holderIdentity: 'gone', leaseDurationSeconds: 1, renewTime: now as unknown as Date },
    };
    const events: string[] = [];
    const startedAt = Date.now();
    const c = run(elector(store, 'c', events));
    await vi.waitFor(() => expect(c.isLeader).toBe(true), { timeout: 10_000 });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);
    expect(store.lease?.spec?.holderIdentity).toBe('c');
  });

  it('stops leading when it cannot renew within the deadline', async () => {
    const store = new LeaseStore();
    const events: string[] = [];
    const a = run(elector(store, 'a', events));
    await vi.waitFor(() => expect(a.isLeader).toBe(true));
    store.failing = true;
    await vi.waitFor(() => expect(a.isLeader).toBe(false), { timeout: 10_000 });
    expect(events).toEqual(['a leads', 'a stops']);
    store.failing = false;
    await vi.waitFor(() => expect(a.isLeader).toBe(true), { timeout: 10_000 });
  });
});
