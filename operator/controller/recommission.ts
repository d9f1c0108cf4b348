// Scale-up onto retained volumes: pods that come back decommissioned are recommissioned.

import type { ControllerContext } from './context.ts';
import type { Cluster } from './names.ts';
import { addressOf, type NodeView, type PodView, podNamed } from './observe.ts';

/**
 * Pods the cluster keeps (ordinal below both the desired and the StatefulSet's size) whose node
 * reports itself `decommissioned` or `decommissioning`: a StatefulSet scaled down and up again
 * brings a pod back on its retained volume, still decommissioned (or a scale-down was reversed
 * while it handed off). Pure.
 */
export function planRecommission(
  desired: number,
  current: number | null,
  pods: readonly PodView[],
  nodes: ReadonlyMap<string, NodeView>,
): string[] {
  const keep = Math.min(desired, current ?? desired);
  return pods
    .filter((p) => p.ordinal < keep && !p.terminating)
    .filter((p) => {
      const n = nodes.get(p.name);
      const status = n?.reachable ? n.view.status : undefined;
      return status === 'decommissioned' || status === 'decommissioning';
    })
    .map((p) => p.name);
}

/**
 * POSTs /admin/recommission to each planned pod. A refusal (the node's 409: its ring has not
 * settled without it yet) or an unreachable pod is logged and tried again on a later reconcile.
 */
export async function ensureRecommission(
  ctx: ControllerContext,
  c: Cluster,
  pods: readonly string[],
  observed: readonly PodView[],
): Promise<void> {
  for (const pod of pods) {
    let result: Awaited<ReturnType<typeof ctx.admin.recommission>>;
    try {
      result = await ctx.admin.recommission(addressOf(ctx, c, podNamed(observed, pod)));
    } catch (err) {
      ctx.logger.warn({ cluster: c.name, namespace: c.namespace, pod, err }, 'recommission failed');
      continue;
    }
    const where = { cluster: c.name, namespace: c.namespace, pod };
    if (!result.accepted) {
      ctx.logger.info({ ...where, error: result.error }, 'recommission waits');
      continue;
    }
    ctx.logger.info(where, 'recommissioned');
    await ctx.events.record(
      c,
      'Normal',
      'Recommissioned',
      `${pod} was decommissioned: taken back into the ring`,
    );
  }
}
