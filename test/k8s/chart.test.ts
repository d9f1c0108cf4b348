// charts/kvstore against a real control plane: lint, server-side dry run of the rendered
// manifests, install, the operator reconciling the chart's KVCluster to Available, upgrade
// (CRD and values), uninstall keeping the CRD.
//
// kwok runs no containers: the chart's operator pods become Ready without running anything, so
// the test runs the operator from this repository, as the chart's ServiceAccount and with the
// chart's Deployment flags, and stands in for the nodes' admin API (as operator.test.ts does).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { type RunResult, run } from './control-plane-lib.ts';
import {
  createStaticVolumes,
  getJson,
  type Json,
  type KVC,
  NODE,
  type OperatorProcess,
  RBAC_FILE,
  ROOT,
  STORAGE_CLASS,
  StandIn,
  serviceAccountKubeconfig,
  startOperator,
  stopOperators,
  waitUntil,
} from './operator-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const CHART = join(ROOT, 'charts/kvstore');
const RELEASE = 'kvstore';
const NS = 'kvstore-system';
const CRD = 'kvclusters.kvstore.dev';
/** kwok has no volume provisioner: the claims bind to pre-made volumes of this class. */
const BASE_VALUES = ['--set', `cluster.storage.storageClassName=${STORAGE_CLASS}`];
/** Every optional object on, for lint and the server-side dry run. */
const ALL_TOGGLES = [
  '--set',
  'networkPolicy.enabled=true,networkPolicy.allowExternal=false',
  '--set',
  'networkPolicy.clientNamespaceSelector.matchLabels.team=apps',
  '--set',
  'operator.metrics.serviceMonitor.enabled=true,cluster.metrics.podMonitor.enabled=true',
  '--set',
  'cluster.metrics.serviceMonitor.enabled=false,prometheusRule.enabled=true',
  '--set',
  'grafanaDashboard.enabled=true,operator.watchNamespace=kv-dry',
  '--set',
  'commonLabels.team=kv,commonAnnotations.owner=kv',
  '--set',
  'cluster.auth.passwordSecret.name=kv-password,cluster.auth.clusterSecret.name=kv-cluster',
  '--set',
  'cluster.tls.clientSecretName=kv-tls,cluster.tls.peerSecretName=kv-peer-tls',
  // Helm reads numbers as floats: the KVCluster must still get integers (4194304, not
  // 4.194304e+06), which the apiserver's dry run below checks against the CRD.
  '--set',
  'cluster.settings.maxValueBytes=4194304,cluster.settings.maxLineBytes=5242880',
  '--set',
  'cluster.settings.readRepairChance=0.25,cluster.settings.antiEntropyIntervalMs=300000',
];
/** Fast operator timings for the test (flags given later win). */
const FAST = [
  '--poll-ms=300',
  '--resync-ms=3000',
  '--lease-duration-ms=3000',
  '--renew-deadline-ms=2000',
  '--retry-period-ms=300',
];

