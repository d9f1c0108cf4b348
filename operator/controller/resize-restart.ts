// Restarts for grown volumes: a storage provider that grows a file system only when the volume is
// mounted again marks the claim FileSystemResizePending; the kubelet finishes the growth when the
// pod restarts. The operator restarts those pods itself, one at a time, each like a rollout
// step: only between scales and rollouts, only while every pod is Ready and the cluster healthy
// (the rollout's gate), and by eviction, so the PodDisruptionBudget also holds it back.

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { errorMessage, statusCode } from '../runtime/index.ts';
import type { ControllerContext } from './context.ts';
import type { Cluster } from './names.ts';
import type { NodeView, PodView } from './observe.ts';
import { clusterHealth, safeToTakeDown, storesNoWrites } from './rollout.ts';
import { type FileSystemPending, RESIZE_RESTARTED_ANNOTATION, resizeMarkText } from './volumes.ts';

export type ResizeRestartPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'wait'; readonly pod: string; readonly claim: string; readonly why: string }
  | {
      readonly kind: 'restart';
      readonly pod: string;
      readonly claim: string;
      readonly uid: string;
      readonly left: number;
      /** The wait it restarts for (the condition's lastTransitionTime, ms). */
      readonly sinceMs: number;
      /** The claim is marked for this restart already (an eviction refused or failed before). */
      readonly marked: boolean;
    };

export interface ResizeRestartInput {
  readonly pending: readonly FileSystemPending[];
  readonly pods: readonly PodView[];
  /**
   * The pods the StatefulSet keeps (its replicas): one not listed (deleted, not made again yet)
   * is down as much as one not Ready.
   */
  readonly expected: readonly string[];
  /** The nodes' own views: the gate is the rollout's (safeToTakeDown). */
  readonly nodes: ReadonlyMap<string, NodeView>;
  /** No scale or rollout under way, and the StatefulSet is there to make the pod again. */
  readonly settled: boolean;
}

/**
 * Whether `pod` is to be restarted for its claim's wait (pure). A claim marked for this very
 * wait (RESIZE_RESTARTED_ANNOTATION, written before the eviction) names the pod restarted for
 * it: that pod, while it is there, is still to be restarted (its eviction was refused, failed,
 * or never sent), and no other pod is (one there now came after it, so it mounted the volume
 * after the wait began, and the kubelet grows the file system when it mounts it). The two times
 * are not compared then: they come from two clocks (the condition's from whatever set it, the
 * resizer on some node; the pod's from the apiserver), and a condition's clock ahead by more
 * than a restart takes made the pod made again look older than the wait, so it was restarted
 * again, and again until the clocks' gap was covered. A mark of the time alone (operators
 * before 2026-12-07 wrote it after the eviction) means restarted. Unmarked, a pod created
 * before the wait began is restarted.
 */
function restartDue(pod: PodView, f: FileSystemPending): boolean {
  if (f.mark !== undefined && f.mark.sinceMs === f.sinceMs) {
    return f.mark.pod !== undefined && f.mark.pod === pod.uid;
  }
  return pod.createdAtMs < f.sinceMs;
}

/**
 * The next pod to restart, or why it waits (pure), among pods not terminating that restartDue
 * says are due: those whose storage refuses writes first (a full disk, which the restart may be
 * the fix of: taking them down loses no replica of a write, safeToTakeDown), then the highest
 * ordinal first, as in a rollout. Before, the highest went first whatever the others refused:
 * with a lower pod's disk full, it would wait for that pod, whose restart came after its own.
 */
export function planResizeRestart(r: ResizeRestartInput): ResizeRestartPlan {
  const since = new Map(r.pending.map((p) => [p.pod, p]));
  const full = (p: PodView) => (storesNoWrites(r.nodes, p.name) ? 1 : 0);
  const due = r.pods
    .filter((p) => !p.terminating)
    .filter((p) => {
      const f = since.get(p.name);
      return f !== undefined && restartDue(p, f);
    })
    .sort((a, b) => full(b) - full(a) || b.ordinal - a.ordinal);
  const next = due[0];
  if (!next) return { kind: 'none' };
  const f = since.get(next.name);
  const claim = f?.claim ?? '';
  const wait = (why: string) => ({ kind: 'wait', pod: next.name, claim, why }) as const;
  if (!r.settled) return wait('the scale or rollout under way ends');
  const missing = r.expected.find((name) => !r.pods.some((p) => p.name === name));
  if (missing) return wait(`${missing} is made again`);
  const down = r.pods.find((p) => p.terminating || !p.ready);
  if (down) return wait(`${down.name} is ${down.terminating ? 'terminating' : 'not ready'}`);
  if (!safeToTakeDown(r.pods, r.nodes, next.name)) {
    const why = clusterHealth(r.pods, r.nodes, next.name).problems[0] ?? 'data is moving';
    return wait(`the cluster is healthy (${why})`);
  }
  const sinceMs = f?.sinceMs ?? Number.NaN;
  const uid = next.uid ?? '';
  const marked = f?.mark?.sinceMs === sinceMs && f.mark.pod === uid;
  return { kind: 'restart', pod: next.name, claim, uid, left: due.length, sinceMs, marked };
}

