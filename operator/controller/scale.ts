// Scaling: grow the StatefulSet at once; shrink one pod at a time, each decommissioned first.

import { claimHoldsData, claimOf } from './claims.ts';
import type { ControllerContext } from './context.ts';
import { type Cluster, podName } from './names.ts';
import type { DecommissionView } from './node-admin.ts';
import { addressOf, type PodView, podNamed } from './observe.ts';

/** What the highest leaving pod reported (or why it could not be asked). */
export type LeavingState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'not-started' }
  /** Not running now (deleted, recreated, pending) while its claim holds data: wait for it. */
  | { readonly kind: 'stopped'; readonly now: string; readonly claim: string }
  | { readonly kind: 'unreachable'; readonly error: string }
  | { readonly kind: 'reported'; readonly view: DecommissionView };

export type ScaleStep =
  | { readonly kind: 'steady' }
  | { readonly kind: 'up'; readonly from: number; readonly to: number }
  /**
   * start: POST decommission; settle: start once no data moves; wait: in progress; shrink: done,
   * remove the pod; skip: never joined.
   */
  | {
      readonly kind: 'down';
      readonly pod: string;
      readonly action: 'start' | 'settle' | 'wait' | 'shrink' | 'skip';
      readonly view?: DecommissionView;
    }
  | {
      readonly kind: 'blocked';
      readonly pod: string;
      readonly reason: string;
      readonly message: string;
    };

export interface ScaleInput {
  /** KVCluster name (pods are `<cluster>-<ordinal>`). */
  readonly cluster: string;
  readonly desired: number;
  /** StatefulSet spec.replicas, or null when there is no StatefulSet yet. */
  readonly current: number | null;
  readonly replicationFactor: number;
  /** State of pod `current - 1`, asked only when scaling down. */
  readonly leaving: LeavingState | null;
  /**
   * Some node reports data moving (a join, or the previous pod's hand-off still settling): the
   * next decommission starts only once it has stopped, so one transfer runs at a time and the
   * leaving node hands off to a ring every member agrees on.
   */
  readonly rebalancing: boolean;
}

export interface ScalePlan {
  /** StatefulSet replicas to apply this round. */
  readonly replicas: number;
  readonly step: ScaleStep;
}

/** Decides the StatefulSet size for this round (pure). */
export function planScale(s: ScaleInput): ScalePlan {
  if (s.current === null || s.desired === s.current)
    return { replicas: s.desired, step: { kind: 'steady' } };
  if (s.desired > s.current) {
    return { replicas: s.desired, step: { kind: 'up', from: s.current, to: s.desired } };
  }
  const pod = podName(s.cluster, s.current - 1);
  const hold = (reason: string, message: string): ScalePlan => ({
    replicas: s.current as number,
    step: { kind: 'blocked', pod, reason, message },
  });
  // A spec the CRD admits has replicationFactor <= replicas, so this holds only if that rule is
  // bypassed: a guard, not a step.
  if (s.current - 1 < s.replicationFactor) {
    return hold(
      'BelowReplicationFactor',
      `scale-down to ${s.desired} waits at ${s.current} pods: fewer than replicationFactor ` +
        `${s.replicationFactor} members could not hold every replica; lower spec.replicationFactor first`,
    );
  }
  return planLeaving(pod, s.current, s.leaving, s.rebalancing, hold);
}

function planLeaving(
  pod: string,
  current: number,
  leaving: LeavingState | null,
  rebalancing: boolean,
  hold: (reason: string, message: string) => ScalePlan,
): ScalePlan {
  const down = (
    action: 'start' | 'settle' | 'wait' | 'shrink' | 'skip',
    view?: DecommissionView,
  ): ScalePlan => ({
    replicas: action === 'shrink' || action === 'skip' ? current - 1 : current,
    step: { kind: 'down', pod, action, ...(view ? { view } : {}) },
  });
  if (leaving === null || leaving.kind === 'absent' || leaving.kind === 'not-started') {
    // No node ever ran on its claim (or the claim is gone): it holds no data to hand off.
    return down('skip');
  }
  if (leaving.kind === 'stopped') {
    return hold(
      'LeavingPodNotRunning',
      `scale-down waits: ${pod} is ${leaving.now}, and its volume ${leaving.claim} holds the ` +
        'data its node stored, not handed off yet: it decommissions once its pod runs again ' +
        '(to drop that data instead, delete the claim, then the pod)',
    );
  }
  if (leaving.kind === 'unreachable') {
    return hold('NodeUnreachable', `scale-down waits: ${pod} does not answer: ${leaving.error}`);
  }
  const status = leaving.view.status;
  if (status === 'decommissioned') return down('shrink', leaving.view);
  if (status === 'decommissioning') return down('wait', leaving.view);
  return down(rebalancing ? 'settle' : 'start', leaving.view);
}

/** Asks the leaving pod for its decommission state (only when the StatefulSet must shrink). */
export async function observeLeaving(
  ctx: ControllerContext,
  c: Cluster,
  current: number | null,
  pods: readonly PodView[],
): Promise<LeavingState | null> {
  if (current === null || c.spec.replicas >= current) return null;
  const pod = pods.find((p) => p.ordinal === current - 1);
  if (!pod || pod.terminating || !pod.started) {
    // Whether it can hold data is its claim's, not its pod's: a pod deleted mid-decommission
    // (or evicted, or restarted by a rollout) comes back on the same claim. Taken for one that
    // never ran, the StatefulSet shrank at once and its claim, with what was not handed off,
    // was deleted.
    const name = podName(c.name, current - 1);
    if (await claimHoldsData(ctx, c, name)) {
      const now = !pod ? 'gone' : pod.terminating ? 'being deleted' : 'not running';
      return { kind: 'stopped', now, claim: claimOf(name) };
    }
    return !pod || pod.terminating ? { kind: 'absent' } : { kind: 'not-started' };
  }
  try {
    const view = await ctx.admin.decommissionStatus(addressOf(ctx, c, pod));
    return { kind: 'reported', view };
  } catch (err) {
    return { kind: 'unreachable', error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Carries out the decommission step: POSTs to a leaving pod that is still active. A refusal (the
 * node's 409) turns the step into `blocked` with the node's reason.
 */
export async function ensureDecommission(
  ctx: ControllerContext,
  c: Cluster,
  plan: ScalePlan,
  pods: readonly PodView[],
): Promise<ScalePlan> {
  const step = plan.step;
  if (step.kind !== 'down' || step.action !== 'start') return plan;
  const result = await ctx.admin.decommission(addressOf(ctx, c, podNamed(pods, step.pod)));
  if (!result.accepted) {
    const message = `scale-down waits: ${step.pod} refused to decommission: ${result.error}`;
    return {
      ...plan,
      step: { kind: 'blocked', pod: step.pod, reason: 'DecommissionRefused', message },
    };
  }
  ctx.logger.info(
    { cluster: c.name, namespace: c.namespace, pod: step.pod },
    'decommission started',
  );
  await ctx.events.record(
    c,
    'Normal',
    'Decommissioning',
    `decommissioning ${step.pod} before scale-down`,
  );
  return { ...plan, step: { ...step, action: 'wait' } };
}
