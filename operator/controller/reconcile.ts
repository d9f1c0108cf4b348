// reconcile(): validate the KVCluster, then a short list of ensureX() steps, then its status.

import { API_VERSION, KIND, type KVClusterStatus, parseKVCluster } from '../api/v1alpha1/index.ts';
import { errorMessage, type HandlerResult, statusCode } from '../runtime/index.ts';
import { ensureBackup, ensureRestore } from './backup.ts';
import { recordBlockers } from './blockers.ts';
import { markJoinedClaims } from './claims.ts';
import { ensureClusterSecret } from './cluster-secret.ts';
import { ensureConfigMap, ensureRevisionConfigMaps } from './configmap.ts';
import { type ControllerContext, HeldError } from './context.ts';
import type { Cluster, KVClusterObject } from './names.ts';
import { podName, SECRET_HASH_ANNOTATION, selectorString } from './names.ts';
import { type Observed, observe, unmadeCauses } from './observe.ts';
import { ensurePdb } from './pdb.ts';
import { type ClusterPlan, currentReplicas, planCluster } from './plan.ts';
import { ensureRecommission, planRecommission } from './recommission.ts';
import { ensureResizeRestart, planResizeRestart } from './resize-restart.ts';
import { clusterHealth, readyRefusers, rolloutHeldMessage } from './rollout.ts';
import { ensureDecommission, observeLeaving } from './scale.ts';
import { ensureServiceMonitor } from './servicemonitor.ts';
import { ensureServices } from './services.ts';
import { checkPeerTlsChange, ensureStatefulSet, readStatefulSet } from './statefulset.ts';
import { buildStatus, ensureStatus, heldStatus, staleReads } from './status.ts';
import { ensureVolumes } from './volumes.ts';

type Ref = { readonly name: string; readonly namespace: string; readonly uid: string };

/** Reconciles one KVCluster; throws to be retried with backoff. */
export async function reconcile(
  ctx: ControllerContext,
  obj: KVClusterObject,
): Promise<HandlerResult> {
  const m = obj.metadata;
  if (!m?.name || !m.namespace || !m.uid) return {};
  // Owned objects carry a controller ownerReference: the garbage collector deletes them.
  if (m.deletionTimestamp) return {};
  const ref: Ref = { name: m.name, namespace: m.namespace, uid: m.uid };
  const generation = m.generation ?? 0;
  try {
    const parsed = parseKVCluster(m.name, obj.spec);
    if (!parsed.ok) return await hold(ctx, ref, obj.status, 'Invalid', parsed.message, generation);
    if (parsed.spec.paused)
      return await hold(ctx, ref, obj.status, 'Paused', 'spec.paused is true', generation);
    return await reconcileCluster(ctx, { ...ref, generation, spec: parsed.spec }, obj.status);
  } catch (err) {
    if (err instanceof LiveError) throw err.cause;
    if (!(err instanceof DeletedError) && !(await deletedMeanwhile(ctx, ref))) throw err;
    // Its status (NotFound), or an owned object in its namespace as that goes, failed because
    // the KVCluster went: the normal end of its last reconcile, neither logged as a failure nor
    // retried (each retry failed the same way until the informer saw the deletion).
    ctx.logger.info(
      { cluster: ref.name, namespace: ref.namespace, err: errorMessage(err) },
      'KVCluster deleted during its reconcile',
    );
    return {};
  }
}

/** A reconcile failed because its KVCluster was deleted meanwhile (nothing to report). */
class DeletedError extends Error {}

/**
 * A reconcile failed while its KVCluster was there (read once, when the failure was met, to
 * decide whether to report it): `cause` is rethrown as it was, without reading it again (both
 * checks read it before, so every failed reconcile read it twice). A failure of the report
 * itself goes through the second check: the KVCluster may have gone between the two.
 */
class LiveError extends Error {
  constructor(cause: unknown) {
    super(errorMessage(cause), { cause });
  }
}

/**
 * Whether the KVCluster is gone (deleted, or made again under its name: another uid) or being
 * deleted, read fresh from the apiserver (the informer may not have seen it yet). A read that
 * fails says nothing: false.
 */
async function deletedMeanwhile(ctx: ControllerContext, ref: Ref): Promise<boolean> {
  try {
    const live = await ctx.kube.read<KVClusterObject>({
      apiVersion: API_VERSION,
      kind: KIND,
      namespace: ref.namespace,
      name: ref.name,
    });
    return !live || live.metadata?.uid !== ref.uid || Boolean(live.metadata?.deletionTimestamp);
  } catch {
    return false;
  }
}

