// Operator reconcile(): what a failing reconcile reads and reports.

import { ApiException, type V1PersistentVolumeClaim } from '@kubernetes/client-node';
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
  RESIZE_RESTARTED_ANNOTATION,
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

/**
 * A cluster of three whose kv-2's claim waits for a restart (FileSystemResizePending), set by a
 * resizer whose clock is 60 s ahead of the apiserver's; the claims and the pods live here, and
 * each patch and eviction is recorded. `fail` makes the next call of a kind throw that status.
 */
function resizeFixture() {
  const parsed = parseKVCluster('kv', { replicas: 3, storage: { size: '2Gi' } });
  if (!parsed.ok) throw new Error(parsed.message);
  const c = { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 1, spec: parsed.spec };
  const sts = buildStatefulSet(c, { replicas: 3, partition: 0, configHash: 'x' });
  const t0 = Date.parse('2026-12-06T12:00:00Z');
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
                lastTransitionTime: new Date(t0 + 60_000),
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
  const t = {
    t0,
    claims,
    pods: [0, 1, 2].map((i) => view(i, `a${i}`, t0 - 3_600_000)),
    /** Every call in order: `patch <annotation value>` or `evict <uid>` (refused ones too). */
    calls: [] as string[],
    /** Uids evicted (each pod then terminating, until remake()). */
    evicted: [] as string[],
    fail: { patch: [] as number[], evict: [] as number[] },
    /** kv-2 made again (by the apiserver's clock, 5 s after t0: before the wait by the resizer's). */
    remake(uid: string) {
      t.pods = [t.pods[0]!, t.pods[1]!, view(2, uid, t0 + 5_000)];
    },
    mark: () => claims[2]!.metadata!.annotations![RESIZE_RESTARTED_ANNOTATION],
    round: async () => {
      const volumes = await ensureVolumes(ctx, c, sts, true);
      return ensureResizeRestart(ctx, c, {
        pending: volumes.fileSystemPending,
        pods: t.pods,
        expected: ['kv-0', 'kv-1', 'kv-2'],
        nodes: new Map(),
        settled: true,
      });
    },
  };
  const refuse = (codes: number[]) => {
    const code = codes.shift();
    if (code !== undefined) throw new ApiException(code, 'refused', '{"message":"refused"}', {});
  };
  const kube = {
    core: {
      listNamespacedPersistentVolumeClaim: async () => ({ items: claims }),
      patchNamespacedPersistentVolumeClaim: async (r: {
        name: string;
        body: { metadata: { annotations: Record<string, string | null> } };
      }) => {
        const value = r.body.metadata.annotations[RESIZE_RESTARTED_ANNOTATION];
        t.calls.push(`patch ${value}`);
        refuse(t.fail.patch);
        const annotations = claims.find((k) => k.metadata?.name === r.name)!.metadata!.annotations!;
        for (const [k, v] of Object.entries(r.body.metadata.annotations)) {
          if (v === null) delete annotations[k];
          else annotations[k] = v;
        }
      },
      createNamespacedPodEviction: async (r: {
        body: { deleteOptions: { preconditions: { uid: string } } };
      }) => {
        const uid = r.body.deleteOptions.preconditions.uid;
        t.calls.push(`evict ${uid}`);
        refuse(t.fail.evict);
        t.evicted.push(uid);
        t.pods = t.pods.map((p) => (p.uid === uid ? { ...p, terminating: true } : p));
      },
    },
  } as unknown as Kube;
  const ctx = {
    kube,
    events: { record: async () => {}, phaseChanged: async () => {} },
    logger: pino({ level: 'silent' }),
    now: () => new Date(t0),
  } as unknown as ControllerContext;
  return t;
}

describe('a restart for a grown volume', () => {
  it('is made once per wait, even when the clock that set the claim condition is ahead of the apiserver', async () => {
    const t = resizeFixture();
    expect(await t.round()).toMatch(/^restarting kv-2 /);
    expect(t.evicted).toEqual(['a2']);
    // Made again 5 s later by the apiserver's clock: still before the condition by the resizer's.
    t.remake('b2');
    // Before, it was restarted again (and again, until the apiserver's clock passed the condition's).
    expect(await t.round()).toBeNull();
    expect(t.evicted).toEqual(['a2']);
    // A new wait (the condition set True again later) restarts it once more.
    t.claims[2]!.status!.conditions![0]!.lastTransitionTime = new Date(t.t0 + 120_000);
    expect(await t.round()).toMatch(/^restarting kv-2 /);
    expect(t.evicted).toEqual(['a2', 'b2']);
  });

  it('marks its claim with the wait and the pod before the eviction; a mark that cannot be written evicts nothing', async () => {
    const t = resizeFixture();
    const mark = JSON.stringify({ since: new Date(t.t0 + 60_000).toISOString(), pod: 'a2' });
    t.fail.patch.push(500);
    const said: string[] = [];
    const round = async () =>
      said.push(String(await t.round().catch((err: Error) => `threw: ${err.message}`)));
    await round();
    await round();
    t.remake('b2');
    await round();
    // Before, a2 was evicted first and the failed mark threw: kv-2 made again unmarked was
    // restarted again (evicted a2, b2).
    expect(t.evicted).toEqual(['a2']);
    expect(t.calls).toEqual([`patch ${mark}`, `patch ${mark}`, 'evict a2']);
    expect(said[0]).toBe(
      'kv-2 restarts so that the file system of data-kv-2 grows once its claim can be marked (refused)',
    );
    expect(said[1]).toMatch(/^restarting kv-2 /);
    expect(said[2]).toBe('null');
    expect(t.mark()).toBe(mark);
  });

  it('an eviction the budget refuses is tried again for that pod alone', async () => {
    const t = resizeFixture();
    t.fail.evict.push(429);
    expect(await t.round()).toMatch(/once the PodDisruptionBudget allows a disruption$/);
    // The mark names a2, still there: it is evicted (not marked again), and nothing after it.
    expect(await t.round()).toMatch(/^restarting kv-2 /);
    expect(t.calls.filter((k) => k.startsWith('patch'))).toHaveLength(1);
    t.remake('b2');
    expect(await t.round()).toBeNull();
    expect(t.evicted).toEqual(['a2']);
  });

  it.each([
    [404, 'gone'],
    [409, 'made again (not the uid asked for)'],
  ])(
    'an eviction answered %i (the pod %s since the pods were listed) keeps the mark: the pod there next is not restarted',
    async (code) => {
      // The pods are listed before the claims, each round: a pod named kv-2 that is not a2 came
      // after that list, which came after the wait began, so it mounts the volume after the wait
      // began too (the kubelet grows the file system then). a2 may well have been restarted: an
      // eviction whose answer was lost and tried again, or a pod deleted by hand or a drain.
      const t = resizeFixture();
      const mark = JSON.stringify({ since: new Date(t.t0 + 60_000).toISOString(), pod: 'a2' });
      t.fail.evict.push(code);
      expect(await t.round()).toMatch(/^kv-2 went or was made again since it was listed: /);
      expect(t.mark()).toBe(mark);
      // kv-2 made again 5 s after t0 by the apiserver's clock: before the wait by the resizer's.
      t.remake('b2');
      // Before, the mark was taken back (patch null) and b2, judged by its creation time alone,
      // was restarted: a second restart for one wait.
      expect(await t.round()).toBeNull();
      expect(t.evicted).toEqual([]);
      expect(t.calls).toEqual([`patch ${mark}`, 'evict a2']);
    },
  );
});
