// Kubernetes Events on a KVCluster: phase changes and decommission steps (`kubectl describe kvc`).

import { randomBytes } from 'node:crypto';
import { type CoreV1Event, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, KIND, type Phase } from '../api/v1alpha1/index.ts';
import { errorMessage, type Kube, statusCode } from '../runtime/index.ts';

export interface EventTarget {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /**
   * Creates an Event, or counts one more of an Event recorded before with the same type, reason
   * and message on the same object (its `count` and `lastTimestamp`, as client-go's recorder
   * does); failures are logged, never thrown (an Event is not worth a retry).
   */
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

/** Distinct Events remembered for counting repeats (client-go's recorder keeps 4096 too). */
export const REMEMBERED_EVENTS = 4096;

/**
 * A repeated Event's count is written at most this often (the repeats between are counted and
 * written with the next): a cause reported at every reconcile of a cluster polled every 2 s, for
 * each of its pods, is not a write to the apiserver per pod every 2 s.
 */
export const REPEAT_WRITE_MS = 10_000;

/**
 * Events of one object, type and reason that differ only in their message are combined once
 * this many messages were seen within SIMILAR_WINDOW_MS of each other: the rest are counted on
 * one Event whose message is the latest, prefixed `(combined from similar events): `, as
 * client-go's EventAggregator does. The operator's own messages keep still while their cause
 * stays, but what it passes on does not: the scheduler's `0/5 nodes are available: ...` counts
 * nodes, a quota's refusal the pods in use, and each pod that cannot start is an Event of its
 * own, so 50 unschedulable pods were 50 Events, each written every 10 s.
 */
export const SIMILAR_EVENTS = 10;
export const SIMILAR_WINDOW_MS = 10 * 60_000;
const COMBINED = '(combined from similar events): ';

/** Messages seen of one object, type and reason, and when the last one was. */
interface Similar {
  readonly messages: Set<string>;
  lastMs: number;
}

/** Sets `key` as the most recently used entry of `map`, dropping the least recent past `max`. */
function touch<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}

/** An Event created by this recorder and what of it is written. */
interface Recorded {
  readonly type: EventType;
  readonly reason: string;
  /** Its message: the latest one, on an Event of combined messages. */
  message: string;
  /** Its name; another once it is made again (its Event gone). */
  name: string;
  /** Times recorded on it, written or not. */
  count: number;
  /** The count last written, and when. */
  written: number;
  writtenAtMs: number;
  /** When the first repeat not written yet was recorded. */
  unwrittenSince: Date | undefined;
  /** The write of repeats counted since the last one, when it waits for REPEAT_WRITE_MS. */
  flush?: NodeJS.Timeout | undefined;
  /** Writes of this Event, one at a time (a count, or the Event made again). */
  writing: Promise<void>;
}

export function createEventRecorder(
  kube: Kube,
  instance: string,
  logger: Logger,
  now: () => Date = () => new Date(),
): EventRecorder {
  // Least recently recorded first (a Map keeps insertion order; a repeat is moved to the end).
  const recorded = new Map<string, Recorded>();
  const remember = (key: string, r: Recorded) => touch(recorded, key, r, REMEMBERED_EVENTS);
  const similar = new Map<string, Similar>();
  /** The message and key to record `message` under: its own, or its kind's combined Event. */
  const aggregate = (kind: string, message: string, atMs: number) => {
    const before = similar.get(kind);
    const seen =
      before && atMs - before.lastMs <= SIMILAR_WINDOW_MS
        ? before
        : { messages: new Set<string>(), lastMs: atMs };
    seen.messages.add(message);
    seen.lastMs = atMs;
    touch(similar, kind, seen, REMEMBERED_EVENTS);
    if (seen.messages.size < SIMILAR_EVENTS) return { message, key: `${kind}:${message}` };
    return { message: `${COMBINED}${message}`.slice(0, 1024), key: `${kind}:combined` };
  };
  /**
   * Makes `r`'s Event again, gone (expired after --event-ttl, or deleted): a new Event holds the
   * repeats its last write did not, from the first of them (client-go's recorder makes the
   * Event again too). Before, a count written by the timer was dropped on a 404, and with it the
   * repeats it held: the cause seemed to have stopped until it was recorded once more.
   */
  const recreate = async (target: EventTarget, r: Recorded, total: number, at: Date) => {
    const count = total - r.written;
    const body = buildEvent(target, r.type, r.reason, r.message, r.unwrittenSince ?? at, instance);
    await kube.core.createNamespacedEvent({
      namespace: target.namespace,
      body: { ...body, count, lastTimestamp: at },
    });
    // Repeats recorded while it was made stay counted, on the new Event.
    Object.assign(r, {
      name: body.metadata?.name ?? '',
      count: r.count - r.written,
      written: count,
    });
  };
  /** Writes `r`'s count not written yet (made again when its Event is gone). */
  const writeNow = async (target: EventTarget, r: Recorded, at: Date): Promise<void> => {
    const count = r.count;
    if (count === r.written) return;
    try {
      await kube.core.patchNamespacedEvent(
        {
          name: r.name,
          namespace: target.namespace,
          body: { count, lastTimestamp: at.toISOString(), message: r.message },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      r.written = count;
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      await recreate(target, r, count, at);
    }
    r.writtenAtMs = at.getTime();
    r.unwrittenSince = r.count > r.written ? at : undefined;
  };
  const write = (target: EventTarget, r: Recorded, at: () => Date): Promise<void> => {
    const next = r.writing.then(() => writeNow(target, r, at()));
    r.writing = next.catch(() => {});
    return next;
  };
  /**
   * Counts one more of `r`, written at once when the last write is REPEAT_WRITE_MS old, else by
   * a timer then (so a repeat is never lost, only late).
   */
  const repeat = async (target: EventTarget, r: Recorded, at: Date): Promise<void> => {
    r.count += 1;
    r.unwrittenSince ??= at;
    const wait = r.writtenAtMs + REPEAT_WRITE_MS - at.getTime();
    if (wait <= 0) {
      clearTimeout(r.flush);
      r.flush = undefined;
      return write(target, r, () => at);
    }
    r.flush ??= setTimeout(() => {
      r.flush = undefined;
      write(target, r, now).catch((err: unknown) =>
        logger.warn({ cluster: target.name, err: errorMessage(err) }, 'event count not recorded'),
      );
    }, wait).unref();
  };
  const record = async (target: EventTarget, type: EventType, reason: string, said: string) => {
    const at = now();
    const kind = JSON.stringify([target.namespace, target.uid, type, reason]);
    const { message, key } = aggregate(kind, said.slice(0, 1024), at.getTime());
    const body = buildEvent(target, type, reason, message, at, instance);
    try {
      const before = recorded.get(key);
      if (before) {
        remember(key, before);
        before.message = body.message ?? '';
        await repeat(target, before, at);
        return;
      }
      await kube.core.createNamespacedEvent({ namespace: target.namespace, body });
      remember(key, {
        type,
        reason,
        message: body.message ?? '',
        name: body.metadata?.name ?? '',
        count: 1,
        written: 1,
        writtenAtMs: at.getTime(),
        unwrittenSince: undefined,
        writing: Promise.resolve(),
      });
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
