// The cluster secret of a KVCluster that names none: an owned Secret of random bytes, made once.

import { createHash, randomBytes } from 'node:crypto';
import type { KubernetesObject, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { envName } from '../../src/config/index.ts';
import { KIND } from '../api/v1alpha1/index.ts';
import { statusCode } from '../runtime/index.ts';
import { ControlledElsewhereError, type ControllerContext, HeldError } from './context.ts';
import { type Cluster, namesOf, ownedMeta, SECRET_HASH_ANNOTATION } from './names.ts';

/** Key of the secret in the generated Secret. */
export const GENERATED_SECRET_KEY = 'secret';

export const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

type SecretRef = { readonly name: string; readonly key: string };

/** Where the StatefulSet's pods take KV_CLUSTER_SECRET from: a Secret's key, or null (none). */
function templateSecret(sts: V1StatefulSet): SecretRef | null {
  const containers = sts.spec?.template?.spec?.containers ?? [];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (e.name === envName('clusterSecret') && ref?.name) return { name: ref.name, key: ref.key };
    }
  }
  return null;
}

/** Whether the StatefulSet's pods take KV_CLUSTER_SECRET from the Secret named `name`. */
function usesSecret(sts: V1StatefulSet, name: string): boolean {
  return templateSecret(sts)?.name === name;
}

/** The generated Secret: `value`, or 32 random bytes (the HMAC key of every peer connection and admin call). */
export function buildClusterSecret(c: Cluster, value?: string): V1Secret {
  const v = value ?? randomBytes(32).toString('base64url');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: ownedMeta(c, namesOf(c.name).clusterSecret, 'cluster-secret'),
    type: 'Opaque',
    data: { [GENERATED_SECRET_KEY]: Buffer.from(v).toString('base64') },
  };
}

/** The cluster secret resolved for this round. */
export interface ResolvedSecret {
  readonly cluster: Cluster;
  /** A StatefulSet made before the default cluster secret, running without one. */
  readonly legacy: boolean;
  /** SHA-256 of the value the pods run with (the StatefulSet's annotation), when known. */
  readonly sha256?: string;
}

/**
 * The KVCluster with the cluster secret its nodes use. One named in spec.auth.clusterSecret is
 * used as it is. Otherwise the operator's own Secret `<name>-cluster-secret` (created with a
 * random value if missing, garbage-collected with the KVCluster), so peers authenticate by
 * default. A StatefulSet made before this default, without a cluster secret, keeps running
 * without one (returned as `legacy`): giving its pods one in a rolling update would split the
 * cluster between pods that require the proof and pods that cannot send it; adding one later is
 * held the same way (checkSecretChange).
 *
 * The value of a running cluster never changes: a pod reads it when it starts, so a Secret
 * deleted or changed by hand leaves the pods on the old value, and each pod that restarted later
 * (a crash, an eviction, a rollout) came up with the new one, cut off from its peers (and the
 * operator's admin calls, signed with the new value, were refused by every node). A new random
 * value made then, as once, did exactly that. Now the generated Secret is watched, and one
 * deleted or changed by hand is put back at once with the value the pods run with, remembered
 * from earlier rounds (Event ClusterSecretRestored). A value the operator does not know (deleted
 * or changed while no operator ran, and not the one whose hash the StatefulSet records) holds
 * the reconcile, Degraded (`ClusterSecretMissing`, `ClusterSecretChanged`), saying how to put
 * the pods' value back; meanwhile a restarting pod does not start (its Secret is missing) rather
 * than start with another secret. A Secret the spec names is the user's: changed, it is
 * reported the same way, never rewritten.
 */
