// The StatefulSet of kvstore nodes: pod template, probes, PVC template and retention, partition.

import type {
  V1Affinity,
  V1Container,
  V1EnvVar,
  V1PersistentVolumeClaim,
  V1PodSecurityContext,
  V1PodTemplateSpec,
  V1SecurityContext,
  V1StatefulSet,
  V1Toleration,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { envName } from '../../src/config/index.ts';
import { DATA_DIR } from './configmap.ts';
import { applyOwned, type ControllerContext, HeldError } from './context.ts';
import {
  type Cluster,
  CONFIG_HASH_ANNOTATION,
  configMapName,
  hashOf,
  labelsOf,
  namesOf,
  ownedMeta,
  SECRET_HASH_ANNOTATION,
  selectorLabels,
  TEMPLATE_HASH_ANNOTATION,
} from './names.ts';

/** What the reconcile decided for the StatefulSet this round. */
export interface StatefulSetPlan {
  readonly replicas: number;
  /** Pods with an ordinal >= partition run the current template (RollingUpdate partition). */
  readonly partition: number;
  /** Hash of the ConfigMap data: names the ConfigMap, so a config change is a template change. */
  readonly configHash: string;
  /** SHA-256 of the cluster secret the pods run with (SECRET_HASH_ANNOTATION), when known. */
  readonly clusterSecretSha256?: string;
}

function container(c: Cluster, configHash: string): V1Container {
  const s = c.spec;
  const probe = (path: string, period: number, failures: number) => ({
    httpGet: { path, port: 'http' },
    periodSeconds: period,
    failureThreshold: failures,
    timeoutSeconds: 2,
  });
  return {
    name: 'kvstore',
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    env: [
      { name: envName('nodeName'), valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ...securityEnv(c),
    ],
    envFrom: [{ configMapRef: { name: configMapName(c.name, configHash) } }],
    ports: [
      { name: 'client', containerPort: s.ports.client, protocol: 'TCP' },
      { name: 'http', containerPort: s.ports.http, protocol: 'TCP' },
      { name: 'peer', containerPort: s.ports.peer, protocol: 'TCP' },
    ],
    readinessProbe: probe('/readyz', 5, 3),
    livenessProbe: { ...probe('/healthz', 10, 6), initialDelaySeconds: 10 },
    ...(s.resources ? { resources: s.resources as V1Container['resources'] } : {}),
    volumeMounts: [{ name: 'data', mountPath: DATA_DIR }, ...tlsVolumes(c).mounts],
    securityContext: CONTAINER_SECURITY,
  };
}

/** The image's uid 1000, writing only to its volumes: the node's and the backup pods' containers. */
export const CONTAINER_SECURITY: V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 1000,
  runAsGroup: 1000,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Volumes group-owned by the image's gid, so uid 1000 can write to a fresh claim. */
export const POD_SECURITY: V1PodSecurityContext = {
  fsGroup: 1000,
  fsGroupChangePolicy: 'OnRootMismatch',
};

const TLS_DIR = '/etc/kvstore/tls';

/** KV_PASSWORD / KV_CLUSTER_SECRET from Secrets, and the TLS file paths when TLS is on. */
function securityEnv(c: Cluster): V1EnvVar[] {
  const { auth, tls } = c.spec;
  const fromSecret = (name: string, ref: { name: string; key: string }): V1EnvVar => ({
    name,
    valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } },
  });
  const env: V1EnvVar[] = [];
  if (auth?.passwordSecret) env.push(fromSecret(envName('password'), auth.passwordSecret));
  if (auth?.clusterSecret) env.push(fromSecret(envName('clusterSecret'), auth.clusterSecret));
  if (tls?.clientSecretName) {
    env.push({ name: envName('tlsCertFile'), value: `${TLS_DIR}/client/tls.crt` });
    env.push({ name: envName('tlsKeyFile'), value: `${TLS_DIR}/client/tls.key` });
  }
  if (tls?.peerSecretName) {
    env.push({ name: envName('peerTlsCertFile'), value: `${TLS_DIR}/peer/tls.crt` });
    env.push({ name: envName('peerTlsKeyFile'), value: `${TLS_DIR}/peer/tls.key` });
    env.push({ name: envName('peerTlsCaFile'), value: `${TLS_DIR}/peer/ca.crt` });
  }
  return env;
}

/** Read-only Secret volumes for the client and peer certificates. */
function tlsVolumes(c: Cluster): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const tls = c.spec.tls;
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  for (const [which, secretName] of [
    ['client', tls?.clientSecretName],
    ['peer', tls?.peerSecretName],
  ] as const) {
    if (!secretName) continue;
    volumes.push({ name: `tls-${which}`, secret: { secretName, defaultMode: 0o440 } });
    mounts.push({ name: `tls-${which}`, mountPath: `${TLS_DIR}/${which}`, readOnly: true });
  }
  return { volumes, mounts };
}

function podAnnotations(c: Cluster, configHash: string): Record<string, string> {
  const scrape: Record<string, string> = c.spec.metrics.enabled
    ? {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(c.spec.ports.http),
        'prometheus.io/path': '/metrics',
      }
    : {};
  return { ...scrape, [CONFIG_HASH_ANNOTATION]: configHash };
}

