// Operator reconcile(): what a failing reconcile reads and reports.

import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  buildStatefulSet,
  type ControllerContext,
  ensureResizeRestart,
  ensureVolumes,
  type KVClusterObject,
  type PodView,
  reconcile,
  Warnings,
} from '../../operator/controller/index.ts';
import { Memory } from '../../operator/controller/memory.ts';
import type { Kube, ObjectRef } from '../../operator/runtime/index.ts';

/** A KVCluster whose pods run with peer TLS while its spec turns it off: a held reconcile. */
function heldCluster(live: () => KVClusterObject | null) {
  const spec = { replicas: 3 };
  const parsed = parseKVCluster('kv', { ...spec, tls: { peerSecretName: 'peer' } });
  if (!parsed.ok) throw new Error(parsed.message);
  const withTls = { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 1, spec: parsed.spec };
  const sts = buildStatefulSet(withTls, { replicas: 3, partition: 0, configHash: 'x' });
  const reads: string[] = [];
  const statuses: unknown[] = [];
  const kube = {
    read: async (ref: ObjectRef) => {
      reads.push(ref.kind);
      if (ref.kind === 'StatefulSet') return sts;
      if (ref.kind === 'KVCluster') return live();
      return null;
    },
    applyStatus: async (_ref: unknown, status: unknown) => {
      statuses.push(status);
    },
    core: {
      listNamespacedPod: async () => ({ items: [] }),
      listNamespacedEvent: async () => ({ items: [] }),
    },
  } as unknown as Kube;
  const ctx: ControllerContext = {
    kube,
    admin: {} as ControllerContext['admin'],
    events: { record: async () => {}, phaseChanged: async () => {} },
    logger: pino({ level: 'silent' }),
    settings: { clusterDomain: 'cluster.local', pollMs: 1000, resyncMs: 30_000 },
    now: () => new Date(),
    warned: new Warnings(),
    memory: new Memory(),
  };
  const obj: KVClusterObject = {
    apiVersion: 'kvstore.dev/v1alpha1',
    kind: 'KVCluster',
    metadata: { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 1 },
    spec,
  } as KVClusterObject;
  return { ctx, obj, reads, statuses };
}

describe('a failing reconcile', () => {
  it('reads its KVCluster once: to learn it is still there, before reporting the failure', async () => {
    const t = heldCluster(() => t.obj);
    await expect(reconcile(t.ctx, t.obj)).rejects.toMatchObject({ reason: 'PeerTlsChange' });
    expect(t.reads.filter((k) => k === 'KVCluster')).toHaveLength(1);
    expect(t.statuses).toHaveLength(1);
    expect(t.statuses[0]).toMatchObject({ phase: 'Degraded' });
  });

  it('deleted meanwhile: reads it once, reports nothing, is not retried', async () => {
    const t = heldCluster(() => null);
    await expect(reconcile(t.ctx, t.obj)).resolves.toEqual({});
    expect(t.reads.filter((k) => k === 'KVCluster')).toHaveLength(1);
    expect(t.statuses).toHaveLength(0);
  });
});

describe('a restart for a grown volume', () => {
  it('is made once per wait, even when the clock that set the claim condition is ahead of the apiserver', async () => {
    const parsed = parseKVCluster('kv', { replicas: 3, storage: { size: '2Gi' } });
    if (!parsed.ok) throw new Error(parsed.message);
    const c = { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 1, spec: parsed.spec };
    const sts = buildStatefulSet(c, { replicas: 3, partition: 0, configHash: 'x' });
    const t0 = Date.parse('2026-12-06T12:00:00Z');
    // The resizer that set the condition runs on a node whose clock is 60 s ahead.
    const condition = new Date(t0 + 60_000);
    const claims: V1PersistentVolumeClaim[] = [0, 1, 2].map((i) => ({
      metadata: { name: `data-kv-${i}`, annotations: {} },
      spec: { resources: { requests: { storage: '2Gi' } } },
      status: {
        capacity: { storage: i === 2 ? '2Gi' : '1Gi' },
        ...(i === 2
          ? {
              conditions: [
                {
                  type: 'FileSystemResizePending',
                  status: 'True',
                  lastTransitionTime: condition,
                },
              ],
            }
          : {}),
      },
    }));
    const view = (i: number, uid: string, createdAtMs: number): PodView => ({
      name: `kv-${i}`,
      uid,
      ordinal: i,
      ready: true,
      started: true,
      terminating: false,
      revision: 'r',
      createdAtMs,
      lostReady: false,
    });
    let pods = [
      view(0, 'a0', t0 - 3_600_000),
      view(1, 'a1', t0 - 3_600_000),
      view(2, 'a2', t0 - 3_600_000),
    ];
    const evicted: string[] = [];
    const kube = {
      core: {
        listNamespacedPersistentVolumeClaim: async () => ({ items: claims }),
        patchNamespacedPersistentVolumeClaim: async (r: {
          name: string;
          body: { metadata: { annotations: Record<string, string> } };
        }) => {
          const claim = claims.find((k) => k.metadata?.name === r.name)!;
          Object.assign(claim.metadata!.annotations!, r.body.metadata.annotations);
        },
        createNamespacedPodEviction: async (r: {
          body: { deleteOptions: { preconditions: { uid: string } } };
        }) => {
          evicted.push(r.body.deleteOptions.preconditions.uid);
        },
      },
    } as unknown as Kube;
    const ctx = {
      kube,
      events: { record: async () => {}, phaseChanged: async () => {} },
      logger: pino({ level: 'silent' }),
      now: () => new Date(t0),
    } as unknown as ControllerContext;
    const round = async () => {
      const volumes = await ensureVolumes(ctx, c, sts, true);
      return ensureResizeRestart(ctx, c, {
        pending: volumes.fileSystemPending,
        pods,
        expected: ['kv-0', 'kv-1', 'kv-2'],
        health: { healthy: true, rebalancing: false, problems: [] },
        settled: true,
      });
    };
    expect(await round()).toMatch(/^restarting kv-2 /);
    expect(evicted).toEqual(['a2']);
    // Made again 5 s later by the apiserver's clock: still before the condition by the resizer's.
    pods = [pods[0]!, pods[1]!, view(2, 'b2', t0 + 5_000)];
    // Before, it was restarted again (and again, until the apiserver's clock passed the condition's).
    expect(await round()).toBeNull();
    expect(evicted).toEqual(['a2']);
    // A new wait (the condition set True again later) restarts it once more.
    claims[2]!.status!.conditions![0]!.lastTransitionTime = new Date(t0 + 120_000);
    expect(await round()).toMatch(/^restarting kv-2 /);
    expect(evicted).toEqual(['a2', 'b2']);
  });
});
