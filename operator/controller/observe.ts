// Reads what a reconcile decides from: the StatefulSet, its pods, and each started node's own view.

import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import { type Blocker, claimBlockers, missingPodBlockers, podBlocker } from './blockers.ts';
import type { ControllerContext } from './context.ts';
import { type Cluster, namesOf, ordinalOf, podName, selectorString } from './names.ts';
import type { ClusterView, PodAddress } from './node-admin.ts';
import { readStatefulSet } from './statefulset.ts';
import { listClaims } from './volumes.ts';

export interface PodView {
  readonly name: string;
  /** The pod's uid (an eviction's precondition: this pod, not one made again since). */
  readonly uid?: string;
  readonly ordinal: number;
  /** The pod's Ready condition is True. */
  readonly ready: boolean;
  /** Running with an IP: its node process may answer. */
  readonly started: boolean;
  readonly terminating: boolean;
  /** `controller-revision-hash` label: the StatefulSet revision the pod runs. */
  readonly revision: string;
  readonly createdAtMs: number;
  /**
   * Not ready, after running: a container restarted (a crash), or the Ready condition turned
   * False after the container started (it was Ready, and its readiness probe fails now). Such a
   * pod is a problem at once; the start-up grace is for pods that have not run yet.
   */
  readonly lostReady: boolean;
  /**
   * The port its node serves HTTP on: its container's `http` port, which its StatefulSet
   * revision set (absent: spec.ports.http).
   */
  readonly httpPort?: number;
  /**
   * What keeps it from running, when something does: its scheduling, a container's waiting
   * reason, or (unscheduled, its claim not bound) the claim's latest Warning.
   */
  readonly blocker?: Blocker;
}

/** A pod the StatefulSet keeps that was never made, and why (the StatefulSet's FailedCreate). */
export interface UnmadePod {
  readonly name: string;
  readonly blocker: Blocker;
}

/** Unmade pods as the blocker reports take pods: not ready, and old enough to report at once. */
export function unmadeCauses(unmade: readonly UnmadePod[] | undefined) {
  return (unmade ?? []).map((u) => ({ ...u, ready: false, createdAtMs: 0 }));
}

export type NodeView =
  | { readonly reachable: true; readonly view: ClusterView }
  | { readonly reachable: false; readonly error: string };

export interface Observed {
  readonly sts: V1StatefulSet | null;
  /** Pods of the StatefulSet, by ordinal. */
  readonly pods: readonly PodView[];
  /** GET /admin/cluster of each started pod. */
  readonly nodes: ReadonlyMap<string, NodeView>;
  /**
   * Pods the StatefulSet keeps that do not exist because their creation was refused (a
   * ResourceQuota, PodSecurity, an admission webhook): missing for NOT_MADE_AFTER_MS, with a
   * FailedCreate later than any creation of them known (createBlockers).
   */
  readonly unmade?: readonly UnmadePod[];
}

export function podView(cluster: string, pod: V1Pod): PodView | null {
  const name = pod.metadata?.name ?? '';
  const ordinal = ordinalOf(cluster, name);
  if (ordinal < 0) return null;
  const readyCond = pod.status?.conditions?.find((c) => c.type === 'Ready');
  const ready = readyCond?.status === 'True';
  const created = pod.metadata?.creationTimestamp;
  const httpPort = pod.spec?.containers
    ?.flatMap((c) => c.ports ?? [])
    .find((p) => p.name === 'http')?.containerPort;
  const uid = pod.metadata?.uid;
  const blocker = ready ? null : podBlocker(pod);
  return {
    name,
    ...(uid ? { uid } : {}),
    ordinal,
    ready,
    started: pod.status?.phase === 'Running' && Boolean(pod.status?.podIP),
    terminating: pod.metadata?.deletionTimestamp !== undefined,
    revision: pod.metadata?.labels?.['controller-revision-hash'] ?? '',
    createdAtMs: created ? new Date(created).getTime() : 0,
    lostReady: !ready && lostReadiness(pod, readyCond?.lastTransitionTime),
    ...(httpPort ? { httpPort } : {}),
    ...(blocker ? { blocker } : {}),
  };
}

const timeMs = (t: Date | string | undefined): number => (t ? new Date(t).getTime() : Number.NaN);

/**
 * A pod that ran and is not ready any more: some container restarted, or its Ready condition
 * last changed after a container started (a new pod's Ready=False dates from before its
 * containers start, and keeps that time until it first turns True).
 */
