// Names, labels and owner references of the objects a KVCluster owns.

import { createHash } from 'node:crypto';
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import {
  API_VERSION,
  KIND,
  type KVClusterSpec,
  type KVClusterStatus,
} from '../api/v1alpha1/index.ts';

/** A KVCluster as read from the apiserver (spec not yet validated). */
export interface KVClusterObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: unknown;
  status?: KVClusterStatus;
}

/** A KVCluster whose spec passed validation (defaults filled in). */
export interface Cluster {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly generation: number;
  readonly spec: KVClusterSpec;
}

export const MANAGED_BY = 'kvstore-operator';
/** Label on every owned object naming its KVCluster (informer events map back through it). */
export const CLUSTER_LABEL = 'kvstore.dev/cluster';
export const TEMPLATE_HASH_ANNOTATION = 'kvstore.dev/template-hash';
export const CONFIG_HASH_ANNOTATION = 'kvstore.dev/config-hash';
/**
 * On the StatefulSet: the SHA-256 of the cluster secret its pods run with (recorded when the
 * operator made the Secret, or first saw the StatefulSet use it), so a value changed while no
 * operator watched is told from the pods' own. The hash of 32 random bytes gives nothing away.
 */
export const SECRET_HASH_ANNOTATION = 'kvstore.dev/cluster-secret-sha256';

export interface Names {
  readonly statefulSet: string;
  readonly headless: string;
  readonly client: string;
  readonly pdb: string;
  readonly serviceMonitor: string;
  /** The cluster secret the operator makes when the spec names none. */
  readonly clusterSecret: string;
}

export function namesOf(cluster: string): Names {
  return {
    statefulSet: cluster,
    headless: `${cluster}-headless`,
    client: cluster,
    pdb: cluster,
    serviceMonitor: cluster,
    clusterSecret: `${cluster}-cluster-secret`,
  };
}

/** The StatefulSet's selector (immutable): also the scale subresource's selector. */
export function selectorLabels(cluster: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': cluster };
}

/** `selectorLabels` as a label selector string (status.selector). */
export function selectorString(cluster: string): string {
  return Object.entries(selectorLabels(cluster))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function labelsOf(cluster: string, component: string): Record<string, string> {
  return {
    ...selectorLabels(cluster),
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [CLUSTER_LABEL]: cluster,
  };
}

export function ownerReference(c: Cluster): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: c.name,
    uid: c.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of an owned object: namespace, labels, the controller owner reference. */
export function ownedMeta(c: Cluster, name: string, component: string): V1ObjectMeta {
  return {
    name,
    namespace: c.namespace,
    labels: labelsOf(c.name, component),
    ownerReferences: [ownerReference(c)],
  };
}

/**
 * The ConfigMap of one configuration of the nodes' settings: named by the hash of its data, so
 * each pod revision keeps the settings it was made with (`<name>-config` before: one ConfigMap
 * for all revisions, rewritten in place).
 */
export function configMapName(cluster: string, configHash: string): string {
  return `${cluster}-config-${configHash}`;
}

export function podName(cluster: string, ordinal: number): string {
  return `${cluster}-${ordinal}`;
}

/** The ordinal of a StatefulSet pod name `<cluster>-<n>`, or -1. */
export function ordinalOf(cluster: string, pod: string): number {
  const prefix = `${cluster}-`;
  if (!pod.startsWith(prefix)) return -1;
  const rest = pod.slice(prefix.length);
  return /^(0|[1-9][0-9]*)$/.test(rest) ? Number(rest) : -1;
}

/** A short stable hash of JSON data (keys sorted), for change detection annotations. */
export function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so equal data gives equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** `namespace/name`, the work queue key. */
export function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