async function hold(
  ctx: ControllerContext,
  ref: Ref,
  previous: KVClusterStatus | undefined,
  kind: 'Invalid' | 'Paused',
  message: string,
  generation: number,
): Promise<HandlerResult> {
  await ensureStatus(
    ctx,
    ref,
    previous,
    heldStatus(kind, message, previous, generation, ctx.now()),
  );
  return { requeueAfterMs: ctx.settings.resyncMs };
}

/** The owned objects, in order; the StatefulSet gets the planned size and partition. */
async function ensureOwned(
  ctx: ControllerContext,
  c: Cluster,
  secretSha256: string | undefined,
): Promise<{ plan: ClusterPlan; observed: Observed }> {
  const configHash = await ensureConfigMap(ctx, c);
  await ensureServices(ctx, c);
  const observed = await observe(ctx, c);
  await markJoinedClaims(ctx, c, observed);
  const current = currentReplicas(observed);
  const leaving = await observeLeaving(ctx, c, current, observed.pods);
  const plan = planCluster(c, observed, leaving, configHash);
  // Made again only between scales and rollouts: a new StatefulSet takes its update revision as
  // its current one, so pods a rollout holds back would restart on the new template.
  const settled = plan.scale.step.kind === 'steady' && !plan.rollout.rolling;
  const volumes = await ensureVolumes(ctx, c, observed.sts, settled);
  // While it is made again (deleted with its pods orphaned), nothing is applied: its deletion
  // (watched) brings the next round, which creates it.
  let configMapsMissing: string[] = [];
  if (!volumes.recreating) {
    // The recorded hash of the pods' cluster secret is kept when this round did not read it.
    const sha = secretSha256 ?? observed.sts?.metadata?.annotations?.[SECRET_HASH_ANNOTATION];
    const stsPlan = { ...plan.statefulSet, ...(sha ? { clusterSecretSha256: sha } : {}) };
    await ensureStatefulSet(ctx, c, stsPlan, observed.sts);
    configMapsMissing = await ensureRevisionConfigMaps(
      ctx,
      c,
      configHash,
      observed.sts,
      observed.pods,
    );
  }
  const resizeInput = {
    pending: volumes.fileSystemPending,
    pods: observed.pods,
    expected: Array.from({ length: observed.sts?.spec?.replicas ?? 0 }, (_, i) =>
      podName(c.name, i),
    ),
    nodes: observed.nodes,
    settled: settled && !volumes.recreating && observed.sts !== null,
  };
  // The budget counts Ready pods that refuse work as down, except the one restarted next for
  // its file system (evicted through this budget: it stores no writes, safeToTakeDown).
  const restarting = planResizeRestart(resizeInput);
  const next = restarting.kind === 'restart' ? restarting.pod : null;
  await ensurePdb(
    ctx,
    c,
    readyRefusers(observed.pods, observed.nodes).filter((p) => p !== next),
  );
  const held = rolloutHeldMessage(plan.rollout, plan.health);
  if (held) await ctx.events.record(c, 'Warning', 'RolloutHeld', held);
  const fileSystemResize = await ensureResizeRestart(ctx, c, resizeInput);
  if (await ensureServiceMonitor(ctx, c)) await warnOnce(ctx, c, 'ServiceMonitorUnavailable');
  const scale = await ensureDecommission(ctx, c, plan.scale, observed.pods);
  await ensureRecommission(
    ctx,
    c,
    planRecommission(c.spec.replicas, current, observed.pods, observed.nodes),
    observed.pods,
  );
  const resize = fileSystemResize === null ? {} : { fileSystemResize };
  const missing = configMapsMissing.length ? { configMapsMissing } : {};
  return { plan: { ...plan, scale, volumes: volumes.pending, ...resize, ...missing }, observed };
}

const WARNINGS: Readonly<Record<string, string>> = {
  NoClusterSecret:
    'this cluster was made without a cluster secret, so any host that reaches the peer port is trusted; one cannot be added in a rolling update (pods with it and pods without could not reach each other): restore a backup of it into a new KVCluster, which gets one (docs/security.md)',
  ServiceMonitorUnavailable:
    'metrics.serviceMonitor.enabled but monitoring.coreos.com/v1 ServiceMonitor is not served: install the prometheus-operator CRDs',
};

