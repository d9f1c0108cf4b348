// Backups and restores of a KVCluster: a CronJob running `kvctl backup` onto a claim
// (spec.backup), and a Job running `kvctl restore` once a new cluster is up (spec.restoreFrom).

import type { V1CronJob, V1EnvVar, V1Job, V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { KVClusterStatus } from '../api/v1alpha1/index.ts';
import { applyOwned, type ControllerContext, deleteIfOwned } from './context.ts';
import { type Cluster, namesOf, ownedMeta } from './names.ts';
import { CONTAINER_SECURITY, POD_SECURITY } from './statefulset.ts';

/** Pod label naming the cluster a backup or restore pod works for, and which of the two. */
export const BACKUP_LABEL = 'kvstore.dev/backup';
export const RESTORE_LABEL = 'kvstore.dev/restore';
const MOUNT = '/backups';

export function backupCronJobName(cluster: string): string {
  return `${cluster}-backup`;
}

export function restoreJobName(cluster: string): string {
  return `${cluster}-restore`;
}

/** A pod that runs kvctl against the cluster's HTTP port with the claim mounted at /backups. */
function kvctlPod(
  c: Cluster,
  label: Record<string, string>,
  claimName: string,
  args: string[],
): V1PodTemplateSpec {
  const n = namesOf(c.name);
  const env: V1EnvVar[] = [];
  const secret = c.spec.auth?.clusterSecret;
  if (secret) {
    env.push({
      name: 'KVCTL_CLUSTER_SECRET',
      valueFrom: { secretKeyRef: { name: secret.name, key: secret.key } },
    });
  }
  return {
    metadata: { labels: label },
    spec: {
      restartPolicy: 'Never',
      containers: [
        {
          name: 'kvctl',
          image: c.spec.image,
          imagePullPolicy: c.spec.imagePullPolicy,
          // Any node answers: the headless Service's name resolves to every pod.
          command: [
            'kvctl',
            '--host',
            `${n.headless}.${c.namespace}.svc`,
            '--http-port',
            String(c.spec.ports.http),
            ...args,
            '--summary-file',
            '/dev/termination-log',
          ],
          env,
          volumeMounts: [{ name: 'backups', mountPath: MOUNT }],
          terminationMessagePolicy: 'File',
          // As the nodes: uid 1000, and a claim whose storage honours fsGroup is writable to it
          // (without it only a world-writable volume, like kind's local-path, takes a backup).
          securityContext: CONTAINER_SECURITY,
        },
      ],
      securityContext: POD_SECURITY,
      volumes: [{ name: 'backups', persistentVolumeClaim: { claimName } }],
    },
  };
}

/** The CronJob of spec.backup (null without one): each run writes `/backups/<cluster>-<time>`. */
export function buildBackupCronJob(c: Cluster): V1CronJob | null {
  const b = c.spec.backup;
  if (!b) return null;
  const target = `${MOUNT}/${c.name}-{time}`;
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: ownedMeta(c, backupCronJobName(c.name), 'backup'),
    spec: {
      schedule: b.schedule,
      suspend: b.suspend,
      concurrencyPolicy: 'Forbid',
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        spec: {
          backoffLimit: 1,
          template: kvctlPod(c, { [BACKUP_LABEL]: c.name }, b.claimName, ['backup', target]),
        },
      },
    },
  };
}

/**
 * The Job of spec.restoreFrom. `kvctl restore` refuses a cluster that holds other data, and an
 * interrupted restore of the same backup resumes, so retries (backoffLimit) are safe.
 */
export function buildRestoreJob(c: Cluster): V1Job | null {
  const r = c.spec.restoreFrom;
  if (!r) return null;
  const source = `${MOUNT}/${r.path.replace(/^\/+/, '')}`;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: ownedMeta(c, restoreJobName(c.name), 'restore'),
    spec: {
      backoffLimit: 6,
      template: kvctlPod(c, { [RESTORE_LABEL]: c.name }, r.claimName, ['restore', source]),
    },
  };
}

type BackupStatus = NonNullable<KVClusterStatus['backup']>;

/**
 * kvctl's path in the pod (`/backups/kv-20261203T030000Z`) as spec.restoreFrom.path takes it:
 * relative to the claim's root (`kv-20261203T030000Z`).
 */
function onClaim(path: string): string {
  return path.startsWith(`${MOUNT}/`) ? path.slice(MOUNT.length + 1) : path;
}

function newestFirst(pods: readonly V1Pod[]): V1Pod[] {
  return [...pods].sort((a, b) =>
    String(b.metadata?.creationTimestamp ?? '').localeCompare(
      String(a.metadata?.creationTimestamp ?? ''),
    ),
  );
}

/**
 * What the newest kvctl pod with `label` says: Running, Succeeded or Failed with its start and
 * end, and the counts (or error) of its --summary-file, read from the termination message.
 */
export function runStatus(pods: readonly V1Pod[]): BackupStatus | undefined {
  const newest = newestFirst(pods)[0];
  if (!newest) return undefined;
  const phase = newest.status?.phase;
  const terminated = newest.status?.containerStatuses?.[0]?.state?.terminated;
  let summary: Record<string, unknown> = {};
  try {
    summary = JSON.parse(terminated?.message ?? '{}') as Record<string, unknown>;
  } catch {
    // A message that is not kvctl's summary: counts unknown.
  }
  const num = (k: string) => (typeof summary[k] === 'number' ? { [k]: summary[k] as number } : {});
  const time = (t: unknown) => (t ? new Date(t as string).toISOString() : undefined);
  const started = time(newest.status?.startTime);
  const finished = time(terminated?.finishedAt);
  return {
    phase: phase === 'Succeeded' || phase === 'Failed' ? phase : 'Running',
    pod: newest.metadata?.name ?? '',
    ...(started ? { startTime: started } : {}),
    ...(finished ? { completionTime: finished } : {}),
    ...(typeof summary.path === 'string' ? { path: onClaim(summary.path) } : {}),
    ...num('records'),
    ...num('keys'),
    ...num('tombstones'),
    ...num('bytes'),
    ...(typeof summary.error === 'string' ? { error: summary.error } : {}),
  };
}