function lostReadiness(pod: V1Pod, readySince: Date | string | undefined): boolean {
  const statuses = pod.status?.containerStatuses ?? [];
  if (statuses.some((c) => (c.restartCount ?? 0) > 0)) return true;
  const since = timeMs(readySince);
  return statuses.some((c) => since > timeMs(c.state?.running?.startedAt));
}

/**
 * The admin address of a pod of `c`, at the pod's own HTTP port. A change of spec.ports.http
 * rolls the pods one at a time: until a pod is replaced its node still listens on the port its
 * revision gave it. Every call went to the spec's port, so once it changed no pod on the old
 * revision answered, the cluster looked unhealthy, and the rollout never started (or stopped
 * after its first pod) for good.
 */
export function addressOf(
  ctx: ControllerContext,
  c: Cluster,
  pod: Pick<PodView, 'name' | 'httpPort'>,
): PodAddress {
  return {
    pod: pod.name,
    headless: namesOf(c.name).headless,
    namespace: c.namespace,
    cluster: c.name,
    httpPort: pod.httpPort ?? c.spec.ports.http,
    clusterDomain: ctx.settings.clusterDomain,
    clusterSecret: c.spec.auth?.clusterSecret ?? null,
  };
}

/** A pod by name, as addressOf takes it: its observed view (its port), or the name alone. */
export function podNamed(
  pods: readonly PodView[],
  name: string,
): Pick<PodView, 'name' | 'httpPort'> {
  return pods.find((p) => p.name === name) ?? { name };
}

async function listPods(ctx: ControllerContext, c: Cluster): Promise<PodView[]> {
  const list = await ctx.kube.core.listNamespacedPod({
    namespace: c.namespace,
    labelSelector: selectorString(c.name),
  });
  const pods = list.items
    .map((p) => podView(c.name, p))
    .filter((p): p is PodView => p !== null)
    .sort((a, b) => a.ordinal - b.ordinal);
  // An unscheduled pod's claim may say why (a StorageClass that does not exist): listed only then.
  if (!pods.some((p) => p.blocker?.object === `pod ${p.name}`)) return pods;
  const fromClaims = await claimBlockers(ctx, c.namespace, pods, await listClaims(ctx, c));
  return pods.map((p) => {
    const blocker = fromClaims.get(p.name);
    return blocker ? { ...p, blocker } : p;
  });
}

async function nodeView(ctx: ControllerContext, c: Cluster, pod: PodView): Promise<NodeView> {
  try {
    return { reachable: true, view: await ctx.admin.cluster(addressOf(ctx, c, pod)) };
  } catch (err) {
    return { reachable: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * The pods `sts` keeps that are not there, were seen missing long enough to be more than a pod
 * deleted and being made again, and whose creation was refused (createBlockers: pods that exist
 * but cannot start say so themselves; one never made leaves only the StatefulSet controller's
 * Event). Before, a cluster whose pods a ResourceQuota refused said `1/3 pods created` and
 * nothing more.
 */
async function unmadePods(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
  pods: readonly PodView[],
): Promise<UnmadePod[]> {
  const replicas = !sts || sts.metadata?.deletionTimestamp ? 0 : (sts.spec?.replicas ?? 0);
  const kept = Array.from({ length: replicas }, (_, i) => podName(c.name, i));
  const names = kept.filter((name) => !pods.some((p) => p.name === name));
  const missing = ctx.memory.observePods(c.uid, ctx.now().getTime(), pods, names);
  const name = sts?.metadata?.name ?? namesOf(c.name).statefulSet;
  const found = await missingPodBlockers(ctx, c.namespace, name, missing);
  return [...found].map(([pod, blocker]) => ({ name: pod, blocker }));
}

export async function observe(ctx: ControllerContext, c: Cluster): Promise<Observed> {
  const [sts, pods] = await Promise.all([readStatefulSet(ctx, c), listPods(ctx, c)]);
  const started = pods.filter((p) => p.started && !p.terminating);
  const [views, unmade] = await Promise.all([
    Promise.all(started.map((p) => nodeView(ctx, c, p))),
    unmadePods(ctx, c, sts, pods),
  ]);
  const nodes = new Map(started.map((p, i) => [p.name, views[i]!]));
  return { sts, pods, nodes, ...(unmade.length ? { unmade } : {}) };
}
