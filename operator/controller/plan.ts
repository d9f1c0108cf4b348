// The reconcile plan: StatefulSet size and partition from what was observed (pure, unit-tested).

import type { Cluster } from './names.ts';
import type { Observed } from './observe.ts';
import { clusterHealth, type Health, planRollout, type RolloutPlan } from './rollout.ts';
import { type LeavingState, planScale, type ScalePlan } from './scale.ts';
import { appliedTemplateHash, desiredTemplateHash, type StatefulSetPlan } from './statefulset.ts';

export interface ClusterPlan {
  readonly scale: ScalePlan;
  readonly rollout: RolloutPlan;
  readonly health: Health;
  /** What ensureStatefulSet applies. */
  readonly statefulSet: StatefulSetPlan;
  /** Claims not grown to spec.storage.size yet, each with what it waits for (ensureVolumes). */
  readonly volumes?: readonly string[];
  /** A pod restarted (or waiting to be) so that its claim's file system grows (resize-restart.ts). */
  readonly fileSystemResize?: string;
  /** Settings ConfigMaps a pod revision uses, deleted, and not known to make again. */
  readonly configMapsMissing?: readonly string[];
}

/**
 * The StatefulSet's replicas; without one (deleted with its pods orphaned: by the operator to
 * change the claim template, or by hand), as many as the pods there are (the highest ordinal
 * + 1), so a scale-down still decommissions each pod first; null when there are none either.
 */
export function currentReplicas(observed: Pick<Observed, 'sts' | 'pods'>): number | null {
  const replicas = observed.sts?.spec?.replicas;
  if (replicas !== undefined) return replicas;
  const live = observed.pods.filter((p) => !p.terminating);
  return live.length === 0 ? null : Math.max(...live.map((p) => p.ordinal)) + 1;
}

/**
 * Decides this round: scale first (decommission before shrinking), then the rollout partition
 * for the replicas being applied, gated on cluster health.
 */
export function planCluster(
  c: Cluster,
  observed: Observed,
  leaving: LeavingState | null,
  configHash: string,
): ClusterPlan {
  const current = currentReplicas(observed);
  const health = clusterHealth(observed.pods, observed.nodes);
  const scale = planScale({
    cluster: c.name,
    desired: c.spec.replicas,
    current,
    replicationFactor: c.spec.replicationFactor,
    leaving,
    rebalancing: health.rebalancing,
  });
  const templateChanged =
    observed.sts !== null &&
    appliedTemplateHash(observed.sts) !== desiredTemplateHash(c, configHash);
  const rollout = planRollout({
    sts: observed.sts,
    templateChanged,
    replicas: scale.replicas,
    pods: observed.pods,
    nodes: observed.nodes,
    health,
  });
  return {
    scale,
    rollout,
    health,
    statefulSet: { replicas: scale.replicas, partition: rollout.partition, configHash },
  };
}