async function podsLabelled(ctx: ControllerContext, c: Cluster, label: string): Promise<V1Pod[]> {
  const list = await ctx.kube.core.listNamespacedPod({
    namespace: c.namespace,
    labelSelector: `${label}=${c.name}`,
  });
  return list.items;
}

/** Applies (or removes) the backup CronJob; the newest run as status.backup. */
export async function ensureBackup(
  ctx: ControllerContext,
  c: Cluster,
): Promise<BackupStatus | undefined> {
  const cron = buildBackupCronJob(c);
  if (cron === null) {
    const ref = { apiVersion: 'batch/v1', kind: 'CronJob', namespace: c.namespace };
    await deleteIfOwned(ctx, c.uid, { ...ref, name: backupCronJobName(c.name) });
    return undefined;
  }
  const applied = await applyOwned(ctx, c.uid, cron);
  const newest = await newestRunOf(ctx, c, applied);
  const run = runStatus(newest ? [newest] : []);
  const last = applied.status?.lastScheduleTime;
  const lastOk = applied.status?.lastSuccessfulTime;
  return {
    ...(run ?? { phase: 'Scheduled', pod: '' }),
    ...(last ? { lastScheduleTime: new Date(last).toISOString() } : {}),
    ...(lastOk ? { lastSuccessfulTime: new Date(lastOk).toISOString() } : {}),
  };
}

/**
 * The newest backup pod of this KVCluster's own CronJob: the pod's controller is a Job (by uid)
 * whose controller is `cron` (by uid). Pods labelled `kvstore.dev/backup=<name>` alone may be
 * the runs of an earlier KVCluster of the same name (its CronJob deleted with
 * `--cascade=orphan`, or its Jobs not yet garbage-collected), whose Succeeded backup showed as
 * this cluster's own. Newest first, so one Job is read per reconcile in the usual case.
 */
async function newestRunOf(
  ctx: ControllerContext,
  c: Cluster,
  cron: V1CronJob,
): Promise<V1Pod | undefined> {
  const cronUid = cron.metadata?.uid;
  if (!cronUid) return undefined;
  const jobs = new Map<string, boolean>();
  for (const pod of newestFirst(await podsLabelled(ctx, c, BACKUP_LABEL))) {
    const owner = pod.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'Job');
    if (!owner) continue;
    let ours = jobs.get(owner.uid);
    if (ours === undefined) {
      const job = await ctx.kube.read<V1Job>({
        apiVersion: 'batch/v1',
        kind: 'Job',
        namespace: c.namespace,
        name: owner.name,
      });
      ours =
        job?.metadata?.uid === owner.uid &&
        (job.metadata.ownerReferences ?? []).some((o) => o.controller && o.uid === cronUid);
      jobs.set(owner.uid, ours);
    }
    if (ours) return pod;
  }
  return undefined;
}

/** The pods a Job made: those whose controller ownerReference is that Job (by uid). */
function podsOf(pods: readonly V1Pod[], job: V1Job): V1Pod[] {
  const uid = job.metadata?.uid;
  return pods.filter((p) =>
    p.metadata?.ownerReferences?.some((o) => o.controller && o.uid === uid),
  );
}

/**
 * spec.restoreFrom: once every pod is ready (`available`), creates the restore Job (once: a
 * Succeeded restore in `previous` status is never run again); its run as status.restore. The run
 * is read from the pods of this KVCluster's own Job only: a KVCluster made again under the same
 * name finds the restore Job and pods of the one before it until the garbage collector removes
 * them (for ever if it was deleted with `--cascade=orphan`), and took their Succeeded run for its
 * own restore, so it never ran one.
 */
export async function ensureRestore(
  ctx: ControllerContext,
  c: Cluster,
  available: boolean,
  previous: KVClusterStatus | undefined,
): Promise<BackupStatus | undefined> {
  const job = buildRestoreJob(c);
  if (job === null) return undefined;
  if (previous?.restore?.phase === 'Succeeded') return previous.restore;
  const name = restoreJobName(c.name);
  const existing = await ctx.kube.read<V1Job>({
    apiVersion: 'batch/v1',
    kind: 'Job',
    namespace: c.namespace,
    name,
  });
  if (existing) {
    const ours = existing.metadata?.ownerReferences?.some((o) => o.controller && o.uid === c.uid);
    if (!ours) {
      const error =
        `Job ${c.namespace}/${name} is not this KVCluster's (left by an earlier KVCluster ` +
        `${c.name}, or made by hand): the restore waits until it is gone; delete it if it stays`;
      return { phase: 'Pending', pod: '', error };
    }
    const pods = podsOf(await podsLabelled(ctx, c, RESTORE_LABEL), existing);
    return runStatus(pods) ?? { phase: 'Running', pod: '' };
  }
  if (!available) return { phase: 'Pending', pod: '' };
  await applyOwned(ctx, c.uid, job, existing);
  await ctx.events.record(
    c,
    'Normal',
    'Restoring',
    `restoring from ${c.spec.restoreFrom!.claimName}:${c.spec.restoreFrom!.path}`,
  );
  return { phase: 'Running', pod: '' };
}
