// What every reconcile step is given: API access, node admin access, settings, the clock.

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube, ObjectRef } from '../runtime/index.ts';
import type { EventRecorder } from './events.ts';
import type { NodeAdmin } from './node-admin.ts';

export interface ControllerSettings {
  /** Cluster DNS domain of the node discovery name (`<headless>.<ns>.svc.<domain>`). */
  readonly clusterDomain: string;
  /** Requeue delay while something is in progress (decommission, rollout, rebalance). */
  readonly pollMs: number;
  /** Requeue delay of a settled cluster (repairs drift of owned objects). */
  readonly resyncMs: number;
}

export interface ControllerContext {
  readonly kube: Kube;
  readonly admin: NodeAdmin;
  readonly events: EventRecorder;
  readonly logger: Logger;
  readonly settings: ControllerSettings;
  readonly now: () => Date;
  /** Keys of warnings already reported (one Event per KVCluster generation, not per reconcile). */
  readonly warned: Set<string>;
}

/** Deletes an object only if this KVCluster controls it (never a same-named object of someone else). */
export async function deleteIfOwned(
  ctx: ControllerContext,
  ownerUid: string,
  ref: ObjectRef,
): Promise<boolean> {
  const obj = await ctx.kube.read<KubernetesObject>(ref);
  const owned = obj?.metadata?.ownerReferences?.some((o) => o.uid === ownerUid && o.controller);
  if (!owned) return false;
  return ctx.kube.delete(ref);
}