/**
 * Restarts the next pod whose file system waits for it, when the gate allows: marks its claim
 * for this restart first (RESIZE_RESTARTED_ANNOTATION: the wait and the pod's uid), then evicts
 * that very pod (a uid precondition). Marked first, so that an operator stopped, or a patch
 * failing, after the eviction cannot leave the pod made again unmarked (with the resizer's
 * clock ahead it looked older than the wait and was restarted again); the mark names the pod,
 * so one written before an eviction that did not happen holds nothing back. A mark that cannot
 * be written evicts nothing; a mark is never taken back (the pods there after the one it names
 * mount the volume after the wait began). Returns what the Progressing condition says (reason
 * FileSystemResize), or null when no pod needs the operator.
 */
export async function ensureResizeRestart(
  ctx: ControllerContext,
  c: Cluster,
  input: ResizeRestartInput,
): Promise<string | null> {
  const plan = planResizeRestart(input);
  if (plan.kind === 'none') return null;
  const what = `${plan.pod} restarts so that the file system of ${plan.claim} grows`;
  if (plan.kind === 'wait') return `${what} once ${plan.why}`;
  const where = { cluster: c.name, namespace: c.namespace, pod: plan.pod, claim: plan.claim };
  if (!plan.marked) {
    try {
      await patchMark(ctx, c, plan.claim, resizeMarkText(plan.sinceMs, plan.uid));
    } catch (err) {
      ctx.logger.warn({ ...where, err }, 'cannot mark the claim of a pod to restart');
      return `${what} once its claim can be marked (${errorMessage(err)})`;
    }
  }
  try {
    await ctx.kube.core.createNamespacedPodEviction({
      name: plan.pod,
      namespace: c.namespace,
      body: {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: plan.pod, namespace: c.namespace },
        ...(plan.uid ? { deleteOptions: { preconditions: { uid: plan.uid } } } : {}),
      },
    });
  } catch (err) {
    // 429: the PodDisruptionBudget allows no disruption now (the mark, naming this pod, stays:
    // it is tried again). 404/409: no pod of that uid is there (gone; or made again, which fails
    // the uid precondition; a 409 of the same pod is a conflict retried out, tried again): the
    // mark stays. The pods were listed from the apiserver moments before the claims that showed
    // the wait, so a pod under that name that is not the one listed was made after that list: it
    // mounts the volume (scheduled, attached: seconds) after the wait began, and the kubelet grows
    // the file system then. The one listed may have been restarted (an eviction whose answer
    // was lost and that was tried again, a pod deleted by hand or by a drain): before, the mark
    // was taken back, and the pod made again, judged by its creation time against the
    // condition's (two clocks), was restarted a second time. Any other error: whether it was
    // evicted is not known, and the mark stays (evicted: the pod made again is not restarted;
    // not: it is tried again).
    const code = statusCode(err);
    if (code === 429) return `${what} once the PodDisruptionBudget allows a disruption`;
    if (code !== 404 && code !== 409) throw err;
    ctx.logger.info(where, 'the pod to restart went or was made again since it was listed');
    return `${plan.pod} went or was made again since it was listed: the file system of ${plan.claim} grows as the pod there next mounts it`;
  }
  const message =
    `restarting ${plan.pod} so that the file system of ${plan.claim} grows (the storage ` +
    'provider grows it only when the volume is mounted again); one pod at a time, each once ' +
    `every pod is Ready and the cluster healthy (${plan.left} waiting, this one included)`;
  ctx.logger.info(where, 'restarting a pod to grow its file system');
  await ctx.events.record(c, 'Normal', 'FileSystemResizeRestart', message);
  return message;
}

/** Sets `claim`'s RESIZE_RESTARTED_ANNOTATION: a merge patch of it alone. */
async function patchMark(
  ctx: ControllerContext,
  c: Cluster,
  claim: string,
  value: string,
): Promise<void> {
  await ctx.kube.core.patchNamespacedPersistentVolumeClaim(
    {
      name: claim,
      namespace: c.namespace,
      body: { metadata: { annotations: { [RESIZE_RESTARTED_ANNOTATION]: value } } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}