/** Minimal prometheus-operator CRDs (open schemas), so the monitoring objects can be validated. */
function monitoringCrd(kind: string, plural: string): string {
  return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ${plural}.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ${kind}, listKind: ${kind}List, plural: ${plural}, singular: ${kind.toLowerCase()}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
`;
}

const k = useControlPlane({ nodes: 2 });
let operator: OperatorProcess | undefined;
const standIn = new StandIn();

/** helm against the control plane, resolving with the exit code and both outputs. */
function helm(args: string[], timeoutMs = 240_000): Promise<RunResult> {
  return run(join(k().binDir, 'helm'), ['--kubeconfig', k().kubeconfig, ...args], {
    env: { ...process.env, ...k().env },
    allowFailure: true,
    timeoutMs,
  });
}

async function helmOk(args: string[], timeoutMs?: number): Promise<string> {
  const r = await helm(args, timeoutMs);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const kvc = () => getJson<KVC>(k(), ['kvcluster', RELEASE, '-n', NS]);

async function available(replicas: number, timeoutMs = 120_000): Promise<KVC> {
  return waitUntil<KVC>(
    `KVCluster ${NS}/${RELEASE} Available with ${replicas} ready nodes`,
    async () => {
      const o = await kvc();
      const s = o?.status;
      if (!o || !s) return undefined;
      return s.phase === 'Available' &&
        s.readyReplicas === replicas &&
        s.observedGeneration === o.metadata?.generation
        ? o
        : undefined;
    },
    timeoutMs,
  );
}

/** The names of the KVCluster CRD's printer columns, as the cluster has them. */
async function columns(): Promise<string[]> {
  const now = await getJson(k(), ['crd', CRD]);
  return (now.spec.versions[0].additionalPrinterColumns as Json[]).map((c) => c.name);
}

function objects(text: string): Json[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Json)
    .filter((o) => o !== null);
}

interface Rbac {
  kind: string;
  metadata: { name: string };
  rules?: unknown[];
}

beforeAll(async () => {
  await createStaticVolumes(k(), 10);
  await k().kubectl(['apply', '-f', '-'], {
    input:
      monitoringCrd('ServiceMonitor', 'servicemonitors') +
      monitoringCrd('PodMonitor', 'podmonitors') +
      monitoringCrd('PrometheusRule', 'prometheusrules'),
  });
  await standIn.start();
}, START_TIMEOUT_MS);

afterAll(async () => {
  await operator?.stop();
  await stopOperators();
  await standIn.close();
}, 120_000);

describe('charts/kvstore', () => {
  it('lints clean, with the defaults and with every toggle on', async () => {
    for (const values of [[], ALL_TOGGLES]) {
      const out = await helmOk(['lint', '--strict', CHART, ...values]);
      expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  }, 60_000);

  it('rejects inconsistent values: the schema and the templates fail with the reason', async () => {
    const template = (...set: string[]) =>
      helm(['template', RELEASE, CHART, ...set.flatMap((s) => ['--set', s])]);
    const cases: [string[], RegExp][] = [
      [
        ['cluster.readQuorum=3', 'cluster.replicationFactor=2'],
        /cluster\.readQuorum \(3\) must not exceed cluster\.replicationFactor \(2\)/,
      ],
      [['cluster.writeQuorum=4'], /cluster\.writeQuorum \(4\) must not exceed/],
      // Quorums that do not overlap need the opt-in, as the CRD's rule does.
      [
        ['cluster.readQuorum=1'],
        /cluster\.readQuorum \(1\) \+ cluster\.writeQuorum \(2\) must exceed cluster\.replicationFactor \(3\).*cluster\.allowStaleReads=true/,
      ],
      [
        ['cluster.replicas=2'],
        /cluster\.replicationFactor \(3\) must not exceed cluster\.replicas \(2\)/,
      ],
      [['cluster.ports.peer=8081'], /client, http and peer must differ/],
      [['operator.leaderElection.enabled=false'], /operator\.replicas is 2 but/],
      [['fullnameOverride=a-name-that-is-much-too-long-for-a-kvcluster-over-52-chars'], /52/],
      [['cluster.readQuorum=0'], /readQuorum.*minimum/],
      [['cluster.replica=3'], /additional properties 'replica' not allowed/],
      [['operator.logLevel=loud'], /logLevel/],
      [['cluster.settings.maxValueByte=1'], /maxValueByte/],
      [['cluster.settings.maxHints=-1'], /maxHints.*minimum/],
    ];
    for (const [set, error] of cases) {
      const r = await template(...set);
      expect(r.code, set.join(',')).not.toBe(0);
      expect(r.stderr, set.join(',')).toMatch(error);
    }
    const stale = await template('cluster.readQuorum=1', 'cluster.allowStaleReads=true');
    expect(stale.code, stale.stderr).toBe(0);
    expect(stale.stdout).toMatch(/readQuorum: 1\n\s+writeQuorum: 2\n\s+allowStaleReads: true\n/);
  }, 60_000);

  it('installs: the CRD from crds/, the operator Deployment (2 replicas, leader election), RBAC as operator/rbac.yaml, NOTES with the nc recipe', async () => {
    const out = await helmOk([
      'install',
      RELEASE,
      CHART,
      '-n',
      NS,
      '--create-namespace',
      ...BASE_VALUES,
      '--wait',
      '--timeout=3m',
    ]);
    expect(out).toContain(`kubectl -n ${NS} port-forward svc/${RELEASE} 8081:8081`);
    expect(out).toContain('echo "PING" | nc -N localhost 8081');

    const crd = await getJson(k(), ['crd', CRD]);
    expect(crd?.spec.versions[0].name).toBe('v1alpha1');
    const deploy = await getJson(k(), ['deployment', 'kvstore-operator', '-n', NS]);
    expect(deploy?.spec.replicas).toBe(2);
    expect(deploy?.status.readyReplicas).toBe(2);
    const pod = deploy?.spec.template.spec;
    const container = pod.containers[0];
    expect(container.args[0]).toBe('kvstore-operator');
    expect(container.command).toBeUndefined();
    expect(container.args).toContain('--leader-elect=true');
    expect(container.args).toContain('--lease-name=kvstore-operator');
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });

    // The same permissions as operator/rbac.yaml, object by object.
    const want = parseAllDocuments(readFileSync(RBAC_FILE, 'utf8'))
      .map((d) => d.toJS() as Rbac | null)
      .filter((o): o is Rbac => o?.rules !== undefined);
    for (const w of want) {
      const kind = w.kind.toLowerCase();
      const got = await getJson(k(), [
        kind,
        w.metadata.name,
        ...(kind === 'role' ? ['-n', NS] : []),
      ]);
      expect(got?.rules, `${w.kind} ${w.metadata.name}`).toEqual(
        (w.rules as Record<string, unknown>[]).map((r) => ({ ...r })),
      );
    }
    // Not more: the ServiceAccount cannot delete Secrets or pods.
    const can = async (verb: string, what: string, ...more: string[]) =>
      (
        await k().kubectlResult(
          [
            'auth',
            'can-i',
            verb,
            what,
            ...more,
            '-n',
            NS,
            `--as=system:serviceaccount:${NS}:kvstore-operator`,
          ],
          { allowFailure: true },
        )
      ).stdout.trim();
    // Its own Secrets watched and put back (patch) when changed by hand; never deleted.
    for (const verb of ['get', 'list', 'watch', 'create', 'patch'])
      expect(await can(verb, 'secrets')).toBe('yes');
    expect(await can('update', 'secrets')).toBe('no');
    expect(await can('delete', 'secrets')).toBe('no');
    // A pod whose file system grows on a restart is evicted, never deleted.
    expect(await can('create', 'pods', '--subresource=eviction')).toBe('yes');
    expect(await can('delete', 'pods')).toBe('no');
    // Deleted (pods orphaned) only to make it again with a larger claim template.
    expect(await can('delete', 'statefulsets')).toBe('yes');
    expect(await can('patch', 'statefulsets')).toBe('yes');
    expect(await can('patch', 'persistentvolumeclaims')).toBe('yes');
    expect(await can('delete', 'persistentvolumeclaims')).toBe('no');
  }, 300_000);

  it("reconciles the chart's KVCluster to Available: the operator runs as the chart's ServiceAccount with the Deployment's flags", async () => {
    const deploy = await getJson(k(), ['deployment', 'kvstore-operator', '-n', NS]);
    const args = (deploy.spec.template.spec.containers[0].args as string[]).slice(1);
    const kubeconfig = await serviceAccountKubeconfig(k());
    // What the Deployment's downward API gives the pods.
    const saved = { ns: process.env.POD_NAMESPACE, id: process.env.KVSTORE_OPERATOR_IDENTITY };
    process.env.POD_NAMESPACE = NS;
    process.env.KVSTORE_OPERATOR_IDENTITY = 'kvstore-operator-test';
    try {
      operator = await startOperator(kubeconfig, [
        ...args,
        ...FAST,
        '--pod-url-template',
        standIn.template,
        '--http-host=127.0.0.1',
        '--http-port=0',
      ]);
    } finally {
      if (saved.ns === undefined) delete process.env.POD_NAMESPACE;
      else process.env.POD_NAMESPACE = saved.ns;
      if (saved.id === undefined) delete process.env.KVSTORE_OPERATOR_IDENTITY;
      else process.env.KVSTORE_OPERATOR_IDENTITY = saved.id;
    }
    const o = await available(3);
    expect(o.spec).toMatchObject({ replicas: 3, image: 'kvstore:0.1.0', readQuorum: 2 });
    const lease = await waitUntil('the Lease held by the test operator', async () => {
      const l = await getJson(k(), ['lease', 'kvstore-operator', '-n', NS]);
      return l?.spec.holderIdentity === 'kvstore-operator-test' ? l : undefined;
    });
    expect(lease.metadata.namespace).toBe(NS);
    const sts = await getJson(k(), ['statefulset', RELEASE, '-n', NS]);
    expect(sts?.spec.template.spec.containers[0].image).toBe('kvstore:0.1.0');
    const svc = await getJson(k(), ['service', RELEASE, '-n', NS]);
    expect(svc?.spec.ports.map((p: Json) => p.port)).toContain(8081);
    // The values name no cluster secret: the operator made one and the pods take it.
    const env = sts?.spec.template.spec.containers[0].env as Json[];
    const ref = env.find((e) => e.name === 'KV_CLUSTER_SECRET')?.valueFrom.secretKeyRef;
    expect(ref).toEqual({ name: `${RELEASE}-cluster-secret`, key: 'secret' });
    expect(await getJson(k(), ['secret', ref.name, '-n', NS])).not.toBeNull();
  }, 180_000);

  it('renders manifests the apiserver accepts (server-side dry run), every toggle on, and the upgrade hook', async () => {
    await k().kubectl(['create', 'namespace', 'kv-dry']);
    for (const extra of [[], ['--is-upgrade']]) {
      const manifests = await helmOk([
        'template',
        'dry',
        CHART,
        '-n',
        'kv-dry',
        ...BASE_VALUES,
        ...ALL_TOGGLES,
        ...extra,
      ]);
      const kinds = parseAllDocuments(manifests)
        .map((d) => (d.toJS() as { kind?: string } | null)?.kind)
        .filter((x) => x !== undefined);
      const r = await k().kubectlResult(['apply', '--dry-run=server', '-f', '-'], {
        input: manifests,
        allowFailure: true,
      });
      expect(r.code, r.stderr).toBe(0);
      // Only the notice that kubectl (client-side apply) did not create the CRD (Helm did).
      const warnings = r.stderr.split('\n').filter((l) => l.trim() !== '');
      for (const w of warnings) {
        expect(w).toMatch(
          new RegExp(
            `^Warning: resource customresourcedefinitions/${CRD} is missing the kubectl.kubernetes.io/last-applied-configuration annotation`,
          ),
        );
      }
      expect(r.stdout.match(/\(server dry run\)/g)?.length).toBe(kinds.length);
      for (const kind of [
        'KVCluster',
        'Deployment',
        'NetworkPolicy',
        'PodMonitor',
        'ServiceMonitor',
        'PrometheusRule',
        'ConfigMap',
        'Role',
        'RoleBinding',
      ]) {
        expect(kinds).toContain(kind);
      }
      // operator.watchNamespace: a Role in that namespace instead of a ClusterRole; the only
      // ClusterRole is the CRD upgrade hook's, on upgrade. The CRD itself is never a template.
      const clusterRoles = objects(manifests).filter((o) => o.kind === 'ClusterRole');
      expect(clusterRoles.map((o) => o.metadata.name)).toEqual(
        extra.length > 0 ? ['dry-kvstore-crd-upgrade'] : [],
      );
      expect(kinds).not.toContain('CustomResourceDefinition');
      expect(kinds.includes('Job')).toBe(extra.length > 0);
      const cluster = objects(manifests).find((o) => o.kind === 'KVCluster');
      expect(cluster?.spec.settings).toEqual({
        antiEntropyIntervalMs: 300000,
        maxLineBytes: 5242880,
        maxValueBytes: 4194304,
        readRepairChance: 0.25,
      });
    }
    await k().kubectl(['delete', 'namespace', 'kv-dry', '--wait=false']);
  }, 120_000);

  it("ships monitoring/'s alert rules and dashboard unchanged, and scrapes the nodes as job kvstore", async () => {
    const rendered = objects(
      await helmOk(['template', RELEASE, CHART, '-n', NS, ...BASE_VALUES, ...ALL_TOGGLES]),
    );
    const rule = rendered.find((o) => o.kind === 'PrometheusRule');
    const rules = parse(
      readFileSync(join(ROOT, 'monitoring/prometheus-rules.yaml'), 'utf8'),
    ) as Json;
    expect(rule.spec.groups).toEqual(rules.groups);
    const dashboard = rendered.find((o) => o.kind === 'ConfigMap');
    expect(dashboard.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard.data['kvstore.json'])).toEqual(
      JSON.parse(readFileSync(join(CHART, 'files/grafana-dashboard.json'), 'utf8')),
    );
    const podMonitor = rendered.find((o) => o.kind === 'PodMonitor' && o.metadata.name === RELEASE);
    // job = the pods' app.kubernetes.io/name, which the operator sets to kvstore.
    expect(podMonitor.spec.jobLabel).toBe('app.kubernetes.io/name');
    expect(podMonitor.spec.selector.matchLabels['app.kubernetes.io/name']).toBe('kvstore');
  }, 60_000);

  it("the CRD upgrade hook's ServiceAccount applies the chart's CRD with apply-crd, and may change nothing else", async () => {
    // kwok completes a Job's pods without running them (real-node.test.ts runs the Job for
    // real): here the hook's own objects are created and its command runs with their identity.
    const hook = objects(
      await helmOk([
        'template',
        RELEASE,
        CHART,
        '-n',
        NS,
        '--is-upgrade',
        '--show-only',
        'templates/crd-upgrade.yaml',
      ]),
    );
    const job = hook.find((o) => o.kind === 'Job');
    const setup = hook.filter((o) => o.kind !== 'Job');
    expect(setup.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'ServiceAccount',
    ]);
    const sa = job.spec.template.spec.serviceAccountName as string;
    const container = job.spec.template.spec.containers[0];
    expect(container.args.slice(0, 2)).toEqual(['kvstore-operator', 'apply-crd']);
    const file = join(k().dir, 'hook-crd.json');
    const hookCrd = setup.find((o) => o.kind === 'ConfigMap').data['crd.json'] as string;
    writeFileSync(file, hookCrd);
    // The hook applies the chart's CRD, every key of it.
    const chartCrd = parse(readFileSync(join(CHART, 'crds', `${CRD}.yaml`), 'utf8')) as Json;
    expect(JSON.parse(hookCrd)).toEqual(chartCrd);
    await k().kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ items: setup, kind: 'List', apiVersion: 'v1' }),
    });
    try {
      const can = async (verb: string, what: string) =>
        (
          await k().kubectlResult(
            ['auth', 'can-i', verb, what, `--as=system:serviceaccount:${NS}:${sa}`],
            { allowFailure: true },
          )
        ).stdout.trim();
      expect(await can('patch', `customresourcedefinitions/${CRD}`)).toBe('yes');
      expect(await can('get', `customresourcedefinitions/${CRD}`)).toBe('yes');
      expect(
        await can('patch', 'customresourcedefinitions/servicemonitors.monitoring.coreos.com'),
      ).toBe('no');
      expect(await can('create', 'customresourcedefinitions')).toBe('no');
      expect(await can('delete', `customresourcedefinitions/${CRD}`)).toBe('no');
      expect(await can('list', 'customresourcedefinitions')).toBe('no');

      // Stand in for the CRD of an older chart: one printer column short.
      const old = JSON.parse(hookCrd) as Json;
      old.spec.versions[0].additionalPrinterColumns =
        old.spec.versions[0].additionalPrinterColumns.filter((c: Json) => c.name !== 'Image');
      const oldFile = join(k().dir, 'old-crd.yaml');
      writeFileSync(oldFile, JSON.stringify(old));
      await k().kubectl([
        'apply',
        '--server-side',
        '--force-conflicts',
        '--field-manager=helm',
        '-f',
        oldFile,
      ]);
      expect(await columns()).not.toContain('Image');

      const kubeconfig = await serviceAccountKubeconfig(k(), sa, NS);
      const applyCrd = (args: string[]) =>
        run(NODE, [join(ROOT, 'bin/kvstore-operator.js'), 'apply-crd', ...args], {
          env: { ...process.env, KUBECONFIG: kubeconfig },
          allowFailure: true,
        });
      const r = await applyCrd(
        container.args.slice(2).map((a: string) => a.replace('/crd/crd.json', file)),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(await columns()).toContain('Image');
      // The schema arrived whole: defaults, CEL rules, x-kubernetes-* keys.
      const applied = await getJson(k(), ['crd', CRD]);
      expect(applied.spec.versions).toHaveLength(1);
      expect(applied.spec.versions[0].schema).toEqual(chartCrd.spec.versions[0].schema);
      expect(JSON.stringify(applied.spec.versions[0].schema)).toContain('x-kubernetes-validations');
      // Another CRD is refused, with the API server's reason.
      const other = join(k().dir, 'other-crd.json');
      writeFileSync(
        other,
        JSON.stringify(parse(monitoringCrd('PodMonitor', 'podmonitors').replace(/---\n$/, ''))),
      );
      const refused = await applyCrd([`--file=${other}`]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /crd: cannot apply podmonitors\.monitoring\.coreos\.com: .*forbidden/,
      );
    } finally {
      await k().kubectl(['delete', '-f', '-', '--ignore-not-found'], {
        input: JSON.stringify({ items: setup, kind: 'List', apiVersion: 'v1' }),
      });
    }
  }, 120_000);

  it('upgrades: changed values reach the KVCluster and the Deployment, the CRD hook objects are gone after', async () => {
    const secretUid = (await getJson(k(), ['secret', `${RELEASE}-cluster-secret`, '-n', NS]))
      ?.metadata.uid;
    expect(secretUid).toBeTruthy();

    await helmOk([
      'upgrade',
      RELEASE,
      CHART,
      '-n',
      NS,
      '--reuse-values',
      '--set',
      'cluster.replicas=4,operator.podLabels.upgraded=yes',
      '--wait',
      '--timeout=3m',
    ]);
    for (const [kind, ns] of [
      ['job', NS],
      ['configmap', NS],
      ['serviceaccount', NS],
      ['clusterrole', ''],
    ] as const) {
      const args = [kind, `${RELEASE}-crd-upgrade`, ...(ns ? ['-n', ns] : [])];
      expect(await getJson(k(), args), kind).toBeNull();
    }
    const o = await available(4);
    expect(o.spec.replicas).toBe(4);
    // The generated cluster secret is the one from before the upgrade.
    const secret = await getJson(k(), ['secret', `${RELEASE}-cluster-secret`, '-n', NS]);
    expect(secret?.metadata.uid).toBe(secretUid);
    const deploy = await getJson(k(), ['deployment', 'kvstore-operator', '-n', NS]);
    expect(deploy?.spec.template.metadata.labels.upgraded).toBe('yes');
    expect(deploy?.status.readyReplicas).toBe(2);
    const history = JSON.parse(await helmOk(['history', RELEASE, '-n', NS, '-o', 'json'])) as {
      revision: number;
      status: string;
    }[];
    expect(history.at(-1)).toMatchObject({ revision: 2, status: 'deployed' });
  }, 300_000);

  it('uninstalls: the release and its objects go, the CRD (and the claims) stay, and a new install adopts nothing', async () => {
    await helmOk(['uninstall', RELEASE, '-n', NS, '--wait', '--timeout=2m']);
    expect((await helmOk(['list', '-n', NS, '-q'])).trim()).toBe('');
    expect(await getJson(k(), ['deployment', 'kvstore-operator', '-n', NS])).toBeNull();
    expect(await getJson(k(), ['clusterrole', 'kvstore-operator'])).toBeNull();
    expect(await kvc()).toBeNull();
    expect(await getJson(k(), ['crd', CRD])).not.toBeNull();
    // The garbage collector removes the operator's StatefulSet; the claims are retained.
    await waitUntil('the StatefulSet to be collected', async () =>
      (await getJson(k(), ['statefulset', RELEASE, '-n', NS])) === null ? true : undefined,
    );
    const pvcs = await getJson(k(), ['pvc', '-n', NS]);
    expect(pvcs?.items.length).toBe(4);

    // The kept CRD is not part of any release: installing again works without adopting it.
    await helmOk(['install', 'again', CHART, '-n', NS, '--set', 'cluster.enabled=false']);
    await helmOk(['uninstall', 'again', '-n', NS, '--wait']);
    expect(await getJson(k(), ['crd', CRD])).not.toBeNull();
  }, 240_000);
});
