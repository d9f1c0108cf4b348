// Operator reconcile(): what a failing reconcile reads and reports.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  buildStatefulSet,
  type ControllerContext,
  type KVClusterObject,
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
