// The PodDisruptionBudget of the nodes (deleted again when disabled).

import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { applyOwned, type ControllerContext, deleteIfOwned } from './context.ts';
import { type Cluster, namesOf, ownedMeta, selectorLabels } from './names.ts';

/**
 * The budget: spec.podDisruptionBudget.maxUnavailable, less one for each of `refusing`, Ready
 * pods whose nodes refuse work (their clock, a full disk: rollout.ts readyRefusers). The budget
 * counts Ready pods as up, and such a pod is down for writes: a drain that evicted another one
 * then left fewer replicas taking writes than the write quorum.
 */
export function buildPdb(c: Cluster, refusing: readonly string[] = []): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMeta(c, namesOf(c.name).pdb, 'node'),
    spec: {
      maxUnavailable: Math.max(0, c.spec.podDisruptionBudget.maxUnavailable - refusing.length),
      selector: { matchLabels: selectorLabels(c.name) },
    },
  };
}

export async function ensurePdb(
  ctx: ControllerContext,
  c: Cluster,
  refusing: readonly string[] = [],
): Promise<void> {
  if (c.spec.podDisruptionBudget.enabled) {
    await applyOwned(ctx, c.uid, buildPdb(c, refusing));
    return;
  }
  const ref = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace: c.namespace };
  await deleteIfOwned(ctx, c.uid, { ...ref, name: namesOf(c.name).pdb });
}
