// The ConfigMaps of each node's KV_* settings (envFrom): one per configuration, named by its hash.

import type {
  V1ConfigMap,
  V1ControllerRevision,
  V1PodTemplateSpec,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { type Config, envName } from '../../src/config/index.ts';
import { applyOwned, type ControllerContext } from './context.ts';
import { CLUSTER_LABEL, type Cluster, configMapName, hashOf, namesOf, ownedMeta } from './names.ts';

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
  const data = nodeEnvironment(c, clusterDomain);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(c, configMapName(c.name, hashOf(data)), 'config'),
    // Named by its content and never rewritten: a pod of any revision, restarted at any time,
    // starts with the settings its revision was made with.
    immutable: true,
    data,
  };
}

/** Hash of the ConfigMap data: its name, and the pod template's reference to it. */
export function configHash(cm: V1ConfigMap): string {
  return hashOf(cm.data ?? {});
}

/**
 * Applies the ConfigMap of the spec's settings (made once per configuration: a Normal Event
 * names a new one); returns its hash for the pod template.
 */
export async function ensureConfigMap(ctx: ControllerContext, c: Cluster): Promise<string> {
  const cm = buildConfigMap(c, ctx.settings.clusterDomain);
  const name = cm.metadata?.name ?? '';
  const existing = await ctx.kube.read<V1ConfigMap>({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace: c.namespace,
    name,
  });
  await applyOwned(ctx, c.uid, cm, existing);
  ctx.memory.rememberConfigMap(c.uid, name, cm.data ?? {});
  if (existing === null) {
    ctx.logger.info({ cluster: c.name, namespace: c.namespace, configMap: name }, 'settings');
    await ctx.events.record(
      c,
      'Normal',
      'ConfigMapCreated',
      `node settings in ConfigMap ${name}; pods still on an earlier revision keep theirs until replaced`,
    );
  }
  return configHash(cm);
}

/** Names of the ConfigMaps a pod template uses (envFrom, env, volumes). */
export function configMapsOf(template: V1PodTemplateSpec | undefined): Set<string> {
  const names = new Set<string>();
  const spec = template?.spec;
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    for (const f of c.envFrom ?? []) if (f.configMapRef?.name) names.add(f.configMapRef.name);
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.configMapKeyRef?.name;
      if (ref) names.add(ref);
    }
  }
  for (const v of spec?.volumes ?? []) if (v.configMap?.name) names.add(v.configMap.name);
  return names;
}

/**
 * The settings ConfigMaps of this KVCluster no pod revision uses any more (pure): controlled by
 * `ownerUid`, not in `inUse`. The one of the pre-hash layout (`<name>-config`) goes the same
 * way once no revision refers to it.
 */
export function unusedConfigMaps(
  cms: readonly V1ConfigMap[],
  ownerUid: string,
  inUse: ReadonlySet<string>,
): string[] {
  return cms
    .filter((cm) => cm.metadata?.ownerReferences?.some((o) => o.controller && o.uid === ownerUid))
    .map((cm) => cm.metadata?.name ?? '')
    .filter((name) => name !== '' && !inUse.has(name));
}

/**
 * Keeps one settings ConfigMap for each pod revision that can still start, and only those:
 * deletes the ones no revision uses any more, and makes again one a revision uses that was
 * deleted by hand, with the data it had (remembered from an earlier round or watch event: an
 * earlier revision's settings cannot be derived from the spec any more; without it a pod of
 * that revision could not start again, its ConfigMap missing). Returns what could not be made
 * again (its data never seen by this process), one line each, for the Degraded condition.
 * Kept: the one just applied, the StatefulSet template's as observed (before this round's
 * apply), and those of the ControllerRevisions its status names and every pod runs (a pod
 * restarted on an older revision mid-rollout reads its own). Done only while the StatefulSet's
 * status is current and every one of those revisions could be read; otherwise the next round
 * does it.
 */
