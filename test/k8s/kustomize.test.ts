// k8s/ (kustomize): rendered from charts/kvstore (never drifts) and builds with kubectl's
// kustomize into the chart's objects. `kubectl apply -k` of it runs on the real node
// (real-node.test.ts: the operator in-cluster reconciles the sample to Available).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  SAMPLE_ARGS,
} from '../../scripts/generate-k8s.ts';
import { type Json, ROOT } from './operator-fixtures.ts';
import { run } from './processes.ts';
import { buildTools } from './tools.ts';

/** A cold tool cache means building kubectl and helm from source. */
const BUILD_TIMEOUT_MS = 60 * 60_000;
const K8S = join(ROOT, 'k8s');
const CRD = 'kvclusters.kvstore.dev';

let bins: { helm: string; kubectl: string };
/** Helm's cache, config and data directories (no cluster is needed: templates and kustomize). */
const helmHome = mkdtempSync(join(tmpdir(), 'kvstore-kustomize-'));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(helmHome, 'cache'),
  HELM_CONFIG_HOME: join(helmHome, 'config'),
  HELM_DATA_HOME: join(helmHome, 'data'),
};
const helmBin = () => bins.helm;

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
  bins = (await buildTools(['helm', 'kubectl'])).bins;
}, BUILD_TIMEOUT_MS);

afterAll(() => rmSync(helmHome, { recursive: true, force: true }));

describe('k8s/ kustomize manifests', () => {
  it('are what scripts/generate-k8s.ts renders from the chart (else: node scripts/generate-k8s.ts)', async () => {
    expect(diffK8s(await renderK8s(helmBin()), existingK8s())).toEqual([]);
  }, 60_000);

  it("build with kubectl's kustomize into the chart's objects", async () => {
    const built = objects((await run(bins.kubectl, ['kustomize', K8S])).stdout);
    const helm = async (namespace: string, args: string[]) =>
      (
        await run(
          helmBin(),
          ['template', RELEASE, join(ROOT, 'charts/kvstore'), '-n', namespace, ...args],
          { env: helmEnv },
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
});
