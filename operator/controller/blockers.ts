// Why a pod does not start: its scheduling, its containers' waiting reasons, its claim's binding.

import type {
  CoreV1Event,
  V1ContainerStateWaiting,
  V1ContainerStatus,
  V1PersistentVolumeClaim,
  V1Pod,
} from '@kubernetes/client-node';
import { claimOf } from './claims.ts';
import type { ControllerContext } from './context.ts';
import type { EventTarget } from './events.ts';
import type { MissingPod } from './memory.ts';

/** A pod as these functions read it (observe.ts's PodView). */
interface PodCause {
  readonly name: string;
  readonly ready: boolean;
  readonly createdAtMs: number;
  readonly blocker?: Blocker;
}

/**
 * What keeps a pod from running, in the words of the object that says so: the pod's PodScheduled
 * condition, a container's waiting reason, or the latest Warning Event of its claim.
 */
export interface Blocker {
  /** The object that says why: `pod kv-0`, `container kv-0/kvstore`, `claim data-kv-0`. */
  readonly object: string;
  readonly reason: string;
  readonly message: string;
}

/**
 * A pod younger than this is not reported as blocked: a new pod is briefly Unschedulable
 * ("pod has unbound immediate PersistentVolumeClaims") while its claim binds, and that is no
 * cause to show. A pod older than this that still has one is reported at once.
 */
export const BLOCKER_AFTER_MS = 10_000;

/** Waiting reasons of a container on its way up, not held. */
const STARTING = new Set(['ContainerCreating', 'PodInitializing']);

/** One line of at most 300 characters: messages go into conditions, Events and one-line logs. */
function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/**
 * The kubelet alternates ErrImagePull and ImagePullBackOff (whose message puts `Back-off pulling
 * image "x": ` before the same error), and puts the back-off's current length into
 * CrashLoopBackOff's: each is said one way here, so the condition and the Event do not change
 * with every retry of the kubelet.
 */
function waitingCause(s: V1ContainerStatus, w: V1ContainerStateWaiting): Omit<Blocker, 'object'> {
  const reason = w.reason ?? 'Waiting';
  if (reason === 'ErrImagePull' || reason === 'ImagePullBackOff') {
    const detail = (w.message ?? '').replace(
      /^Back-off pulling image "[^"]*"(: ErrImagePull)?:? ?/,
      '',
    );
    const message = `cannot pull image "${s.image}"${detail ? `: ${detail}` : ''}`;
    return { reason: 'ImagePullBackOff', message: oneLine(message) };
  }
  if (reason === 'CrashLoopBackOff') {
    const t = s.lastState?.terminated;
    const exit = t ? `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}` : 'it exits';
    const said = t?.message ? `: ${t.message}` : '';
    return { reason, message: oneLine(`the container keeps exiting, last with ${exit}${said}`) };
  }
  return { reason, message: oneLine(w.message ?? reason) };
}

/** What the pod itself says keeps it from running (pure); null when nothing does. */
export function podBlocker(pod: V1Pod): Blocker | null {
  if (pod.metadata?.deletionTimestamp) return null;
  const name = pod.metadata?.name ?? '';
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    return {
      object: `pod ${name}`,
      reason: scheduled.reason ?? 'Unschedulable',
      message: oneLine(scheduled.message ?? 'not scheduled'),
    };
  }
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  for (const s of statuses) {
    const w = s.state?.waiting;
    if (!w?.reason || STARTING.has(w.reason)) continue;
    return { object: `container ${name}/${s.name}`, ...waitingCause(s, w) };
  }
  return null;
}

/** When an Event was last seen (core/v1 count and lastTimestamp, or events.k8s.io series). */
const timeOf = (e: CoreV1Event): number =>
  new Date(
    e.series?.lastObservedTime ??
      e.lastTimestamp ??
      e.eventTime ??
      e.metadata?.creationTimestamp ??
      0,
  ).getTime();

/**
 * A claim's Warning older than this is not its cause any more: the volume controller says it
 * again at every retry (every 15 s by default), and an Event stays for an hour after its cause
 * went (say ProvisioningFailed before the StorageClass was made, the claim now waiting for a
 * volume of it).
 */
