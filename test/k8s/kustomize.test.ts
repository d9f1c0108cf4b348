// k8s/ (kustomize): rendered from charts/kvstore (never drifts), builds with kubectl's kustomize,
// and `kubectl apply -k` brings up the CRD, the operator and the sample on a real control plane.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  diffK8s,
  existingK8s,
  NAMESPACE,
  OPERATOR_ARGS,
  RELEASE,
  renderK8s,
  SAMPLE,
  SAMPLE_ARGS,
} from '../../scripts/generate-k8s.ts';
import { run } from './control-plane-lib.ts';
import {
  getJson,
  type Json,
  type KVC,
  type OperatorProcess,
  ROOT,
  StandIn,
  serviceAccountKubeconfig,
  startOperator,
  stopOperators,
  waitUntil,
} from './operator-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const K8S = join(ROOT, 'k8s');
const CRD = 'kvclusters.kvstore.dev';

const k = useControlPlane({ nodes: 2 });
let operator: OperatorProcess | undefined;
const standIn = new StandIn();

const helmBin = () => join(k().binDir, 'helm');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

function objects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** An object without the labels that differ on purpose (Helm-only ones). */
function comparable(o: Obj): Obj {
  const labels = { ...o.metadata.labels };
  delete labels['helm.sh/chart'];
  delete labels['app.kubernetes.io/managed-by'];
  const copy = JSON.parse(JSON.stringify(o)) as Obj & { spec?: Json };
  copy.metadata.labels = labels;
  const tpl = copy.spec?.template?.metadata;
  if (tpl?.labels) {
    delete tpl.labels['helm.sh/chart'];
    delete tpl.labels['app.kubernetes.io/managed-by'];
  }
  return copy;
}

const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

beforeAll(async () => {
  await standIn.start();
}, START_TIMEOUT_MS);

afterAll(async () => {
  await operator?.stop();
  await stopOperators();
  await standIn.close();
}, 120_000);

describe('k8s/ kustomize manifests', () => {
  it('are what scripts/generate-k8s.ts renders from the chart (else: node scripts/generate-k8s.ts)', async () => {
    expect(diffK8s(await renderK8s(helmBin()), existingK8s())).toEqual([]);
  }, 60_000);

  it("build with kubectl's kustomize into the chart's objects", async () => {
    const built = objects(await k().kubectl(['kustomize', K8S]));
    const helm = async (namespace: string, args: string[]) =>
      (
        await run(
          helmBin(),
          ['template', RELEASE, join(ROOT, 'charts/kvstore'), '-n', namespace, ...args],
          {
            env: { ...process.env, ...k().env },
          },
        )
      ).stdout;
    const chart = [
      ...objects(await helm(NAMESPACE, OPERATOR_ARGS)),
      ...objects(
        await helm('default', [...SAMPLE_ARGS, '-s', 'templates/cluster/kvcluster.yaml']),
      ).map((o) => ({ ...o, metadata: { ...o.metadata, namespace: undefined } })),
      ...objects(readFileSync(join(ROOT, 'charts/kvstore/crds', `${CRD}.yaml`), 'utf8')),
    ].map((o) => JSON.parse(JSON.stringify(o)) as Obj);
    const byKey = new Map(chart.map((o) => [key(o), comparable(o)]));
    const kinds = built.map((o) => o.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['Namespace', 'CustomResourceDefinition', 'Deployment', 'KVCluster']),
    );
    for (const o of built.filter((x) => x.kind !== 'Namespace')) {
      expect(byKey.get(key(o)), key(o)).toEqual(comparable(o));
    }
    expect(built.length).toBe(chart.length + 1);
  }, 60_000);

  it('apply to the control plane: the CRD, the operator Deployment and the sample KVCluster appear, and the operator reconciles the sample', async () => {
    // kwok has no volume provisioner: a default StorageClass with pre-made volumes.
    await k().kubectl(['apply', '-f', join(ROOT, 'operator/samples/kwok-volumes.yaml')]);

    // The README's recipe: the CRD first (a KVCluster cannot be applied before its kind is
    // served), then everything.
    await k().kubectl(['apply', '-k', join(K8S, 'crd')]);
    await k().kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${CRD}`]);
    const out = await k().kubectl(['apply', '-k', K8S]);
    expect(out).toContain(`kvcluster.kvstore.dev/${SAMPLE} created`);
    expect(out).toContain('deployment.apps/kvstore-operator created');
    await k().kubectl(
      ['rollout', 'status', '-n', NAMESPACE, 'deployment/kvstore-operator', '--timeout=120s'],
      { timeoutMs: 140_000 },
    );
    const deploy = await getJson(k(), ['deployment', 'kvstore-operator', '-n', NAMESPACE]);
    expect(deploy?.status.readyReplicas).toBe(2);
    expect(deploy?.metadata.labels['helm.sh/chart']).toBeUndefined();
    const sample = await getJson<KVC>(k(), ['kvcluster', SAMPLE, '-n', 'default']);
    expect(sample?.spec).toMatchObject({ replicas: 3, image: 'kvstore:0.1.0' });

    // What is applied is what k8s/ says (kubectl diff exits 0 when nothing would change).
    const diff = await k().kubectlResult(['diff', '-k', K8S], { allowFailure: true });
    expect(diff.code, diff.stdout + diff.stderr).toBe(0);

    // The operator, as k8s/'s ServiceAccount with k8s/'s Deployment flags, reconciles the sample.
    const args = (deploy.spec.template.spec.containers[0].args as string[]).slice(1);
    const kubeconfig = await serviceAccountKubeconfig(k());
    operator = await startOperator(kubeconfig, [
      ...args,
      `--lease-namespace=${NAMESPACE}`,
      '--poll-ms=300',
      '--resync-ms=3000',
      '--pod-url-template',
      standIn.template,
      '--http-host=127.0.0.1',
      '--http-port=0',
    ]);
    await waitUntil(
      `${SAMPLE} Available`,
      async () => {
        const o = await getJson<KVC>(k(), ['kvcluster', SAMPLE, '-n', 'default']);
        return o?.status?.phase === 'Available' && o.status.readyReplicas === 3;
      },
      120_000,
    );
  }, 300_000);
});