export async function ensureClusterSecret(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<ResolvedSecret> {
  const resolved = await resolveClusterSecret(ctx, c, sts);
  await checkSecretChange(ctx, resolved.cluster, sts);
  return resolved;
}

async function resolveClusterSecret(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<ResolvedSecret> {
  const recorded = sts?.metadata?.annotations?.[SECRET_HASH_ANNOTATION];
  const named = c.spec.auth?.clusterSecret;
  if (named)
    return { cluster: c, legacy: false, ...(await checkNamedValue(ctx, c, sts, recorded)) };
  const name = namesOf(c.name).clusterSecret;
  if (sts !== null && !usesSecret(sts, name)) return { cluster: c, legacy: true };
  const ref = { apiVersion: 'v1', kind: 'Secret', namespace: c.namespace, name };
  const existing = await ctx.kube.read<V1Secret>(ref);
  // An earlier KVCluster's of the same name, not yet garbage-collected: its pods' secret, not
  // this cluster's (it goes with them). One made by hand or by another controller (an
  // external-secrets operator, say) is used as it is.
  const other = controllerOf(existing);
  if (other?.kind === KIND && other.uid !== c.uid) {
    throw new ControlledElsewhereError(
      `Secret ${c.namespace}/${name} is controlled by ${other.kind} ${other.name} (uid ` +
        `${other.uid}), not by this KVCluster: not taken over; it goes with its owner`,
    );
  }
  const current = keyValue(existing, GENERATED_SECRET_KEY);
  // The pods' value as this process knows it: remembered, and the one the StatefulSet records.
  const remembered = ctx.memory.clusterSecret(c.uid);
  const known = remembered !== undefined && (!recorded || sha256(remembered) === recorded);
  const running = (v: string | undefined) =>
    v !== undefined && (!recorded || sha256(v) === recorded);
  let value = current;
  if (existing === null) {
    const owner = controllerOf(sts);
    const pods = sts !== null && (!owner || owner.uid === c.uid);
    if (pods && !known) throw new HeldError(missingMessage(c, name), 'ClusterSecretMissing');
    // No pods yet: a random value. Pods (or a StatefulSet being made again): theirs.
    value = known ? remembered : undefined;
    const created = await createSecret(ctx, c, value);
    value = created ?? value;
    if (pods || known) await restored(ctx, c, name, 'deleted');
  } else if (sts !== null && !running(current)) {
    if (!known) throw new HeldError(changedMessage(c, name), 'ClusterSecretChanged');
    await ctx.kube.apply(buildClusterSecret(c, remembered));
    value = remembered;
    await restored(ctx, c, name, 'changed');
  }
  if (value !== undefined) ctx.memory.rememberClusterSecret(c.uid, value);
  const auth = { ...c.spec.auth, clusterSecret: { name, key: GENERATED_SECRET_KEY } };
  return {
    cluster: { ...c, spec: { ...c.spec, auth } },
    legacy: false,
    ...(value !== undefined ? { sha256: sha256(value) } : {}),
  };
}

/**
 * Creates the generated Secret with `value` (random when undefined); returns the value it holds
 * (another reconcile's, when that one made it first).
 */
async function createSecret(
  ctx: ControllerContext,
  c: Cluster,
  value: string | undefined,
): Promise<string | undefined> {
  const body = buildClusterSecret(c, value);
  try {
    await ctx.kube.core.createNamespacedSecret({ namespace: c.namespace, body });
    ctx.logger.info(
      { cluster: c.name, namespace: c.namespace, secret: body.metadata?.name },
      'cluster secret created',
    );
    return keyValue(body, GENERATED_SECRET_KEY);
  } catch (err) {
    // Another reconcile made it first: use that one.
    if (statusCode(err) !== 409) throw err;
    return undefined;
  }
}

async function restored(
  ctx: ControllerContext,
  c: Cluster,
  name: string,
  how: 'deleted' | 'changed',
): Promise<void> {
  const message =
    `Secret ${name}, the cluster secret the pods run with, was ${how} by hand: put back with ` +
    "the pods' value (another value would cut each pod that restarts off from the others; a " +
    'cluster with another secret is a new KVCluster, spec.restoreFrom a backup)';
  ctx.logger.warn({ cluster: c.name, namespace: c.namespace, secret: name, how }, 'restored');
  await ctx.events.record(c, 'Warning', 'ClusterSecretRestored', message);
}

/**
 * The Secret the spec names, when the pods run with that very Secret and key: its value must
 * still be theirs (the StatefulSet's recorded hash). Changed by hand, it is the user's to put
 * back (held, ClusterSecretChanged); a switch to another Secret is checkSecretChange's.
 */
async function checkNamedValue(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
  recorded: string | undefined,
): Promise<{ sha256?: string }> {
  const named = c.spec.auth?.clusterSecret;
  const before = sts === null ? null : templateSecret(sts);
  if (!named || (sts !== null && (before?.name !== named.name || before?.key !== named.key)))
    return {};
  const value = await secretValue(ctx, c.namespace, named);
  if (value === undefined) return {};
  const hash = sha256(value);
  if (recorded && hash !== recorded) {
    throw new HeldError(
      `Secret ${named.name} key ${named.key} holds another value than the pods run with ` +
        '(changed by hand): a pod that restarts would take it and be cut off from the others. ' +
        `Put back the value the pods run with; ${recoverHint(c)}`,
      'ClusterSecretChanged',
    );
  }
  return { sha256: hash };
}
function controllerOf(o: KubernetesObject | null) {
  return o?.metadata?.ownerReferences?.find((r) => r.controller);
}

/** How to read the value the pods run with out of a running pod. */
function recoverHint(c: Cluster): string {
  const pod = `${namesOf(c.name).statefulSet}-0`;
  return (
    `it is in every running pod's environment: kubectl -n ${c.namespace} exec ${pod} -- node -e ` +
    `'process.stdout.write(process.env.${envName('clusterSecret')})' > secret`
  );
}

function missingMessage(c: Cluster, name: string): string {
  return (
    `Secret ${c.namespace}/${name}, the cluster secret the pods run with, is gone and this ` +
    "operator does not know the pods' value (deleted while no operator ran); a new one would " +
    'cut pods that restart off from the others. Put back the value the pods run with: ' +
    `${recoverHint(c)} && kubectl -n ${c.namespace} create secret generic ${name} ` +
    `--from-file=${GENERATED_SECRET_KEY}=secret`
  );
}

function changedMessage(c: Cluster, name: string): string {
  return (
    `Secret ${c.namespace}/${name}, the cluster secret the pods run with, holds another value ` +
    '(changed while no operator ran): a pod that restarts would take it and be cut off from the ' +
    `others. Put back the value the pods run with: ${recoverHint(c)} && kubectl -n ${c.namespace} ` +
    `create secret generic ${name} --from-file=${GENERATED_SECRET_KEY}=secret --dry-run=client ` +
    '-o yaml | kubectl replace -f -'
  );
}

/** The value of a Secret's key (data or stringData), or undefined. */
function keyValue(secret: V1Secret | null, key: string): string | undefined {
  const data = secret?.data?.[key];
  return data === undefined ? secret?.stringData?.[key] : Buffer.from(data, 'base64').toString();
}

/** A Secret key's value, or undefined when the Secret or the key is missing. */
async function secretValue(
  ctx: ControllerContext,
  namespace: string,
  ref: SecretRef,
): Promise<string | undefined> {
  const secret = await ctx.kube.read<V1Secret>({
    apiVersion: 'v1',
    kind: 'Secret',
    namespace,
    name: ref.name,
  });
  return keyValue(secret, ref.key);
}

const describeRef = (r: SecretRef | null) => (r ? `Secret ${r.name} key ${r.key}` : 'none');

/**
 * Holds a change of the cluster secret the pods run with to another value (naming another
 * Secret, dropping spec.auth.clusterSecret for the generated one, adding one to a cluster made
 * without): it cannot be rolled one pod at a time. A node with the new value and one with the
 * old cannot reach each other (a node with a secret refuses peers without its proof, and the
 * nodes still on the old one refuse the operator's admin calls signed with the new), so the
 * first pod replaced was cut off and the rollout held there for good, that pod serving
 * `ERR UNAVAILABLE` to the clients the Service sent it. Another Secret holding the same value
 * rolls as usual.
 */
async function checkSecretChange(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<void> {
  if (sts === null) return;
  const owner = controllerOf(sts);
  if (owner && owner.uid !== c.uid) return; // not this cluster's pods (reported on apply)
  const before = templateSecret(sts);
  const after = c.spec.auth?.clusterSecret ?? null;
  if (before?.name === after?.name && before?.key === after?.key) return;
  if (before && after) {
    const [was, will] = await Promise.all([
      secretValue(ctx, c.namespace, before),
      secretValue(ctx, c.namespace, after),
    ]);
    if (was !== undefined && was === will) return;
  }
  throw new HeldError(
    `the pods run with cluster secret ${describeRef(before)}, and the spec asks for ` +
      `${describeRef(after)} with another value: pods replaced one at a time could not reach ` +
      'the others, so the change is not rolled. Put back spec.auth.clusterSecret as it was' +
      (before && after ? `, or give ${after.name} the value of ${before.name}` : '') +
      '; a cluster with another secret is a new KVCluster (spec.restoreFrom a backup)',
    'ClusterSecretChange',
  );
}
