// What every reconcile step is given: API access, node admin access, settings, the clock.

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube, ObjectRef } from '../runtime/index.ts';
import type { EventRecorder, Warnings } from './events.ts';
import type { Memory } from './memory.ts';
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
  /** Warnings already reported (one Event per KVCluster generation, not per reconcile). */
  readonly warned: Warnings;
  /** Generated objects as last seen, to put one deleted or changed by hand back as it was. */
  readonly memory: Memory;
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

/**
 * The reconcile cannot go on until something in the spec or the namespace changes: shown in
 * status (Degraded and Progressing False, with `reason`), retried with backoff.
 */
export class HeldError extends Error {
  readonly reason: string;
  constructor(message: string, reason = 'ApplyFailed') {
    super(message);
    this.reason = reason;
  }
}

/** An object the operator would apply is controlled by another owner: it is not taken over. */
export class ControlledElsewhereError extends HeldError {}

/**
 * Server-side applies an object a KVCluster owns, unless an object of that name exists and is
 * controlled by another owner (another KVCluster, or anything else): the apply, forced, would
 * take it over, ownerReference and all. Two KVClusters named `x` and `x-headless` in one
 * namespace both wanted the Service `x-headless` (the headless one of `x`, the client one of
 * `x-headless`) and each reconcile took it from the other, selector included, so `x`'s nodes
 * found `x-headless`'s pods as peers. An existing object no one controls is adopted.
 * `existing`: the object as this reconcile already read it (null: absent), so it is not read
 * again; absent, it is read here.
 */
export async function applyOwned<T extends KubernetesObject>(
  ctx: ControllerContext,
  ownerUid: string,
  obj: T,
  existing?: KubernetesObject | null,
): Promise<T> {
  const { apiVersion = '', kind = '' } = obj;
  const { name = '', namespace = '' } = obj.metadata ?? {};
  const current =
    existing !== undefined
      ? existing
      : await ctx.kube.read<KubernetesObject>({ apiVersion, kind, namespace, name });
  const controller = current?.metadata?.ownerReferences?.find((o) => o.controller);
  if (controller && controller.uid !== ownerUid) {
    throw new ControlledElsewhereError(
      `${kind} ${namespace}/${name} is controlled by ${controller.kind} ${controller.name} ` +
        `(uid ${controller.uid}), not by this KVCluster: not taken over; rename this KVCluster ` +
        'or remove that object',
    );
  }
  return ctx.kube.apply(obj);
}
