// A local-path volume provisioner for the real test node, like kind's: each claim of the default StorageClass gets a directory on the node as a `local` PersistentVolume; a released volume with reclaim policy Delete loses its directory and its object.
//
// Usage: node test/k8s/local-path-provisioner.ts <kubeconfig> <data dir> <node name>

import { chmod, mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  StorageV1Api,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import { PROVISIONER } from './node-config.ts';

const POLL_MS = 1_000;

function log(msg: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }));
}

/** The claims this provisioner owns that the scheduler placed on this node and nothing bound yet. */
function wanted(pvc: V1PersistentVolumeClaim, node: string): boolean {
  const a = pvc.metadata?.annotations ?? {};
  return (
    pvc.status?.phase === 'Pending' &&
    !pvc.spec?.volumeName &&
    a['volume.kubernetes.io/storage-provisioner'] === PROVISIONER &&
    a['volume.kubernetes.io/selected-node'] === node
  );
}

async function provision(
  core: CoreV1Api,
  storage: StorageV1Api,
  pvc: V1PersistentVolumeClaim,
  dataDir: string,
  node: string,
): Promise<void> {
  const uid = pvc.metadata?.uid ?? '';
  const name = `pvc-${uid}`;
  const path = join(dataDir, `${name}_${pvc.metadata?.namespace}_${pvc.metadata?.name}`);
  const className = pvc.spec?.storageClassName ?? '';
  const sc = await storage.readStorageClass({ name: className });
  await mkdir(path, { recursive: true });
  // As kind's provisioner: world-writable, so a pod's non-root user can write without fsGroup.
  await chmod(path, 0o777);
  const pv: V1PersistentVolume = {
    metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER } },
    spec: {
      capacity: { storage: pvc.spec?.resources?.requests?.storage ?? '1Gi' },
      accessModes: pvc.spec?.accessModes ?? ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: sc.reclaimPolicy ?? 'Delete',
      storageClassName: className,
      volumeMode: 'Filesystem',
      claimRef: {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        namespace: pvc.metadata?.namespace,
        name: pvc.metadata?.name,
        uid,
      },
      local: { path },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }],
            },
          ],
        },
      },
    },
  };
  await core.createPersistentVolume({ body: pv });
  log('provisioned', { pv: name, claim: `${pvc.metadata?.namespace}/${pvc.metadata?.name}` });
}

async function reclaim(core: CoreV1Api, pv: V1PersistentVolume, dataDir: string): Promise<void> {
  const path = pv.spec?.local?.path;
  // Only ever a directory this provisioner made.
  if (path && resolve(path).startsWith(`${resolve(dataDir)}/`)) {
    await rm(path, { recursive: true, force: true });
  }
  await core.deletePersistentVolume({ name: pv.metadata?.name ?? '' });
  log('deleted', { pv: pv.metadata?.name });
}

async function tick(core: CoreV1Api, storage: StorageV1Api, dataDir: string, node: string) {
  const [claims, volumes] = await Promise.all([
    core.listPersistentVolumeClaimForAllNamespaces(),
    core.listPersistentVolume(),
  ]);
  const existing = new Set(volumes.items.map((v) => v.metadata?.name));
  for (const pvc of claims.items) {
    if (wanted(pvc, node) && !existing.has(`pvc-${pvc.metadata?.uid}`)) {
      await provision(core, storage, pvc, dataDir, node);
    }
  }
  for (const pv of volumes.items) {
    if (
      pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'] === PROVISIONER &&
      pv.status?.phase === 'Released' &&
      pv.spec?.persistentVolumeReclaimPolicy === 'Delete'
    ) {
      await reclaim(core, pv, dataDir);
    }
  }
}

async function main(): Promise<void> {
  const [kubeconfig, dataDir, node] = process.argv.slice(2);
  if (!kubeconfig || !dataDir || !node) {
    console.error('usage: local-path-provisioner.ts <kubeconfig> <data dir> <node name>');
    process.exit(2);
  }
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const storage = kc.makeApiClient(StorageV1Api);
  await mkdir(dataDir, { recursive: true });
  let stopping = false;
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => (stopping = true));
  log('started', { provisioner: PROVISIONER, node });
  while (!stopping) {
    try {
      await tick(core, storage, dataDir, node);
    } catch (e) {
      log('tick failed', { error: (e as Error).message });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

await main();