export const CLAIM_WARNING_MAX_AGE_MS = 5 * 60_000;

/**
 * The cause of each unscheduled pod whose claim is not bound, from the claim's latest Warning
 * Event (ProvisioningFailed: `storageclass.storage.k8s.io "fast" not found`, a provisioner's
 * error, a quota): the scheduler only says that the pod "has unbound immediate
 * PersistentVolumeClaims". Pods whose claim has no Warning keep their own cause.
 */
export async function claimBlockers(
  ctx: ControllerContext,
  namespace: string,
  pods: readonly Pick<PodCause, 'name' | 'blocker'>[],
  claims: readonly V1PersistentVolumeClaim[],
): Promise<Map<string, Blocker>> {
  const found = new Map<string, Blocker>();
  const unscheduled = new Set(
    pods.filter((p) => p.blocker?.object === `pod ${p.name}`).map((p) => claimOf(p.name)),
  );
  const pending = claims
    .filter((c) => c.status?.phase === 'Pending' && unscheduled.has(c.metadata?.name ?? ''))
    .map((c) => c.metadata?.name ?? '');
  if (!pending.length) return found;
  const events = await ctx.kube.core.listNamespacedEvent({
    namespace,
    fieldSelector: 'involvedObject.kind=PersistentVolumeClaim,type=Warning',
  });
  const since = ctx.now().getTime() - CLAIM_WARNING_MAX_AGE_MS;
  for (const claim of pending) {
    const latest = events.items
      .filter((e) => e.involvedObject.name === claim && timeOf(e) >= since)
      .sort((a, b) => timeOf(b) - timeOf(a))[0];
    if (!latest) continue;
    const pod = pods.find((p) => claimOf(p.name) === claim)?.name ?? '';
    found.set(pod, {
      object: `claim ${claim}`,
      reason: latest.reason ?? 'Pending',
      message: oneLine(latest.message ?? 'not bound'),
    });
  }
  return found;
}

/**
 * The StatefulSet controller's Event of one pod's creation (reason SuccessfulCreate or
 * FailedCreate), its aggregator's prefix allowed: `Create Pod kv-1 in StatefulSet kv failed
 * error: pods "kv-1" is forbidden: exceeded quota: ...` (a claim it could not make is said here
 * too, besides the claim's own Event). `create` in earlier Kubernetes, `Create` in later ones.
 */
const CREATE_EVENT =
  /^(?:\(combined from similar events\): )?[Cc]reate Pod (\S+) in StatefulSet \S+ (?:successful|failed error: ([\s\S]*))$/;

/**
 * A pod the StatefulSet keeps and missing for less than this is not reported as not made: the
 * controller makes a deleted pod (a restart, an eviction, a rollout's step) again at once. As
 * for a pod that cannot start (BLOCKER_AFTER_MS).
 */
export const NOT_MADE_AFTER_MS = BLOCKER_AFTER_MS;

/**
 * Which of `missing` were not made because their creation was refused, and why (pure). The
 * decision is the state's: a pod the StatefulSet keeps, not there, and seen missing for
 * NOT_MADE_AFTER_MS (so not a pod deleted a moment ago and being made again). The
 * StatefulSet controller's Events give only the cause: a pod's latest FailedCreate (a
 * ResourceQuota exceeded, a PodSecurity or admission webhook refusal, a claim that could not be
 * made), and only when it is later than every creation of a pod of that name known: the last
 * this operator saw (lastMadeAtMs, from the pod itself) and any SuccessfulCreate Event of it (a
 * tie cannot say which came last: not reported). The Events alone do not say a pod was made
 * since: client-go's EventCorrelator in the controller lets a source send 25 Events of a type
 * about an object, then one per 5 minutes (a cluster of 13 pods has made 26 pods and claims),
 * and combines Events of one reason after 10 messages in 10 minutes into one that names only
 * the latest pod; so a pod's SuccessfulCreate could be missing and a FailedCreate from before
 * it was made read as the latest, and the pod, missing for a moment in a restart, was reported
 * not made. A pod missing with no later refusal known is left out (its Events may have been
 * dropped too: it counts among the pods not created, without a cause). The controller retries
 * with a back-off of up to 1,000 s, so a FailedCreate's age alone says nothing.
 */
