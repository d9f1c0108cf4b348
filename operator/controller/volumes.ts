// Growing the nodes' volumes: spec.storage.size may grow (never shrink). A
// StatefulSet's volumeClaimTemplates cannot change, so, as other operators of StatefulSets do:
// each claim is asked for the new size (its StorageClass must allow expansion, and the storage
// provider grows the volume), then the StatefulSet is deleted with its pods orphaned and made
// again with the new claim template. It adopts the pods, whose template is unchanged, so none
// restarts; a pod added later gets a claim of the new size.

import type {
  V1PersistentVolumeClaim,
  V1PersistentVolumeClaimCondition,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { errorMessage, statusCode } from '../runtime/index.ts';
import { type ControllerContext, HeldError } from './context.ts';
import { CLUSTER_LABEL, type Cluster, namesOf } from './names.ts';

const BINARY: Readonly<Record<string, number>> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL: Readonly<Record<string, number>> = { k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY = /^\+?([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE]\+?([0-9]+))?$/;

/** A quantity as an exact fraction (bytes = num / den), or null when it is not one. */
function fraction(q: string): { num: bigint; den: bigint } | null {
  const m = QUANTITY.exec(q.trim());
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) return null;
  const [, whole = '', frac = '', suffix = '', exp] = m;
  let num = BigInt(`${whole}${frac}` || '0');
  const den = 10n ** BigInt(frac.length);
  if (suffix in BINARY) num *= 1024n ** BigInt(BINARY[suffix] ?? 0);
  else if (suffix in DECIMAL) num *= 10n ** BigInt(DECIMAL[suffix] ?? 0);
  else if (exp !== undefined) num *= 10n ** BigInt(exp);
  return { num, den };
}

/**
 * Compares two Kubernetes quantities of bytes (`1Gi`, `1500M`, `1.5e9`, `1073741824`): -1, 0 or 1.
 * Throws on a string that is not a quantity.
 */
export function compareQuantities(a: string, b: string): -1 | 0 | 1 {
  const x = fraction(a);
  const y = fraction(b);
  if (x === null || y === null) throw new Error(`not a quantity: ${x === null ? a : b}`);
  const l = x.num * y.den;
  const r = y.num * x.den;
  return l < r ? -1 : l > r ? 1 : 0;
}

/** The claim size the StatefulSet's template asks for, or null. */
export function templateSize(sts: V1StatefulSet): string | null {
  const t = sts.spec?.volumeClaimTemplates?.find((v) => v.metadata?.name === 'data');
  const s = t?.spec?.resources?.requests?.storage;
  return s === undefined ? null : String(s);
}

export interface VolumesState {
  /** The StatefulSet is being made again (deleted, pods orphaned): do not apply it this round. */
  readonly recreating: boolean;
  /** Claims not grown to the spec's size yet, each with what it waits for. */
  readonly pending: readonly string[];
  /** Pods whose claim's file system grows only when the pod restarts (FileSystemResizePending). */
  readonly fileSystemPending: readonly FileSystemPending[];
}

export interface FileSystemPending {
  readonly pod: string;
  readonly claim: string;
  /** When the claim's FileSystemResizePending condition turned True (ms; NaN when unknown). */
  readonly sinceMs: number;
  /** The claim's RESIZE_RESTARTED_ANNOTATION, when it has one that reads. */
  readonly mark?: ResizeMark;
}

/**
 * On a claim: the wait (the lastTransitionTime of its FileSystemResizePending condition) its
 * pod is restarted for, and which pod (uid), written before that pod's eviction
 * (resize-restart.ts). As JSON: `{"since":"2026-12-06T12:01:00.000Z","pod":"<uid>"}`; a mark
 * of operators before 2026-12-07 is the time alone, written after the eviction.
 */
export const RESIZE_RESTARTED_ANNOTATION = 'kvstore.dev/restarted-for-resize';

export interface ResizeMark {
  /** The wait it is for (the condition's lastTransitionTime, ms). */
  readonly sinceMs: number;
  /** The uid of the pod restarted for it; absent in a mark of the time alone (evicted already). */
  readonly pod?: string;
}

/** The annotation's value for a restart of pod `uid` for the wait that began at `sinceMs`. */
export function resizeMarkText(sinceMs: number, uid: string): string {
  return JSON.stringify({ since: new Date(sinceMs).toISOString(), pod: uid });
}

/** The mark an annotation value says, or undefined when it reads as none. */
export function parseResizeMark(text: string | undefined): ResizeMark | undefined {
  if (text === undefined) return undefined;
  let since: unknown = text;
  let pod: unknown;
  if (text.startsWith('{')) {
    try {
      ({ since, pod } = JSON.parse(text) as { since?: unknown; pod?: unknown });
    } catch {
      return undefined;
    }
  }
  const sinceMs = typeof since === 'string' ? new Date(since).getTime() : Number.NaN;
  if (Number.isNaN(sinceMs)) return undefined;
  return typeof pod === 'string' && pod !== '' ? { sinceMs, pod } : { sinceMs };
}

const NOTHING: VolumesState = { recreating: false, pending: [], fileSystemPending: [] };

/** The claims of the cluster's pods (`data-<statefulset>-<ordinal>`). */
export async function listClaims(
  ctx: ControllerContext,
  c: Cluster,
): Promise<V1PersistentVolumeClaim[]> {
  const list = await ctx.kube.core.listNamespacedPersistentVolumeClaim({
    namespace: c.namespace,
    labelSelector: `${CLUSTER_LABEL}=${c.name},app.kubernetes.io/component=data`,
  });
  const name = new RegExp(`^data-${namesOf(c.name).statefulSet}-[0-9]+$`);
  return list.items.filter((pvc) => name.test(pvc.metadata?.name ?? ''));
}

const requested = (pvc: V1PersistentVolumeClaim): string =>
  String(pvc.spec?.resources?.requests?.storage ?? '0');

/** Why a claim asked for `size` does not have it yet, or null when it has. */
export function claimWaits(pvc: V1PersistentVolumeClaim, size: string): string | null {
  const capacity = pvc.status?.capacity?.storage;
  if (capacity !== undefined && compareQuantities(String(capacity), size) >= 0) return null;
  const name = pvc.metadata?.name ?? '';
  const conds = pvc.status?.conditions ?? [];
  const is = (type: string) =>
    conds.some((k: V1PersistentVolumeClaimCondition) => k.type === type && k.status === 'True');
  if (is('FileSystemResizePending')) {
    return `${name}: the volume grew; its file system grows when its pod restarts`;
  }
  const had = capacity === undefined ? 'unknown' : String(capacity);
  return `${name}: ${had} of ${size}, the storage provider has not grown it yet${is('Resizing') ? ' (resizing)' : ''}`;
}

/**
 * Asks every claim smaller than spec.storage.size for it, then, if the StatefulSet's claim
 * template is smaller and `settled` (no scale or rollout under way: a new StatefulSet takes its
 * update revision as its current one), deletes the StatefulSet with its pods orphaned (the
 * caller makes it again, this round or the next). Throws HeldError VolumeExpansionFailed when the
 * apiserver refuses a claim's new size (its StorageClass does not allow expansion), and
 * StorageShrink when the spec asks for less than the StatefulSet's claim template (a volume
 * cannot shrink; the spec may go back to the template's size after a refused growth).
 */
export async function ensureVolumes(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
  settled: boolean,
): Promise<VolumesState> {
  if (sts === null) return NOTHING;
  if (sts.metadata?.deletionTimestamp) return { ...NOTHING, recreating: true };
  const size = c.spec.storage.size;
  const current = templateSize(sts);
  if (current !== null && compareQuantities(size, current) < 0) {
    throw new HeldError(
      `spec.storage.size ${size} is smaller than the volumes' ${current}: a volume cannot shrink; ` +
        `put spec.storage.size back to ${current} or more`,
      'StorageShrink',
    );
  }
  const claims = await listClaims(ctx, c);
  const small = claims.filter((pvc) => compareQuantities(requested(pvc), size) < 0);
  // All checked first (a dry run), so a refused claim leaves every claim as it was.
  for (const pvc of small) await growClaim(ctx, c, pvc, size, true);
  for (const pvc of small) await growClaim(ctx, c, pvc, size, false);
  if (small.length > 0) {
    const names = small.map((p) => p.metadata?.name).join(', ');
    ctx.logger.info({ cluster: c.name, namespace: c.namespace, size, claims: names }, 'growing');
    await ctx.events.record(c, 'Normal', 'VolumesGrowing', `asked ${names} for ${size}`);
  }
  const pending = claims.map((pvc) => claimWaits(pvc, size)).filter((w): w is string => w !== null);
  const fileSystemPending = claims
    .map((pvc) => fileSystemPendingOf(pvc))
    .filter((f): f is FileSystemPending => f !== null);
  if (current === null || compareQuantities(current, size) === 0)
    return { recreating: false, pending, fileSystemPending };
  if (!settled) {
    const wait = `${namesOf(c.name).statefulSet}: its claim template (${current}) changes once the scale or rollout under way ends`;
    return { recreating: false, pending: [...pending, wait], fileSystemPending };
  }
  // The template still asks for the old size: make the StatefulSet again with the new one.
  await ctx.kube.delete(
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      namespace: c.namespace,
      name: sts.metadata?.name ?? '',
    },
    { orphan: true, ...(sts.metadata?.uid ? { uid: sts.metadata.uid } : {}) },
  );
  ctx.logger.info({ cluster: c.name, namespace: c.namespace, size }, 'StatefulSet made again');
  await ctx.events.record(
    c,
    'Normal',
    'StatefulSetRecreated',
    `claim template ${current} -> ${size}: StatefulSet deleted with its pods kept, made again with the new size (no pod restarts)`,
  );
  return { recreating: true, pending, fileSystemPending };
}

