// The cluster secret of a KVCluster that names none: an owned Secret of random bytes, made once.

import { randomBytes } from 'node:crypto';
import type { KubernetesObject, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { envName } from '../../src/config/index.ts';
import { KIND } from '../api/v1alpha1/index.ts';
import { statusCode } from '../runtime/index.ts';
import { ControlledElsewhereError, type ControllerContext, HeldError } from './context.ts';
import { type Cluster, namesOf, ownedMeta } from './names.ts';

/** Key of the secret in the generated Secret. */
export const GENERATED_SECRET_KEY = 'secret';

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

export function buildClusterSecret(c: Cluster): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: ownedMeta(c, namesOf(c.name).clusterSecret, 'cluster-secret'),
    type: 'Opaque',
    // 32 random bytes: the HMAC key of every peer connection and admin call.
    data: {
      [GENERATED_SECRET_KEY]: Buffer.from(randomBytes(32).toString('base64url')).toString('base64'),
    },
  };
}

/**
 * The KVCluster with the cluster secret its nodes use. One named in spec.auth.clusterSecret is
 * used as it is. Otherwise the operator's own Secret `<name>-cluster-secret` (created with a
 * random value if missing, never rewritten, garbage-collected with the KVCluster), so peers
 * authenticate by default. A StatefulSet made before this default, without a cluster secret,
 * keeps running without one (returned as `legacy`): giving its pods one in a rolling update
 * would split the cluster between pods that require the proof and pods that cannot send it;
 * adding one later is held the same way (checkSecretChange).
 *
 * The Secret is made only before the StatefulSet uses it. Gone afterwards (deleted by hand, or
 * by the garbage collector while the StatefulSet was orphaned and adopted again), its value
 * lives on only in the running pods: a new random one made then (as before) changed no pod
 * template, so nothing rolled, the operator's admin calls (signed with the new value) were
 * refused by every node, and each pod that restarted later (a crash, an eviction, a rollout)
 * came up with the new value, cut off from its peers. Now the reconcile holds, Degraded
 * (`ClusterSecretMissing`), saying how to put the pods' value back; meanwhile a restarting pod
 * does not start (its Secret is missing) rather than start with another secret.
 */
export async function ensureClusterSecret(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<{ cluster: Cluster; legacy: boolean }> {
  const resolved = await resolveClusterSecret(ctx, c, sts);
  await checkSecretChange(ctx, resolved.cluster, sts);
  return resolved;
}

async function resolveClusterSecret(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<{ cluster: Cluster; legacy: boolean }> {
  if (c.spec.auth?.clusterSecret) return { cluster: c, legacy: false };
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
  if (existing === null) {
    const owner = controllerOf(sts);
    if (sts !== null && (!owner || owner.uid === c.uid))
      throw new HeldError(missingMessage(c, name), 'ClusterSecretMissing');
    try {
      await ctx.kube.core.createNamespacedSecret({
        namespace: c.namespace,
        body: buildClusterSecret(c),
      });
      ctx.logger.info(
        { cluster: c.name, namespace: c.namespace, secret: name },
        'cluster secret created',
      );
    } catch (err) {
      // Another reconcile made it first: use that one.
      if (statusCode(err) !== 409) throw err;
    }
  }
  const auth = { ...c.spec.auth, clusterSecret: { name, key: GENERATED_SECRET_KEY } };
  return { cluster: { ...c, spec: { ...c.spec, auth } }, legacy: false };
}

function controllerOf(o: KubernetesObject | null) {
  return o?.metadata?.ownerReferences?.find((r) => r.controller);
}

function missingMessage(c: Cluster, name: string): string {
  const ns = c.namespace;
  const pod = `${namesOf(c.name).statefulSet}-0`;
  return (
    `Secret ${ns}/${name}, the cluster secret the pods run with, is gone; a new one would cut ` +
    'pods that restart off from the others. Put back the value the pods run with: ' +
    `kubectl -n ${ns} exec ${pod} -- node -e 'process.stdout.write(process.env.${envName('clusterSecret')})' > secret && ` +
    `kubectl -n ${ns} create secret generic ${name} --from-file=${GENERATED_SECRET_KEY}=secret`
  );
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
  const data = secret?.data?.[ref.key];
  return data === undefined
    ? secret?.stringData?.[ref.key]
    : Buffer.from(data, 'base64').toString();
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