export function createBlockers(
  statefulSet: string,
  events: readonly CoreV1Event[],
  missing: readonly MissingPod[],
): Map<string, Blocker> {
  const failed = new Map<string, { atMs: number; error: string }>();
  const made = new Map<string, number>();
  for (const e of events) {
    const m = CREATE_EVENT.exec(e.message ?? '');
    if (!m) continue;
    const [, pod = '', error] = m;
    const atMs = timeOf(e);
    if (error === undefined) made.set(pod, Math.max(made.get(pod) ?? -Infinity, atMs));
    else if (atMs > (failed.get(pod)?.atMs ?? -Infinity)) failed.set(pod, { atMs, error });
  }
  const found = new Map<string, Blocker>();
  for (const pod of missing) {
    if (pod.missingForMs < NOT_MADE_AFTER_MS) continue;
    const refused = failed.get(pod.name);
    if (refused === undefined) continue;
    const lastMade = Math.max(pod.lastMadeAtMs ?? -Infinity, made.get(pod.name) ?? -Infinity);
    if (refused.atMs <= lastMade) continue;
    found.set(pod.name, {
      object: `statefulset ${statefulSet}`,
      reason: 'FailedCreate',
      message: oneLine(refused.error),
    });
  }
  return found;
}

/** The StatefulSet's Events, read only when a pod it keeps is missing; why each was not made. */
export async function missingPodBlockers(
  ctx: ControllerContext,
  namespace: string,
  statefulSet: string,
  missing: readonly MissingPod[],
): Promise<Map<string, Blocker>> {
  if (!missing.some((p) => p.missingForMs >= NOT_MADE_AFTER_MS)) return new Map();
  const events = await ctx.kube.core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.kind=StatefulSet,involvedObject.name=${statefulSet}`,
  });
  return createBlockers(statefulSet, events.items, missing);
}

/** The pods blocked long enough to report (BLOCKER_AFTER_MS), each with its cause. */
export function reportedBlockers(
  pods: readonly PodCause[],
  now: Date,
): { readonly pod: string; readonly blocker: Blocker }[] {
  return pods.flatMap((p) =>
    p.blocker && !p.ready && now.getTime() - p.createdAtMs >= BLOCKER_AFTER_MS
      ? [{ pod: p.name, blocker: p.blocker }]
      : [],
  );
}

/** `kv-0 cannot start: claim data-kv-0 ProvisioningFailed: storageclass ... not found` */
export function blockerText(pod: string, b: Blocker): string {
  return `${pod} cannot start: ${b.object} ${b.reason}: ${b.message}`;
}

/** `; kv-0 cannot start: claim data-kv-0 ProvisioningFailed: ...` for each of `pods` blocked (at most 3), or ''. */
export function blockedText(pods: readonly PodCause[], now: Date): string {
  const blocked = reportedBlockers(pods, now);
  if (!blocked.length) return '';
  const more = blocked.length > 3 ? `; and ${blocked.length - 3} more pods that cannot start` : '';
  return `; ${blocked
    .slice(0, 3)
    .map((b) => blockerText(b.pod, b.blocker))
    .join('; ')}${more}`;
}

/** For `kubectl get kvc` (the Progress column): the first pod that cannot start and why, in short. */
export function blockedProgress(pods: readonly PodCause[], now: Date): string | undefined {
  const blocked = reportedBlockers(pods, now);
  const first = blocked[0];
  if (!first) return undefined;
  const more = blocked.length > 1 ? ` (+${blocked.length - 1} more)` : '';
  return `${first.pod} cannot start: ${first.blocker.object} ${first.blocker.reason}${more}`;
}

/**
 * A Warning Event per blocked pod, on the KVCluster, with the cause's own reason: recorded on
 * every reconcile that finds it, so a cause that stays is one Event whose count grows.
 */
export async function recordBlockers(
  ctx: ControllerContext,
  target: EventTarget,
  pods: readonly PodCause[],
): Promise<void> {
  for (const { pod, blocker } of reportedBlockers(pods, ctx.now())) {
    await ctx.events.record(target, 'Warning', blocker.reason, blockerText(pod, blocker));
  }
}