/** The pod template; its hash decides whether a rollout starts. */
export function buildPodTemplate(c: Cluster, configHash: string): V1PodTemplateSpec {
  const s = c.spec;
  return {
    metadata: { labels: labelsOf(c.name, 'node'), annotations: podAnnotations(c, configHash) },
    spec: {
      containers: [container(c, configHash)],
      ...(c.spec.tls ? { volumes: tlsVolumes(c).volumes } : {}),
      // The node drains in-flight commands for up to 10 s (KV_SHUTDOWN_TIMEOUT_MS) on SIGTERM.
      terminationGracePeriodSeconds: 30,
      securityContext: POD_SECURITY,
      ...(s.affinity ? { affinity: s.affinity as V1Affinity } : {}),
      ...(s.tolerations ? { tolerations: s.tolerations as V1Toleration[] } : {}),
      ...(s.nodeSelector ? { nodeSelector: s.nodeSelector } : {}),
      ...(s.topologySpreadConstraints
        ? {
            topologySpreadConstraints:
              s.topologySpreadConstraints as unknown as V1TopologySpreadConstraint[],
          }
        : {}),
    },
  };
}

function claimTemplate(c: Cluster): V1PersistentVolumeClaim {
  const st = c.spec.storage;
  return {
    metadata: { name: 'data', labels: labelsOf(c.name, 'data') },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(st.storageClassName ? { storageClassName: st.storageClassName } : {}),
      resources: { requests: { storage: st.size } },
    },
  };
}

/** The desired StatefulSet; its template hash annotation records which template was applied. */
export function buildStatefulSet(c: Cluster, plan: StatefulSetPlan): V1StatefulSet {
  const template = buildPodTemplate(c, plan.configHash);
  const names = namesOf(c.name);
  const meta = ownedMeta(c, names.statefulSet, 'node');
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      ...meta,
      annotations: {
        [TEMPLATE_HASH_ANNOTATION]: hashOf(template),
        ...(plan.clusterSecretSha256 ? { [SECRET_HASH_ANNOTATION]: plan.clusterSecretSha256 } : {}),
      },
    },
    spec: {
      replicas: plan.replicas,
      serviceName: names.headless,
      // Nodes join through DNS and the ring moves data, so they need not start in order.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorLabels(c.name) },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: plan.partition } },
      persistentVolumeClaimRetentionPolicy: {
        whenDeleted: c.spec.storage.retainOnDelete ? 'Retain' : 'Delete',
        whenScaled: c.spec.storage.retainOnScaleDown ? 'Retain' : 'Delete',
      },
      template,
      volumeClaimTemplates: [claimTemplate(c)],
    },
  };
}

/** The template hash the StatefulSet was last applied with ('' when absent). */
export function appliedTemplateHash(sts: V1StatefulSet | null): string {
  return sts?.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION] ?? '';
}

/** The hash `buildStatefulSet` would record for this cluster and config. */
export function desiredTemplateHash(c: Cluster, configHash: string): string {
  return hashOf(buildPodTemplate(c, configHash));
}

/** `current`: the StatefulSet as this reconcile observed it (not read again). */
export async function ensureStatefulSet(
  ctx: ControllerContext,
  c: Cluster,
  plan: StatefulSetPlan,
  current: V1StatefulSet | null,
): Promise<void> {
  await applyOwned(ctx, c.uid, buildStatefulSet(c, plan), current);
}

/** The current StatefulSet (read fresh: the rollout and scale steps must not act on a stale copy). */
export function readStatefulSet(ctx: ControllerContext, c: Cluster): Promise<V1StatefulSet | null> {
  const name = namesOf(c.name).statefulSet;
  return ctx.kube.read<V1StatefulSet>({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    namespace: c.namespace,
    name,
  });
}

/** Whether the StatefulSet's pods run with peer TLS (their KV_PEER_TLS_* settings). */
function templatePeerTls(sts: V1StatefulSet): boolean {
  const containers = sts.spec?.template?.spec?.containers ?? [];
  return containers.some((c) => c.env?.some((e) => e.name === envName('peerTlsCaFile')));
}

/**
 * Holds turning peer TLS on or off (spec.tls.peerSecretName added or removed) on a running
 * cluster: like a change of the cluster secret, it cannot be rolled one pod at a time. A node
 * with peer TLS speaks only TLS on its peer port and dials its peers with TLS, one without
 * speaks plain TCP, so the first pod replaced was cut off from every other, served
 * `ERR UNAVAILABLE`, and the rollout held there for good. Another Secret for a cluster that has
 * peer TLS already (a new certificate) rolls as before.
 */
export function checkPeerTlsChange(c: Cluster, sts: V1StatefulSet | null): void {
  if (sts === null) return;
  const owner = sts.metadata?.ownerReferences?.find((o) => o.controller);
  if (owner && owner.uid !== c.uid) return; // not this cluster's pods (reported on apply)
  const before = templatePeerTls(sts);
  const after = Boolean(c.spec.tls?.peerSecretName);
  if (before === after) return;
  const [was, will] = before ? ['on', 'off'] : ['off', 'on'];
  throw new HeldError(
    `the pods run with peer TLS ${was}, and the spec turns it ${will} ` +
      `(spec.tls.peerSecretName ${after ? 'added' : 'removed'}): a pod replaced with it ${will} ` +
      `could not reach the others, so the change is not rolled. Put spec.tls.peerSecretName back ` +
      `as it was; a cluster with peer TLS ${will} is a new KVCluster (spec.restoreFrom a backup)`,
    'PeerTlsChange',
  );
}
