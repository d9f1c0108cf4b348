// Kubernetes Events on a KVCluster: phase changes and decommission steps (`kubectl describe kvc`).

import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, KIND, type Phase } from '../api/v1alpha1/index.ts';
import { errorMessage, type Kube } from '../runtime/index.ts';

export interface EventTarget {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Creates an Event; failures are logged, never thrown (an Event is not worth a retry). */
  record(target: EventTarget, type: EventType, reason: string, message: string): Promise<void>;
  /** The Event of a phase change: Warning for Blocked, Degraded and Invalid. */
  phaseChanged(
    target: EventTarget,
    from: Phase | undefined,
    to: Phase,
    message: string,
  ): Promise<void>;
}

const WARNING_PHASES: ReadonlySet<Phase> = new Set(['Blocked', 'Degraded', 'Invalid']);
const COMPONENT = 'kvstore-operator';

/** The core/v1 Event object (pure, for tests). */
export function buildEvent(
  target: EventTarget,
  type: EventType,
  reason: string,
  message: string,
  now: Date,
  instance: string,
): CoreV1Event {
  const name = `${target.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: target.namespace },
    involvedObject: {
      apiVersion: API_VERSION,
      kind: KIND,
      name: target.name,
      namespace: target.namespace,
      uid: target.uid,
    },
    type,
    reason,
    message: message.slice(0, 1024),
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    reportingInstance: instance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

export function createEventRecorder(kube: Kube, instance: string, logger: Logger): EventRecorder {
  const record = async (target: EventTarget, type: EventType, reason: string, message: string) => {
    const body = buildEvent(target, type, reason, message, new Date(), instance);
    try {
      await kube.core.createNamespacedEvent({ namespace: target.namespace, body });
    } catch (err) {
      logger.warn({ cluster: target.name, reason, err: errorMessage(err) }, 'event not recorded');
    }
  };
  return {
    record,
    phaseChanged(target, from, to, message) {
      const type = WARNING_PHASES.has(to) ? 'Warning' : 'Normal';
      return record(target, type, to, `phase ${from ?? 'none'} -> ${to}: ${message}`);
    },
  };
}

/**
 * The warnings already given (one Event per KVCluster generation and reason, not one per
 * reconcile): the last generation warned of, by KVCluster uid and reason. A KVCluster's entries
 * go with it (retain). Keyed by generation too, a Set kept one entry per spec change of every
 * KVCluster that warns, for as long as the operator led.
 */
export class Warnings {
  readonly #given = new Map<string, { readonly uid: string; generation: number }>();

  /** True when `reason` was not given yet for this generation of KVCluster `uid` (and notes it). */
  first(uid: string, generation: number, reason: string): boolean {
    const key = `${uid}/${reason}`;
    const given = this.#given.get(key);
    if (given?.generation === generation) return false;
    this.#given.set(key, { uid, generation });
    return true;
  }

  /** Forgets the KVClusters whose uid is not in `uids` (deleted). */
  retain(uids: ReadonlySet<string>): void {
    for (const [key, g] of this.#given) if (!uids.has(g.uid)) this.#given.delete(key);
  }

  /** Entries kept. */
  get size(): number {
    return this.#given.size;
  }
}
