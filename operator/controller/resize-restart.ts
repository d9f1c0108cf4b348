// Restarts for grown volumes: a storage provider that grows a file system only when the volume is
// mounted again marks the claim FileSystemResizePending; the kubelet finishes the growth when the
// pod restarts. The operator restarts those pods itself, one at a time, each like a rollout
// step: only between scales and rollouts, only while every pod is Ready and the cluster healthy
// (the rollout's gate), and by eviction, so the PodDisruptionBudget also holds it back.

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { statusCode } from '../runtime/index.ts';
import type { ControllerContext } from './context.ts';
import type { Cluster } from './names.ts';
import type { PodView } from './observe.ts';
import type { Health } from './rollout.ts';
import { type FileSystemPending, RESIZE_RESTARTED_ANNOTATION } from './volumes.ts';

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
    };

export interface ResizeRestartInput {
  readonly pending: readonly FileSystemPending[];
  readonly pods: readonly PodView[];
  /**
   * The pods the StatefulSet keeps (its replicas): one not listed (deleted, not made again yet)
   * is down as much as one not Ready.
   */
  readonly expected: readonly string[];
  readonly health: Health;
  /** No scale or rollout under way, and the StatefulSet is there to make the pod again. */
  readonly settled: boolean;
}

/**
 * The next pod to restart, or why it waits (pure). A pod created after its claim's condition
 * turned True was restarted already: the kubelet grows the file system when it mounts the
 * volume, and a second restart would not help (none: the claim's own wait is reported). So was
 * the pod of a claim marked restarted for this wait: the two times compared come from two
 * clocks (the condition's from whatever set it, the resizer on some node; the pod's from the
 * apiserver), and a condition's clock ahead by more than a restart takes made the pod made again
 * look older than the wait, so it was restarted again, and again until the clocks' gap was
 * covered. The highest ordinal goes first, as in a rollout.
 */
export function planResizeRestart(r: ResizeRestartInput): ResizeRestartPlan {
  const since = new Map(r.pending.filter((p) => !p.restarted).map((p) => [p.pod, p]));
  const due = r.pods
    .filter((p) => !p.terminating)
    .filter((p) => {
      const f = since.get(p.name);
      return f !== undefined && p.createdAtMs < f.sinceMs;
    })
    .sort((a, b) => b.ordinal - a.ordinal);
  const next = due[0];
  if (!next) return { kind: 'none' };
  const claim = since.get(next.name)?.claim ?? '';
  const wait = (why: string) => ({ kind: 'wait', pod: next.name, claim, why }) as const;
  if (!r.settled) return wait('the scale or rollout under way ends');
  const missing = r.expected.find((name) => !r.pods.some((p) => p.name === name));
  if (missing) return wait(`${missing} is made again`);
  const down = r.pods.find((p) => p.terminating || !p.ready);
  if (down) return wait(`${down.name} is ${down.terminating ? 'terminating' : 'not ready'}`);
  if (!r.health.healthy)
    return wait(`the cluster is healthy (${r.health.problems[0] ?? 'data is moving'})`);
  const sinceMs = since.get(next.name)?.sinceMs ?? Number.NaN;
  return { kind: 'restart', pod: next.name, claim, uid: next.uid ?? '', left: due.length, sinceMs };
}

/**
 * Restarts the next pod whose file system waits for it, when the gate allows (an eviction of
 * that very pod: a uid precondition). Returns what the Progressing condition says (reason
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
    // 429: the PodDisruptionBudget allows no disruption now; 404/409: the pod changed meanwhile.
    const code = statusCode(err);
    if (code === 429) return `${what} once the PodDisruptionBudget allows a disruption`;
    if (code === 404 || code === 409) return `${what} once the pod is seen again`;
    throw err;
  }
  // Marked once evicted (a refused eviction restarted nothing): should this fail, or the
  // operator stop first, the pod made again is still known by its creation time.
  await markRestarted(ctx, c, plan.claim, plan.sinceMs);
  const message =
    `restarting ${plan.pod} so that the file system of ${plan.claim} grows (the storage ` +
    'provider grows it only when the volume is mounted again); one pod at a time, each once ' +
    `every pod is Ready and the cluster healthy (${plan.left} waiting, this one included)`;
  ctx.logger.info(
    { cluster: c.name, namespace: c.namespace, pod: plan.pod, claim: plan.claim },
    'restarting a pod to grow its file system',
  );
  await ctx.events.record(c, 'Normal', 'FileSystemResizeRestart', message);
  return message;
}

/** Marks `claim` restarted for the wait that began at `sinceMs` (RESIZE_RESTARTED_ANNOTATION). */
async function markRestarted(
  ctx: ControllerContext,
  c: Cluster,
  claim: string,
  sinceMs: number,
): Promise<void> {
  const at = new Date(sinceMs).toISOString();
  try {
    await ctx.kube.core.patchNamespacedPersistentVolumeClaim(
      {
        name: claim,
        namespace: c.namespace,
        body: { metadata: { annotations: { [RESIZE_RESTARTED_ANNOTATION]: at } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  } catch (err) {
    if (statusCode(err) !== 404) throw err;
  }
}