/** A Warning Event and log line, once per KVCluster generation. */
async function warnOnce(
  ctx: ControllerContext,
  c: Cluster,
  reason: string,
  message = WARNINGS[reason] ?? reason,
): Promise<void> {
  if (!ctx.warned.first(c.uid, c.generation, reason)) return;
  ctx.logger.warn({ cluster: c.name, namespace: c.namespace, reason }, message);
  await ctx.events.record(c, 'Warning', reason, message);
}

/**
 * A rejected apply (bad affinity, quota...), or an object of the same name another owner
 * controls, is the spec's problem: shown in status, retried.
 */
function isSpecError(err: unknown): boolean {
  if (err instanceof HeldError) return true;
  const code = statusCode(err);
  return code !== undefined && code >= 400 && code < 500 && code !== 409 && code !== 429;
}

async function reconcileCluster(
  ctx: ControllerContext,
  spec: Cluster,
  previous: KVClusterStatus | undefined,
): Promise<HandlerResult> {
  let status: KVClusterStatus;
  let observed: Observed;
  let c = spec;
  // Every owned object, the backup CronJob and restore Job too: one the apiserver rejects (a
  // schedule it cannot parse) is shown in status, not only logged while the status stays stale.
  try {
    const sts = await readStatefulSet(ctx, spec);
    checkPeerTlsChange(spec, sts);
    const secret = await ensureClusterSecret(ctx, spec, sts);
    c = secret.cluster;
    if (secret.legacy) await warnOnce(ctx, c, 'NoClusterSecret');
    const stale = staleReads(c.spec);
    if (stale) await warnOnce(ctx, c, 'StaleReads', stale.message);
    const done = await ensureOwned(ctx, c, secret.sha256);
    observed = done.observed;
    const built = statusOf(ctx, c, previous, done.observed, done.plan);
    const available = built.phase === 'Available' && built.readyReplicas === c.spec.replicas;
    const backup = await ensureBackup(ctx, c);
    const restore = await ensureRestore(ctx, c, available, previous);
    status = { ...built, ...(backup ? { backup } : {}), ...(restore ? { restore } : {}) };
  } catch (err) {
    // Deleted meanwhile: no Degraded status (and Warning Event) for what its deletion caused.
    if (await deletedMeanwhile(ctx, c)) throw new DeletedError(errorMessage(err));
    if (isSpecError(err)) {
      const reason = err instanceof HeldError ? err.reason : undefined;
      await reportApplyError(ctx, c, previous, errorMessage(err), reason);
    }
    throw new LiveError(err);
  }
  await ensureStatus(ctx, c, previous, status);
  await recordBlockers(ctx, c, [...observed.pods, ...unmadeCauses(observed.unmade)]);
  return { requeueAfterMs: requeueDelay(ctx, status) };
}

function statusOf(
  ctx: ControllerContext,
  c: Cluster,
  previous: KVClusterStatus | undefined,
  observed: Observed,
  plan: Omit<ClusterPlan, 'statefulSet'>,
  applyError?: string,
  applyReason?: string,
): KVClusterStatus {
  return buildStatus({
    spec: c.spec,
    generation: c.generation,
    selector: selectorString(c.name),
    previous,
    now: ctx.now(),
    observed,
    ...plan,
    ...(applyError ? { applyError } : {}),
    ...(applyReason ? { applyReason } : {}),
  });
}

/** Status after an owned object was rejected: Degraded with the apiserver's message. */
async function reportApplyError(
  ctx: ControllerContext,
  c: Cluster,
  previous: KVClusterStatus | undefined,
  message: string,
  reason?: string,
): Promise<void> {
  const observed = await observe(ctx, c);
  const replicas = observed.sts?.spec?.replicas ?? 0;
  const plan = {
    scale: { replicas, step: { kind: 'steady' } } as const,
    rollout: { partition: 0, rolling: false },
    health: clusterHealth(observed.pods, observed.nodes),
  };
  await ensureStatus(ctx, c, previous, statusOf(ctx, c, previous, observed, plan, message, reason));
}

/** Poll soon while something moves; a settled cluster is looked at again after the resync period. */
function requeueDelay(ctx: ControllerContext, s: KVClusterStatus): number {
  const { pollMs, resyncMs } = ctx.settings;
  if (s.phase === 'Available') return resyncMs;
  if (s.phase === 'Degraded') return Math.min(resyncMs, pollMs * 5);
  return pollMs;
}