/** The claim's pod when its FileSystemResizePending condition is True, else null. */
function fileSystemPendingOf(pvc: V1PersistentVolumeClaim): FileSystemPending | null {
  const k = pvc.status?.conditions?.find(
    (x: V1PersistentVolumeClaimCondition) =>
      x.type === 'FileSystemResizePending' && x.status === 'True',
  );
  if (!k) return null;
  const claim = pvc.metadata?.name ?? '';
  const since = k.lastTransitionTime ? new Date(k.lastTransitionTime).getTime() : Number.NaN;
  const mark = parseResizeMark(pvc.metadata?.annotations?.[RESIZE_RESTARTED_ANNOTATION]);
  return { pod: claim.slice('data-'.length), claim, sinceMs: since, ...(mark ? { mark } : {}) };
}

async function growClaim(
  ctx: ControllerContext,
  c: Cluster,
  pvc: V1PersistentVolumeClaim,
  size: string,
  dryRun: boolean,
): Promise<void> {
  const name = pvc.metadata?.name ?? '';
  try {
    const body = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: c.namespace },
      spec: { resources: { requests: { storage: size } } },
    };
    await ctx.kube.apply(body, { dryRun });
  } catch (err) {
    const code = statusCode(err);
    if (code === undefined || code < 400 || code >= 500 || code === 409 || code === 429) throw err;
    const cls = pvc.spec?.storageClassName ?? '(the default)';
    throw new HeldError(
      `claim ${name} cannot grow to ${size}: ${errorMessage(err)}. Its StorageClass ${cls} must ` +
        `allow volume expansion (allowVolumeExpansion: true, and a provisioner that supports it); ` +
        `or put spec.storage.size back to ${requested(pvc)}${dryRun ? ' (no claim was changed)' : ''}`,
      'VolumeExpansionFailed',
    );
  }
}
