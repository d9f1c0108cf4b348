// The cluster secret of a KVCluster that names none: an owned Secret of random bytes, made once.

import { randomBytes } from 'node:crypto';
import type { V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { envName } from '../../src/config/index.ts';
import { statusCode } from '../runtime/index.ts';
import type { ControllerContext } from './context.ts';
import { type Cluster, namesOf, ownedMeta } from './names.ts';

/** Key of the secret in the generated Secret. */
export const GENERATED_SECRET_KEY = 'secret';

/** Whether the StatefulSet's pods take KV_CLUSTER_SECRET from the Secret named `name`. */
function usesSecret(sts: V1StatefulSet, name: string): boolean {
  const containers = sts.spec?.template?.spec?.containers ?? [];
  return containers.some((c) =>
    (c.env ?? []).some(
      (e) => e.name === envName('clusterSecret') && e.valueFrom?.secretKeyRef?.name === name,
    ),
  );
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
 * set spec.auth.clusterSecret (all pods restart with it) to add one.
 */
export async function ensureClusterSecret(
  ctx: ControllerContext,
  c: Cluster,
  sts: V1StatefulSet | null,
): Promise<{ cluster: Cluster; legacy: boolean }> {
  if (c.spec.auth?.clusterSecret) return { cluster: c, legacy: false };
  const name = namesOf(c.name).clusterSecret;
  if (sts !== null && !usesSecret(sts, name)) return { cluster: c, legacy: true };
  const ref = { apiVersion: 'v1', kind: 'Secret', namespace: c.namespace, name };
  if ((await ctx.kube.read<V1Secret>(ref)) === null) {
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
