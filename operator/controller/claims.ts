// The nodes' claims as holders of data: each is marked once its node answered the operator, so a
// leaving pod that does not run (deleted, recreated, pending) is known to hold data or not.

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { statusCode } from '../runtime/index.ts';
import type { ControllerContext } from './context.ts';
import type { Cluster } from './names.ts';
import type { Observed } from './observe.ts';

/**
 * On a node's claim: its node answered the operator at least once, so the volume holds what the
 * node stored (it joined the ring), whatever its pod does now. A claim without it was never
 * used by a running node (a scale-up reversed before its pods started).
 */
export const JOINED_ANNOTATION = 'kvstore.dev/joined';

/** The claim of a StatefulSet pod (the `data` claim template: `data-<pod>`). */
export function claimOf(pod: string): string {
  return `data-${pod}`;
}

/**
 * Marks the claim of every pod whose node answered this round, once per pod (by uid): a merge
 * patch of the annotation alone, never read first. A claim that is gone is skipped.
 */
export async function markJoinedClaims(
  ctx: ControllerContext,
  c: Cluster,
  observed: Pick<Observed, 'pods' | 'nodes'>,
): Promise<void> {
  const live = new Set(observed.pods.flatMap((p) => (p.uid ? [p.uid] : [])));
  ctx.memory.keepJoined(c.uid, live);
  for (const p of observed.pods) {
    if (!p.uid || observed.nodes.get(p.name)?.reachable !== true) continue;
    if (ctx.memory.joined(c.uid, p.uid)) continue;
    try {
      await ctx.kube.core.patchNamespacedPersistentVolumeClaim(
        {
          name: claimOf(p.name),
          namespace: c.namespace,
          body: { metadata: { annotations: { [JOINED_ANNOTATION]: 'true' } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    ctx.memory.rememberJoined(c.uid, p.uid);
  }
}

/** Whether the claim of `pod` exists and its node joined (JOINED_ANNOTATION). */
export async function claimHoldsData(
  ctx: ControllerContext,
  c: Cluster,
  pod: string,
): Promise<boolean> {
  const list = await ctx.kube.core.listNamespacedPersistentVolumeClaim({
    namespace: c.namespace,
    fieldSelector: `metadata.name=${claimOf(pod)}`,
  });
  return list.items.some((pvc) => pvc.metadata?.annotations?.[JOINED_ANNOTATION] === 'true');
}
