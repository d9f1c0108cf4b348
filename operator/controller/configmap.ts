// The ConfigMap holding each node's KV_* settings (loaded with envFrom; its hash rolls the pods).

import type { V1ConfigMap } from '@kubernetes/client-node';
import { type Config, envName } from '../../src/config/index.ts';
import { applyOwned, type ControllerContext } from './context.ts';
import { type Cluster, hashOf, namesOf, ownedMeta } from './names.ts';

/** Where each node's PersistentVolumeClaim is mounted. */
export const DATA_DIR = '/data';

/**
 * The KV_* environment of every node (KV_NODE_NAME comes from the pod name, not from here):
 * named by the node's own config (src/config), so the names cannot drift from what it reads.
 */
export function nodeEnvironment(c: Cluster, clusterDomain: string): Record<string, string> {
  const s = c.spec;
  const headless = namesOf(c.name).headless;
  const settings: Partial<Record<keyof Config, string>> = {
    host: '0.0.0.0',
    port: String(s.ports.client),
    httpPort: String(s.ports.http),
    peerPort: String(s.ports.peer),
    dataDir: DATA_DIR,
    discovery: `dns:${headless}.${c.namespace}.svc.${clusterDomain}`,
    replicationFactor: String(s.replicationFactor),
    readQuorum: String(s.readQuorum),
    writeQuorum: String(s.writeQuorum),
    logLevel: s.logLevel,
  };
  // spec.settings: the node's own option names; parseKVCluster checked them with its schema.
  for (const [key, value] of Object.entries(s.settings ?? {}))
    if (value !== undefined) settings[key as keyof Config] = String(value);
  return Object.fromEntries(
    Object.entries(settings).map(([key, v]) => [envName(key as keyof Config), v]),
  );
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
  await applyOwned(ctx, c.uid, cm);
  return configHash(cm);
}
