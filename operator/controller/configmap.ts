// The ConfigMap holding each node's KV_* settings (loaded with envFrom; its hash rolls the pods).

import type { V1ConfigMap } from '@kubernetes/client-node';
import type { ControllerContext } from './context.ts';
import { type Cluster, hashOf, namesOf, ownedMeta } from './names.ts';

/** Where each node's PersistentVolumeClaim is mounted. */
export const DATA_DIR = '/data';

/** The KV_* environment of every node (KV_NODE_NAME comes from the pod name, not from here). */
export function nodeEnvironment(c: Cluster, clusterDomain: string): Record<string, string> {
  const s = c.spec;
  const headless = namesOf(c.name).headless;
  return {
    KV_HOST: '0.0.0.0',
    KV_PORT: String(s.ports.client),
    KV_HTTP_PORT: String(s.ports.http),
    KV_PEER_PORT: String(s.ports.peer),
    KV_DATA_DIR: DATA_DIR,
    KV_DISCOVERY: `dns:${headless}.${c.namespace}.svc.${clusterDomain}`,
    KV_REPLICATION_FACTOR: String(s.replicationFactor),
    KV_READ_QUORUM: String(s.readQuorum),
    KV_WRITE_QUORUM: String(s.writeQuorum),
    KV_LOG_LEVEL: s.logLevel,
  };
}

export function buildConfigMap(c: Cluster, clusterDomain: string): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(c, namesOf(c.name).configMap, 'config'),
    data: nodeEnvironment(c, clusterDomain),
  };
}

/** Hash of the ConfigMap data, put on the pod template so a config change rolls the pods. */
export function configHash(cm: V1ConfigMap): string {
  return hashOf(cm.data ?? {});
}

/** Applies the ConfigMap; returns its hash for the pod template. */
export async function ensureConfigMap(ctx: ControllerContext, c: Cluster): Promise<string> {
  const cm = buildConfigMap(c, ctx.settings.clusterDomain);
  await ctx.kube.apply(cm);
  return configHash(cm);
}
