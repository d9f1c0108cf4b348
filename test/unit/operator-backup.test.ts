// Operator backups and restores: the CronJob of spec.backup, the Job of spec.restoreFrom, the
// spec's validation, and a run's status read from kvctl's termination message (pure).

import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  BACKUP_LABEL,
  buildBackupCronJob,
  buildRestoreJob,
  type Cluster,
  RESTORE_LABEL,
  runStatus,
} from '../../operator/controller/index.ts';

function cluster(spec: Record<string, unknown> = {}): Cluster {
  const r = parseKVCluster('kv', spec);
  if (!r.ok) throw new Error(r.message);
  return { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 3, spec: r.spec };
}

const secret = { clusterSecret: { name: 'kv-cluster-secret', key: 'secret' } };

describe('spec.backup', () => {
  it('makes a CronJob running kvctl backup onto the claim, owned by the KVCluster', () => {
    const c = cluster({
      image: 'kvstore:2',
      auth: secret,
      backup: { schedule: '0 3 * * *', claimName: 'kv-backups' },
    });
    const cron = buildBackupCronJob(c)!;
    expect(cron.metadata).toMatchObject({ name: 'kv-backup', namespace: 'prod' });
    expect(cron.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'KVCluster',
      uid: 'u-1',
      controller: true,
    });
    expect(cron.spec).toMatchObject({
      schedule: '0 3 * * *',
      suspend: false,
      concurrencyPolicy: 'Forbid',
    });
    const pod = cron.spec!.jobTemplate.spec!.template;
    expect(pod.metadata?.labels).toEqual({ [BACKUP_LABEL]: 'kv' });
    const container = pod.spec!.containers[0]!;
    expect(container.image).toBe('kvstore:2');
    expect(container.command).toEqual([
      'kvctl',
      '--host',
      'kv-headless.prod.svc',
      '--http-port',
      '9090',
      'backup',
      '/backups/kv-{time}',
      '--summary-file',
      '/dev/termination-log',
    ]);
    expect(container.env).toEqual([
      {
        name: 'KVCTL_CLUSTER_SECRET',
        valueFrom: { secretKeyRef: { name: 'kv-cluster-secret', key: 'secret' } },
      },
    ]);
    expect(pod.spec!.volumes).toEqual([
      { name: 'backups', persistentVolumeClaim: { claimName: 'kv-backups' } },
    ]);
    expect(pod.spec!.restartPolicy).toBe('Never');
    // The image's uid, and the claim group-owned by its gid where the storage honours fsGroup.
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(pod.spec!.securityContext).toMatchObject({ fsGroup: 1000 });
    expect(buildBackupCronJob(cluster())).toBeNull();
  });

  it('refuses a schedule that is not cron and a claim name that is not a name', () => {
    expect(parseKVCluster('kv', { backup: { schedule: '@daily', claimName: 'b' } }).ok).toBe(true);
    const bad = parseKVCluster('kv', { backup: { schedule: 'every day', claimName: 'b' } });
    expect(bad.ok).toBe(false);
    expect(
      parseKVCluster('kv', { backup: { schedule: '0 3 * * *', claimName: 'B/../x' } }).ok,
    ).toBe(false);
  });
});

describe('spec.restoreFrom', () => {
  it('makes a Job running kvctl restore from the path on the claim', () => {
    const c = cluster({ restoreFrom: { claimName: 'kv-backups', path: '/kv-20261203T030000Z' } });
    const job = buildRestoreJob(c)!;
    expect(job.metadata?.name).toBe('kv-restore');
    expect(job.spec?.backoffLimit).toBe(6);
    const pod = job.spec!.template;
    expect(pod.metadata?.labels).toEqual({ [RESTORE_LABEL]: 'kv' });
    expect(pod.spec!.containers[0]!.command).toContain('/backups/kv-20261203T030000Z');
    expect(pod.spec!.containers[0]!.command).toContain('restore');
    expect(buildRestoreJob(cluster())).toBeNull();
  });
});

describe('runStatus', () => {
  const pod = (name: string, created: string, phase: string, message?: string): V1Pod => ({
    metadata: { name, creationTimestamp: new Date(created) },
    status: {
      phase,
      startTime: new Date(created),
      containerStatuses:
        message === undefined
          ? []
          : [
              {
                name: 'kvctl',
                image: '',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: {
                  terminated: {
                    exitCode: phase === 'Succeeded' ? 0 : 1,
                    finishedAt: new Date('2030-01-01T00:05:00Z'),
                    message,
                  },
                },
              },
            ],
    },
  });

  it('reports the newest run with the counts kvctl wrote (its path on the claim, as restoreFrom takes it), or its error', () => {
    const ok = JSON.stringify({
      ok: true,
      path: '/backups/kv-x',
      records: 12,
      keys: 10,
      tombstones: 2,
      bytes: 4096,
    });
    const failed = JSON.stringify({
      ok: false,
      error: 'backup: disk full (ENOSPC); no backup was kept',
    });
    expect(
      runStatus([
        pod('a', '2030-01-01T00:00:00Z', 'Failed', failed),
        pod('b', '2030-01-02T00:00:00Z', 'Succeeded', ok),
      ]),
    ).toEqual({
      phase: 'Succeeded',
      pod: 'b',
      startTime: '2030-01-02T00:00:00.000Z',
      completionTime: '2030-01-01T00:05:00.000Z',
      path: 'kv-x',
      records: 12,
      keys: 10,
      tombstones: 2,
      bytes: 4096,
    });
    expect(runStatus([pod('a', '2030-01-01T00:00:00Z', 'Failed', failed)])).toMatchObject({
      phase: 'Failed',
      error: 'backup: disk full (ENOSPC); no backup was kept',
    });
    expect(runStatus([pod('c', '2030-01-03T00:00:00Z', 'Pending')])).toMatchObject({
      phase: 'Running',
      pod: 'c',
    });
    expect(runStatus([pod('d', '2030-01-03T00:00:00Z', 'Failed', 'not json')])).toEqual({
      phase: 'Failed',
      pod: 'd',
      startTime: '2030-01-03T00:00:00.000Z',
      completionTime: '2030-01-01T00:05:00.000Z',
    });
    expect(runStatus([])).toBeUndefined();
  });
});
