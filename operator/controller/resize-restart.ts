// Restarts for grown volumes: a storage provider that grows a file system only when the volume is
// mounted again marks the claim FileSystemResizePending; the kubelet finishes the growth when the
// pod restarts. The operator restarts those pods itself, one at a time, each like a rollout
// step: only between scales and rollouts, only while every pod is Ready and the cluster healthy
// (the rollout's gate), and by eviction, so the PodDisruptionBudget also holds it back.

import { statusCode } from '../runtime/index.ts';
import type { ControllerContext } from './context.ts';
import type { Cluster } from './names.ts';
import type { PodView } from './observe.ts';
import type { Health } from './rollout.ts';
import type { FileSystemPending } from './volumes.ts';

export type ResizeRestartPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'wait'; readonly pod: string; readonly claim: string; readonly why: string }
  | {
      readonly kind: 'restart';
      readonly pod: string;
      readonly claim: string;
      readonly uid: string;
      readonly left: number;
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
 * volume, and a second restart would not help (none: the claim's own wait is reported). The
 * highest ordinal goes first, as in a rollout.
 */
export function planResizeRestart(r: ResizeRestartInput): ResizeRestartPlan {
  const since = new Map(r.pending.map((p) => [p.pod, p]));
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
  return { kind: 'restart', pod: next.name, claim, uid: next.uid ?? '', left: due.length };
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
