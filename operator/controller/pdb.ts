// The PodDisruptionBudget of the nodes (deleted again when disabled).

import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { applyOwned, type ControllerContext, deleteIfOwned } from './context.ts';
import { type Cluster, namesOf, ownedMeta, selectorLabels } from './names.ts';

export function buildPdb(c: Cluster): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: ownedMeta(c, namesOf(c.name).pdb, 'node'),
    spec: {
      maxUnavailable: c.spec.podDisruptionBudget.maxUnavailable,
      selector: { matchLabels: selectorLabels(c.name) },
    },
  };
}

export async function ensurePdb(ctx: ControllerContext, c: Cluster): Promise<void> {
  if (c.spec.podDisruptionBudget.enabled) {
    await applyOwned(ctx, c.uid, buildPdb(c));
    return;
  }
  const ref = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace: c.namespace };
  await deleteIfOwned(ctx, c.uid, { ...ref, name: namesOf(c.name).pdb });
}
