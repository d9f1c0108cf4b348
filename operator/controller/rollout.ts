// Upgrades one pod at a time: the RollingUpdate partition steps down only while the cluster is healthy.

import type { V1StatefulSet } from '@kubernetes/client-node';
import type { NodeView, PodView } from './observe.ts';

export interface Health {
  /**
   * Every pod Ready and answering, every member up in every node's view, none refusing work
   * (writes for its clock, replicas of writes for its storage, every command), no data moving.
   */
  readonly healthy: boolean;
  /** Some node reports its ring moving (data streaming between owners). */
  readonly rebalancing: boolean;
  /** Why it is not healthy, one short line each (not counting rebalancing). */
  readonly problems: readonly string[];
  /** Those of `problems` that are a running member refusing work, as it or its peers report. */
  readonly refusals: readonly string[];
  /** The members those refusals are about, each once, in the order first met. */
  readonly refusers: readonly string[];
}

type NodeAnswer = Extract<NodeView, { reachable: true }>['view'];
type MemberAnswer = NodeAnswer['members'][number];

/** How a rollout held by the cluster's health begins its `waiting` (the problems follow). */
export const UNHEALTHY = 'cluster not healthy: ';

/**
 * What a node says it refuses now, one line each: its clients' commands (`refusing`: a stalled
 * disk, a duplicate name, its clock) and replicas of writes (`notWritable`: a full disk). A node
 * that refuses is Ready all the same in some cases (a full disk; a clock refusal no other member
 * could take over), and turns unready only after its readiness probe failed a few times.
 */
export function ownRefusals(view: NodeAnswer, withNotWritable: boolean): string[] {
  const lines: string[] = [];
  const r = view.refusing;
  if (r) lines.push(`refuses ${r.commands === 'all' ? 'every command' : 'writes'}: ${r.reason}`);
  if (view.notWritable && withNotWritable)
    lines.push(`refuses writes: storage not writable: ${view.notWritable}`);
  return lines;
}

/** What a member's last hello said it refuses, as another node shows it. */
function memberRefusals(m: MemberAnswer, withNotWritable: boolean): string[] {
  return [
    m.storageStalled === true ? 'disk stalled' : null,
    m.clockRefusing === true ? 'refusing writes (clock)' : null,
    m.storageNotWritable === true && withNotWritable
      ? 'refusing writes (storage not writable)'
      : null,
  ].filter((n) => n !== null);
}

/**
 * Cluster health from the pods and the nodes' own views (pure). `except` leaves one pod out: its
 * own state and what the other nodes see of it. A member's refusals count as its own answer says
 * them; what its peers' views say of it counts only while it does not answer (fresher, and one
 * line rather than one per peer). `withNotWritable: false` leaves out members whose storage
 * refuses writes (safeToTakeDown).
 */
export function clusterHealth(
  pods: readonly PodView[],
  nodes: ReadonlyMap<string, NodeView>,
  except?: string,
  withNotWritable = true,
): Health {
  const problems: string[] = [];
  const refusals: string[] = [];
  const refusers = new Set<string>();
  const refuse = (who: string, line: string) => {
    problems.push(line);
    refusals.push(line);
    refusers.add(who);
  };
  const answers = (name: string) => nodes.get(name)?.reachable === true;
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
    for (const r of ownRefusals(node.view, withNotWritable)) refuse(pod.name, `${pod.name} ${r}`);
    for (const m of node.view.members) {
      if (m.name === except) continue;
      if (m.state !== 'up') problems.push(`${pod.name} sees ${m.name} ${m.state}`);
      else if (!answers(m.name)) {
        for (const r of memberRefusals(m, withNotWritable))
          refuse(m.name, `${pod.name} sees ${m.name} ${r}`);
      }
    }
  }
  const healthy = problems.length === 0 && !rebalancing;
  return { healthy, rebalancing, problems, refusals, refusers: [...refusers] };
}

/**
 * The Ready pods whose node says it refuses work now (its clients' commands, or replicas of
 * writes): Ready, so a PodDisruptionBudget counts them as up (pdb.ts lowers it by them).
 */
export function readyRefusers(
  pods: readonly PodView[],
  nodes: ReadonlyMap<string, NodeView>,
): string[] {
  return pods
    .filter((p) => p.ready && !p.terminating)
    .filter((p) => {
      const n = nodes.get(p.name);
      return n?.reachable === true && (Boolean(n.view.refusing) || Boolean(n.view.notWritable));
    })
    .map((p) => p.name);
}

/** The pod's node says its storage refuses writes (a full disk): it stores no replica of a write. */
export function storesNoWrites(nodes: ReadonlyMap<string, NodeView>, pod: string): boolean {
  const n = nodes.get(pod);
  return n?.reachable === true && Boolean(n.view.notWritable);
}

/**
 * Whether taking `pod` down (a rollout step, a restart) takes nothing down that serves (pure): no
 * data moving, and the cluster healthy but for `pod` itself; or `pod` stores no write (its
 * storage refuses them: a full disk) and the only other problems are members whose storage
 * refuses writes too. Write quorums count none of those already, and they all still serve reads,
 * so the restart that may be their fix (a volume grown only on a remount, a setting) goes on.
 * A member refusing writes for its clock is not such a problem: it still stores the replicas
 * other nodes send it, and it alone may be what makes a write quorum.
 */
export function safeToTakeDown(
  pods: readonly PodView[],
  nodes: ReadonlyMap<string, NodeView>,
  pod: string,
): boolean {
  const without = clusterHealth(pods, nodes, pod);
  if (without.healthy) return true;
  if (without.rebalancing || !storesNoWrites(nodes, pod)) return false;
  return clusterHealth(pods, nodes, pod, false).healthy;
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
 * is Ready, and the cluster is healthy (nodes' view, not only readiness: a Ready pod may refuse
 * writes, for its clock or a full disk, and then another pod down leaves fewer replicas that
 * take them than the write quorum), or when the only problem is the next pod to update itself
 * (not ready, unreachable, seen down, refusing: safeToTakeDown): replacing it takes nothing more
 * down, and it is how a template that fixes a broken pod reaches that pod.
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
    return { partition, rolling, waiting: `${UNHEALTHY}${why}` };
  }
  return { partition: partition - 1, rolling: true };
}

/**
 * The pod the next step updates is stale, and taking it down takes nothing more down than is
 * already (safeToTakeDown: the cluster healthy but for it, no data moving).
 */
function nextIsTheOnlyProblem(r: RolloutInput, partition: number, updateRevision: string): boolean {
  if (r.health.rebalancing) return false;
  const next = r.pods.find((p) => p.ordinal === partition - 1);
  if (!next || next.terminating || next.revision === updateRevision) return false;
  return safeToTakeDown(r.pods, r.nodes, next.name);
}

/**
 * The Event message of a rollout held for members that run and refuse work (pure), or null when
 * it is not. The phase stays Upgrading meanwhile, so no phase Event says it; the Degraded
 * condition (MembersRefusing) gives each refusal's reason.
 */
export function rolloutHeldMessage(plan: RolloutPlan, health: Health): string | null {
  if (!plan.waiting?.startsWith(UNHEALTHY) || health.refusers.length === 0) return null;
  const who = health.refusers.join(', ');
  const verb = health.refusers.length === 1 ? 'refuses' : 'refuse';
  return (
    `the rollout holds at partition ${plan.partition}: ${who} ${verb} work while running (the ` +
    'Degraded condition says what and why); replacing another pod now would leave fewer ' +
    'replicas taking writes than the write quorum. It goes on by itself once they take writes again'
  );
}
