// Upgrades one pod at a time: the RollingUpdate partition steps down only while the cluster is healthy.

import type { V1StatefulSet } from '@kubernetes/client-node';
import type { NodeView, PodView } from './observe.ts';

export interface Health {
  /** Every pod Ready and answering, every member up in every node's view, no data moving. */
  readonly healthy: boolean;
  /** Some node reports its ring moving (data streaming between owners). */
  readonly rebalancing: boolean;
  /** Why it is not healthy, one short line each (not counting rebalancing). */
  readonly problems: readonly string[];
}

/**
 * Cluster health from the pods and the nodes' own views (pure). `except` leaves one pod out: its
 * own state and what the other nodes see of it.
 */
export function clusterHealth(
  pods: readonly PodView[],
  nodes: ReadonlyMap<string, NodeView>,
  except?: string,
): Health {
  const problems: string[] = [];
  let rebalancing = false;
  for (const pod of pods) {
    if (pod.terminating || pod.name === except) continue;
    if (!pod.ready) problems.push(`${pod.name} not ready`);
    const node = nodes.get(pod.name);
    if (!node) continue;
    if (!node.reachable) {
      problems.push(`${pod.name} unreachable (${node.error})`);
      continue;
    }
    if (node.view.ring.moving) rebalancing = true;
    for (const m of node.view.members) {
      if (m.state !== 'up' && m.name !== except)
        problems.push(`${pod.name} sees ${m.name} ${m.state}`);
    }
  }
  return { healthy: problems.length === 0 && !rebalancing, rebalancing, problems };
}

export interface RolloutInput {
  /** The StatefulSet as it is now (null before the first apply). */
  readonly sts: V1StatefulSet | null;
  /** The pod template differs from the one last applied: a new rollout starts. */
  readonly templateChanged: boolean;
  /** Replicas being applied this round. */
  readonly replicas: number;
  readonly pods: readonly PodView[];
  /** The nodes' own views (to tell whether the next pod to update is the only problem). */
  readonly nodes: ReadonlyMap<string, NodeView>;
  readonly health: Health;
}

export interface RolloutPlan {
  readonly partition: number;
  /** Some pod still runs an older template. */
  readonly rolling: boolean;
  /** Why the partition holds, when it does. */
  readonly waiting?: string;
}

function stsCurrent(sts: V1StatefulSet): boolean {
  return (sts.status?.observedGeneration ?? 0) >= (sts.metadata?.generation ?? 1);
}

/**
 * The partition for this round (pure). A template change sets it to `replicas` (no pod changes
 * yet); then it steps down by one each time every pod at or above it runs the update revision,
 * is Ready, and the cluster is healthy (nodes' view, not only readiness), or when the only
 * problem is the next pod to update itself (not ready, unreachable, seen down): replacing it
 * takes nothing more down, and it is how a template that fixes a broken pod reaches that pod.
 * Without it, a rollout whose new pod never got Ready (a bad image, a setting the node chokes
 * on) could not be undone: reverting the spec set the partition above that pod, which then
 * kept the abandoned template, and the gate waited for it to be healthy forever.
 */
export function planRollout(r: RolloutInput): RolloutPlan {
  if (r.sts === null) return { partition: 0, rolling: false };
  if (r.templateChanged) {
    return { partition: r.replicas, rolling: true, waiting: 'the new template was just applied' };
  }
  const updateRevision = r.sts.status?.updateRevision ?? '';
  const stale = r.pods.filter((p) => p.revision !== updateRevision);
  const current = r.sts.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
  const partition = Math.min(current, r.replicas);
  const rolling = partition > 0 || stale.length > 0;
  if (partition === 0) return { partition, rolling };
  if (!stsCurrent(r.sts)) return { partition, rolling, waiting: 'StatefulSet status is stale' };
  const above = r.pods.filter((p) => p.ordinal >= partition && p.ordinal < r.replicas);
  const pending = above.find((p) => p.revision !== updateRevision || !p.ready || p.terminating);
  if (pending)
    return { partition, rolling, waiting: `${pending.name} is not updated and ready yet` };
  if (!r.health.healthy && !nextIsTheOnlyProblem(r, partition, updateRevision)) {
    const why = r.health.problems[0] ?? 'data is moving between nodes';
    return { partition, rolling, waiting: `cluster not healthy: ${why}` };
  }
  return { partition: partition - 1, rolling: true };
}

/** The pod the next step updates is stale, and the cluster is healthy but for it (no data moving). */
function nextIsTheOnlyProblem(r: RolloutInput, partition: number, updateRevision: string): boolean {
  if (r.health.rebalancing) return false;
  const next = r.pods.find((p) => p.ordinal === partition - 1);
  if (!next || next.terminating || next.revision === updateRevision) return false;
  return clusterHealth(r.pods, r.nodes, next.name).healthy;
}