export async function ensureRevisionConfigMaps(
  ctx: ControllerContext,
  c: Cluster,
  desiredHash: string,
  sts: V1StatefulSet | null,
  pods: readonly { readonly name: string; readonly revision: string }[],
): Promise<string[]> {
  if (sts === null) return [];
  if ((sts.status?.observedGeneration ?? 0) < (sts.metadata?.generation ?? 1)) return [];
  const desired = configMapName(c.name, desiredHash);
  /** ConfigMap name -> the pods whose revision starts with it. */
  const inUse = new Map<string, string[]>();
  const use = (names: Iterable<string>, users: string[]) => {
    for (const n of names) inUse.set(n, [...(inUse.get(n) ?? []), ...users]);
  };
  const podsOf = (rev: string | undefined) =>
    pods.filter((p) => p.revision === rev).map((p) => p.name);
  use(configMapsOf(sts.spec?.template), podsOf(sts.status?.updateRevision));
  use([desired], []);
  // The update revision is the template's own (the status is current): no need to read it.
  const revisions = new Set(
    [sts.status?.currentRevision, ...pods.map((p) => p.revision)].filter(
      (r): r is string => Boolean(r) && r !== sts.status?.updateRevision,
    ),
  );
  for (const name of revisions) {
    const rev = await ctx.kube.read<V1ControllerRevision>({
      apiVersion: 'apps/v1',
      kind: 'ControllerRevision',
      namespace: c.namespace,
      name,
    });
    const template = (rev?.data as { spec?: { template?: V1PodTemplateSpec } } | undefined)?.spec
      ?.template;
    if (!template) return []; // unknown: keep everything this round
    use(configMapsOf(template), podsOf(name));
  }
  const list = await ctx.kube.core.listNamespacedConfigMap({
    namespace: c.namespace,
    labelSelector: `${CLUSTER_LABEL}=${c.name},app.kubernetes.io/component=config`,
  });
  const ours = list.items.filter((cm) => controlledBy(cm, c.uid));
  for (const cm of ours)
    ctx.memory.rememberConfigMap(c.uid, cm.metadata?.name ?? '', cm.data ?? {});
  const present = new Set(list.items.map((cm) => cm.metadata?.name));
  const unknown: string[] = [];
  for (const [name, users] of inUse) {
    if (present.has(name) || name === desired) continue;
    if (!(await recreateConfigMap(ctx, c, name, users))) {
      const who = users.length ? `${users.join(', ')} cannot start again` : 'no pod runs it now';
      unknown.push(
        `ConfigMap ${name}, the settings of a pod revision, was deleted before this operator saw it: ${who}`,
      );
    }
  }
  const unused = unusedConfigMaps(list.items, c.uid, new Set(inUse.keys()));
  ctx.memory.keepConfigMaps(c.uid, new Set(inUse.keys()));
  for (const name of unused)
    await ctx.kube.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: c.namespace, name });
  if (unused.length > 0) {
    ctx.logger.info({ cluster: c.name, namespace: c.namespace, unused }, 'ConfigMaps deleted');
    await ctx.events.record(
      c,
      'Normal',
      'ConfigMapsDeleted',
      `no pod revision uses ConfigMap ${unused.join(', ')} any more: deleted`,
    );
  }
  return unknown;
}

const controlledBy = (cm: V1ConfigMap, uid: string) =>
  cm.metadata?.ownerReferences?.some((o) => o.controller && o.uid === uid) ?? false;

/**
 * Makes a settings ConfigMap a pod revision uses again with the data remembered for it; false
 * when none is. A name of the hashed layout must match its data's hash (never another's).
 */
async function recreateConfigMap(
  ctx: ControllerContext,
  c: Cluster,
  name: string,
  users: readonly string[],
): Promise<boolean> {
  const data = ctx.memory.configMap(c.uid, name);
  if (data === undefined) return false;
  const hashed = name !== `${c.name}-config`;
  if (hashed && configMapName(c.name, hashOf(data)) !== name) return false;
  const cm: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(c, name, 'config'),
    ...(hashed ? { immutable: true } : {}),
    data: { ...data },
  };
  await applyOwned(ctx, c.uid, cm, null);
  const who = users.length ? ` (${users.join(', ')} start with it)` : '';
  ctx.logger.warn({ cluster: c.name, namespace: c.namespace, configMap: name }, 'made again');
  await ctx.events.record(
    c,
    'Warning',
    'ConfigMapRecreated',
    `ConfigMap ${name}, the settings of a pod revision${who}, was deleted: made again with the data it had`,
  );
  return true;
}
