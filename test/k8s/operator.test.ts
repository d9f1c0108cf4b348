// kvstore-operator against a real control plane (etcd, apiserver, controller-manager, scheduler,
// kwok): CRD, validation, owned objects, status, scaling through decommission, upgrades, GC, RBAC.
//
// kwok pods are fake (no container runs), so the nodes' admin API is served by a stand-in HTTP
// server in this test (see StandIn); the operator reaches it through --pod-url-template.

import { createHash } from 'node:crypto';
import { CoreV1Api, KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openApiSchema } from '../../operator/api/v1alpha1/index.ts';
import {
  adminApi,
  createStaticVolumes,
  getJson,
  installOperatorBasics,
  type Json,
  type KVC,
  OPERATOR_NS,
  OPERATOR_SA,
  type OperatorProcess,
  SERVICE_MONITOR_CRD,
  STORAGE_CLASS,
  StandIn,
  serviceAccountKubeconfig,
  startOperator,
  stopOperators,
  waitUntil,
} from './operator-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const NS = 'kv-test';
/** One node: replicationFactor and quorums of 1 (the default replicationFactor 3 needs 3). */
const ONE = '  replicas: 1\n  replicationFactor: 1\n  readQuorum: 1\n  writeQuorum: 1\n';

const FAST = [
  '--poll-ms',
  '300',
  '--resync-ms',
  '3000',
  '--lease-duration-ms',
  '3000',
  '--renew-deadline-ms',
  '2000',
  '--retry-period-ms',
  '300',
];

const k = useControlPlane({ nodes: 2 });
let operator: OperatorProcess | undefined;
/** The operator's ServiceAccount kubeconfig (a test may run the operator with other flags). */
let operatorKubeconfig = '';
const standIn = new StandIn();

const kvc = (name: string) => getJson<KVC>(k(), ['kvcluster', name, '-n', NS]);
const sts = (name: string) => getJson(k(), ['statefulset', name, '-n', NS]);
/** The env of the node container in `name`'s StatefulSet pod template ([] when it has none). */
const podEnv = async (name: string): Promise<Json[]> =>
  ((await sts(name))?.spec.template.spec.containers[0].env as Json[] | undefined) ?? [];
const setImage = (name: string, image: string) =>
  k().kubectl([
    'patch',
    'kvcluster',
    name,
    '-n',
    NS,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { image } }),
  ]);
/**
 * Sets pod `pod`'s Ready condition, as a readiness probe would (kwok leaves a Running pod's
 * status alone). Only that condition (merged by type): containerStatuses, a list a patch replaces
 * whole, keeps kwok's running container and its start time.
 */
const setReady = (pod: string, status: string) =>
  k().kubectl([
    'patch',
    'pod',
    pod,
    '-n',
    NS,
    '--subresource=status',
    '-p',
    JSON.stringify({
      status: {
        conditions: [{ type: 'Ready', status, lastTransitionTime: new Date().toISOString() }],
      },
    }),
  ]);
/** A merge patch of KVCluster `name`'s spec (the result: a refusal is not thrown). */
const patchSpec = (name: string, spec: Json) =>
  k().kubectlResult(
    ['patch', 'kvcluster', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec })],
    { allowFailure: true },
  );
const apply = (yaml: string) =>
  k().kubectlResult(['apply', '-n', NS, '-f', '-'], { input: yaml, allowFailure: true });

/** `field` of each Event of `reason` on object `name`, oldest first. */
const eventField = async (name: string, reason: string, field: string): Promise<string[]> =>
  (
    await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      `involvedObject.name=${name},reason=${reason}`,
      '-o',
      `jsonpath={range .items[*]}{.${field}}{"\\n"}{end}`,
    ])
  )
    .split('\n')
    .filter((m) => m !== '');

/** The messages of the Events of `reason` on object `name`, oldest first. */
const eventMessages = (name: string, reason: string): Promise<string[]> =>
  eventField(name, reason, 'message');

function kvcYaml(name: string, spec: string): string {
  return `apiVersion: kvstore.dev/v1alpha1\nkind: KVCluster\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

async function phase(name: string, want: string, timeoutMs = 60_000): Promise<KVC> {
  return waitUntil(
    `${name} phase ${want}`,
    async () => {
      const o = await kvc(name);
      if (o?.status?.phase === want && o.status.observedGeneration === o.metadata?.generation)
        return o;
      // What it is instead, for the timeout's message (waitUntil keeps the last one): a phase
      // wait that timed out under load said nothing of why (2026-12-07).
      const conditions = (o?.status?.conditions ?? [])
        .filter((c) => c.status === 'True' || c.type === 'Progressing')
        .map((c) => `${c.type}=${c.status} ${c.reason ?? ''}: ${c.message ?? ''}`);
      throw new Error(
        o
          ? `phase ${o.status?.phase}, generation ${o.metadata?.generation} observed ${o.status?.observedGeneration}; ${conditions.join('; ')}`
          : 'no such KVCluster',
      );
    },
    timeoutMs,
  );
}

beforeAll(async () => {
  await installOperatorBasics(k(), NS);
  await createStaticVolumes(k(), 24);
  await standIn.start();
  operatorKubeconfig = await serviceAccountKubeconfig(k());
  operator = await startOperator(operatorKubeconfig, [
    '--pod-url-template',
    standIn.template,
    ...FAST,
  ]);
}, START_TIMEOUT_MS);

afterAll(async () => {
  if (process.env.DEBUG_OPERATOR_LOGS) {
    for (const l of operator?.logs ?? [])
      if ((l.level as number) >= 40) console.log(JSON.stringify(l));
  }
  await operator?.stop();
  await stopOperators();
  await standIn.close();
}, 120_000);

describe('CRD', { timeout: 60_000 }, () => {
  it('installs with the generated structural schema intact', async () => {
    const crd = await getJson(k(), ['crd', 'kvclusters.kvstore.dev']);
    expect(crd?.spec.versions[0].schema.openAPIV3Schema).toEqual(openApiSchema());
    // The apiserver publishes a new CRD's OpenAPI some time after the CRD is Established;
    // `kubectl explain` fails ("couldn't find resource") until then.
    const explain = await waitUntil('kubectl explain of the KVCluster schema', async () => {
      const r = await k().kubectlResult(['explain', 'kvcluster.spec.storage.retainOnScaleDown'], {
        allowFailure: true,
      });
      return r.code === 0 ? r.stdout : undefined;
    });
    expect(explain).toContain('decommissioned');
  });

  it('fills defaults', async () => {
    expect((await apply(kvcYaml('defaults', '  paused: true\n'))).code).toBe(0);
    const o = await kvc('defaults');
    expect(o?.spec).toMatchObject({
      replicas: 3,
      image: 'kvstore:0.1.0',
      replicationFactor: 3,
      storage: { size: '1Gi', retainOnDelete: true },
      ports: { client: 8081 },
    });
    await phase('defaults', 'Paused');
    expect(await sts('defaults')).toBeNull();
    await k().kubectl(['delete', 'kvcluster', 'defaults', '-n', NS]);
  });

  it('rejects invalid KVClusters with a clear message', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'bad-quorum',
        '  replicationFactor: 2\n  readQuorum: 3\n',
        /readQuorum must not exceed replicationFactor/,
      ],
      [
        'bad-replicas',
        '  replicas: 0\n',
        /spec\.replicas: Invalid value: 0: .*greater than or equal to 1/,
      ],
      [
        'bad-ports',
        '  ports: {client: 9000, http: 9000}\n',
        /ports\.client, ports\.http and ports\.peer must differ/,
      ],
      ['bad-size', '  storage: {size: lots}\n', /spec\.storage\.size/],
      // Quantities the StatefulSet refuses; storage.size is immutable, so they must fail here.
      ['zero-size', "  storage: {size: '0'}\n", /spec\.storage\.size/],
      ['negative-size', "  storage: {size: '-1Gi'}\n", /spec\.storage\.size/],
      // Immutable too: a name the claims refuse held the KVCluster until it was deleted.
      ['bad-class', '  storage: {storageClassName: Fast_SSD}\n', /spec\.storage\.storageClassName/],
      ['9lives', ONE, /metadata\.name must be a DNS-1035 label/],
      // The nodes would keep 3 copies, not 5, and no scale-down could pass 5.
      [
        'rf-above-replicas',
        '  replicas: 3\n  replicationFactor: 5\n',
        /replicationFactor must not exceed replicas/,
      ],
      ['rf-default', '  replicas: 1\n', /replicationFactor must not exceed replicas/],
      // A read of 1 replica may miss a write acknowledged by 2 others of 3.
      [
        'weak-quorums',
        '  readQuorum: 1\n',
        /readQuorum \+ writeQuorum must exceed replicationFactor, or a read may miss an acknowledged write: raise readQuorum or writeQuorum, or set allowStaleReads: true/,
      ],
    ];
    for (const [name, spec, message] of cases) {
      const r = await apply(kvcYaml(name, spec));
      expect(r.code, name).not.toBe(0);
      expect(r.stderr, name).toMatch(message);
    }
  });

  it('takes quorums that do not overlap only with allowStaleReads, and says so: a StaleReads condition and a Warning', async () => {
    const weak = `  replicas: 2\n  replicationFactor: 2\n  readQuorum: 1\n  writeQuorum: 1\n  storage: {storageClassName: ${STORAGE_CLASS}}\n`;
    const refused = await apply(kvcYaml('stale', weak));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/set allowStaleReads: true to accept stale reads/);
    expect((await apply(kvcYaml('stale', `${weak}  allowStaleReads: true\n`))).code).toBe(0);
    const o = await waitUntil('stale with its StaleReads condition', async () => {
      const s = await kvc('stale');
      return s?.status?.observedGeneration === s?.metadata?.generation &&
        s?.status?.conditions?.some((c) => c.type === 'StaleReads')
        ? s
        : undefined;
    });
    expect(o.status?.conditions?.find((c) => c.type === 'StaleReads')).toMatchObject({
      status: 'True',
      reason: 'StaleReadsAllowed',
      message:
        'readQuorum 1 + writeQuorum 1 <= replicationFactor 2: a read may miss an acknowledged write until the replicas catch up (spec.allowStaleReads)',
    });
    const warned = await waitUntil('a StaleReads Warning on stale', async () => {
      const m = await eventMessages('stale', 'StaleReads');
      return m.length ? m : undefined;
    });
    expect(warned).toEqual([
      expect.stringMatching(/^readQuorum 1 \+ writeQuorum 1 <= replicationFactor 2/),
    ]);
    // Taking the opt-in back while the quorums stay is refused; raising a quorum clears it.
    const back = await patchSpec('stale', { allowStaleReads: false });
    expect(back.code).not.toBe(0);
    expect(back.stderr).toMatch(/readQuorum \+ writeQuorum must exceed replicationFactor/);
    expect((await patchSpec('stale', { writeQuorum: 2, allowStaleReads: false })).code).toBe(0);
    await waitUntil('stale without StaleReads', async () => {
      const s = await kvc('stale');
      return (
        s?.status?.observedGeneration === s?.metadata?.generation &&
        !s?.status?.conditions?.some((c) => c.type === 'StaleReads')
      );
    });
    await k().kubectl(['delete', 'kvcluster', 'stale', '-n', NS]);
  });

  it('reports owned objects the apiserver rejects as Degraded with its message', async () => {
    const bad = `${ONE}  tolerations: [{key: k, operator: Sometimes}]\n`;
    expect((await apply(kvcYaml('bad-pod', bad))).code).toBe(0);
    const o = await phase('bad-pod', 'Degraded');
    const degraded = o.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded?.reason).toBe('ApplyFailed');
    expect(degraded?.message).toMatch(/StatefulSet.*tolerations\[0\]\.operator/);
    // Nothing progresses while the StatefulSet is refused, and the Event says why.
    const progressing = o.status?.conditions?.find((c) => c.type === 'Progressing');
    expect(progressing).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
    const events = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=bad-pod,reason=Degraded',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    expect(events).toMatch(
      /phase none -> Degraded: 0\/0 pods ready; ApplyFailed: StatefulSet.*tolerations\[0\]\.operator/,
    );
    await k().kubectl(['delete', 'kvcluster', 'bad-pod', '-n', NS]);
    // The CronJob of spec.backup too (its pattern admits five fields the CronJob cannot parse):
    // before, the cluster got no status at all.
    const badCron = `${ONE}  backup: {schedule: 'x x x x x', claimName: backups}\n`;
    expect((await apply(kvcYaml('bad-cron', badCron))).code).toBe(0);
    const cron = await phase('bad-cron', 'Degraded');
    const why = cron.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(why?.reason).toBe('ApplyFailed');
    expect(why?.message).toMatch(/CronJob.*bad-cron-backup.*spec\.schedule/);
    await k().kubectl(['delete', 'kvcluster', 'bad-cron', '-n', NS]);
  });

  it('takes over no object another owner controls: KVClusters twin and twin-headless both want Service twin-headless', async () => {
    const one = `${ONE}  storage: {storageClassName: ${STORAGE_CLASS}}\n`;
    expect((await apply(kvcYaml('twin', one))).code).toBe(0);
    const twin = await phase('twin', 'Available');
    expect((await apply(kvcYaml('twin-headless', one))).code).toBe(0);
    const other = await phase('twin-headless', 'Degraded');
    const why = other.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(why?.reason).toBe('ApplyFailed');
    expect(why?.message).toMatch(
      /Service kv-test\/twin-headless is controlled by KVCluster twin .*not taken over/,
    );
    // Some reconciles of both later, twin's headless Service is still twin's: its pods, its owner.
    await new Promise((r) => setTimeout(r, 4000));
    const svc = await getJson(k(), ['service', 'twin-headless', '-n', NS]);
    expect(svc?.metadata.ownerReferences.map((o: Json) => o.uid)).toEqual([twin.metadata?.uid]);
    expect(svc?.spec.selector['app.kubernetes.io/instance']).toBe('twin');
    expect((await kvc('twin'))?.status?.phase).toBe('Available');
    await k().kubectl(['delete', 'kvcluster', 'twin', 'twin-headless', '-n', NS]);
  });
});

describe('a KVCluster', { timeout: 180_000 }, () => {
  const spec = (replicas: number) =>
    `  replicas: ${replicas}\n  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n  metrics: {serviceMonitor: {enabled: true}}\n`;

  /**
   * Brings KVCluster `kv` to what a test starts from, so that each test also runs alone
   * (`-t`): made when missing, scaled to `replicas` when given, then Available. In file order
   * the previous test already left it so, and this costs one read.
   */
  async function kvReady(replicas?: number): Promise<void> {
    const o = await kvc('kv');
    if (!o) expect((await apply(kvcYaml('kv', spec(replicas ?? 3)))).stderr).toBe('');
    else if (replicas !== undefined && o.spec.replicas !== replicas)
      await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, `--replicas=${replicas}`]);
    const ready = await phase('kv', 'Available', 90_000);
    if (replicas !== undefined) expect(ready.status?.readyReplicas).toBe(replicas);
  }

  /** The claim the backups go to (kvb-backups): a volume of its own, bound to it by name. */
  async function backupClaim(): Promise<void> {
    await k().kubectl(['apply', '-f', '-'], {
      input: `apiVersion: v1
kind: PersistentVolume
metadata: {name: kwok-pv-backups}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ${STORAGE_CLASS}
  claimRef: {namespace: ${NS}, name: kvb-backups}
  hostPath: {path: /tmp/kwok-pv-backups}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kvb-backups, namespace: ${NS}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ${STORAGE_CLASS}
  volumeName: kwok-pv-backups
  resources: {requests: {storage: 1Gi}}
`,
    });
  }

  /** Volumes of its own for KVCluster `name`'s claims, bound by name (the shared ones are for kv). */
  async function ownVolumes(name: string, count: number): Promise<void> {
    const pv = (i: number) => `apiVersion: v1
kind: PersistentVolume
metadata: {name: kwok-pv-${name}-${i}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ${STORAGE_CLASS}
  claimRef: {namespace: ${NS}, name: data-${name}-${i}}
  hostPath: {path: /tmp/kwok-pv-${name}-${i}}
---
`;
    const input = Array.from({ length: count }, (_, i) => pv(i)).join('');
    await k().kubectl(['apply', '-f', '-'], { input });
  }

  const allowExpansion = (on: boolean) =>
    k().kubectl([
      'patch',
      'storageclass',
      STORAGE_CLASS,
      '-p',
      JSON.stringify({ allowVolumeExpansion: on }),
    ]);

  afterEach(() => {
    // A failed test leaves no stand-in behaviour to the next one.
    standIn.moving = false;
    standIn.holdDecommission = false;
    standIn.down = [];
    standIn.viewHook = null;
    standIn.refuse = null;
  });

  it('produces every owned object with the expected spec', async () => {
    if (!(await kvc('kv'))) expect((await apply(kvcYaml('kv', spec(3)))).stderr).toBe('');
    const owner = await kvc('kv');
    const s = await waitUntil('StatefulSet', () =>
      getJson(k(), ['statefulset', 'kv', '-n', NS, '--show-managed-fields']).then(
        (o) => o ?? undefined,
      ),
    );
    const ownedBy = (o: Json) => o?.metadata.ownerReferences?.[0];
    expect(ownedBy(s)).toMatchObject({
      kind: 'KVCluster',
      name: 'kv',
      uid: owner?.metadata?.uid,
      controller: true,
    });
    expect(s.spec).toMatchObject({
      replicas: 3,
      serviceName: 'kv-headless',
      podManagementPolicy: 'Parallel',
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Delete' },
    });
    expect(s.spec.template.spec.containers[0].readinessProbe.httpGet.path).toBe('/readyz');
    expect(s.spec.volumeClaimTemplates[0].spec.storageClassName).toBe(STORAGE_CLASS);
    const headless = await getJson(k(), ['service', 'kv-headless', '-n', NS]);
    expect(headless?.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const client = await getJson(k(), ['service', 'kv', '-n', NS]);
    expect(client?.spec.ports.map((p: Json) => p.port)).toEqual([8081, 9090]);
    const cmName = s.spec.template.spec.containers[0].envFrom[0].configMapRef.name;
    expect(cmName).toMatch(/^kv-config-[0-9a-f]{16}$/);
    const cm = await getJson(k(), ['configmap', cmName, '-n', NS]);
    expect(cm?.data.KV_DISCOVERY).toBe(`dns:kv-headless.${NS}.svc.cluster.local`);
    expect(cm?.immutable).toBe(true);
    const pdb = await getJson(k(), ['pdb', 'kv', '-n', NS]);
    expect(pdb?.spec.maxUnavailable).toBe(1);
    // No cluster secret in the spec: the operator made one, and the pods prove it to each other.
    const secret = await getJson(k(), ['secret', 'kv-cluster-secret', '-n', NS]);
    expect(Buffer.from(secret?.data.secret, 'base64').toString()).toMatch(/^[\w-]{43}$/);
    const env = s.spec.template.spec.containers[0].env as Json[];
    expect(env.find((e) => e.name === 'KV_CLUSTER_SECRET')?.valueFrom.secretKeyRef).toEqual({
      name: 'kv-cluster-secret',
      key: 'secret',
    });
    for (const o of [headless, client, cm, pdb, secret])
      expect(ownedBy(o)?.uid).toBe(owner?.metadata?.uid);
    const fields = s.metadata.managedFields.map((f: Json) => f.manager);
    expect(fields).toContain('kvstore-operator');
  });

  it('makes a ServiceMonitor only once its CRD exists', async () => {
    await kvReady();
    const served = await k().kubectlResult(['get', 'servicemonitors', '-n', NS], {
      allowFailure: true,
    });
    expect(served.code).not.toBe(0);
    await k().kubectl(['apply', '-f', '-'], { input: SERVICE_MONITOR_CRD });
    const sm = await waitUntil('ServiceMonitor', () =>
      getJson(k(), ['servicemonitor', 'kv', '-n', NS]).then((o) => o ?? undefined),
    );
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
  });

  it('puts back an owned object deleted by hand at once, not at the next resync', async () => {
    await kvReady();
    // An operator whose resync is far away: only a watch event brings the objects back.
    await operator?.stop();
    operator = await startOperator(operatorKubeconfig, [
      '--pod-url-template',
      standIn.template,
      ...FAST,
      '--resync-ms',
      '600000',
    ]);
    try {
      const started = operator;
      await waitUntil('the operator leads', async () =>
        started.logs.some((l) => l.msg === 'controller started'),
      );
      await phase('kv', 'Available');
      const template = (await sts('kv'))?.spec.template;
      const configMap = template.spec.containers[0].envFrom[0].configMapRef.name as string;
      const owned = [
        ['service', 'kv-headless'],
        ['service', 'kv'],
        ['configmap', configMap],
        ['pdb', 'kv'],
        ['secret', 'kv-cluster-secret'],
      ];
      for (const [kind, name] of owned) {
        const before = await getJson(k(), [kind!, name!, '-n', NS]);
        await k().kubectl(['delete', kind!, name!, '-n', NS, '--wait=true']);
        await waitUntil(
          `${kind} ${name} made again`,
          async () => {
            const o = await getJson(k(), [kind!, name!, '-n', NS]);
            return o && o.metadata.uid !== before?.metadata.uid ? o : undefined;
          },
          10_000,
        );
      }
    } finally {
      await operator?.stop();
      operator = await startOperator(operatorKubeconfig, [
        '--pod-url-template',
        standIn.template,
        ...FAST,
      ]);
    }
  });

  it('reports status that follows the StatefulSet as kwok makes pods Ready', async () => {
    await kvReady(3);
    const o = await phase('kv', 'Available');
    expect(o.status).toMatchObject({
      replicas: 3,
      readyReplicas: 3,
      selector: 'app.kubernetes.io/name=kvstore,app.kubernetes.io/instance=kv',
      rebalancing: false,
    });
    expect(o.status?.members?.map((m) => [m.name, m.ready, m.state])).toEqual([
      ['kv-0', true, 'active'],
      ['kv-1', true, 'active'],
      ['kv-2', true, 'active'],
    ]);
    const conds = Object.fromEntries((o.status?.conditions ?? []).map((c) => [c.type, c.status]));
    expect(conds).toEqual({ Available: 'True', Progressing: 'False', Degraded: 'False' });
    const table = await k().kubectl(['get', 'kvc', 'kv', '-n', NS]);
    // PROGRESS (a transfer's percentage and ETA) is empty while nothing moves.
    expect(table).toMatch(
      /^NAME\s+REPLICAS\s+READY\s+PHASE\s+PROGRESS\s+AGE\nkv\s+3\s+3\s+Available\s+\d+s\n/,
    );
    const events = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=kv',
      '-o',
      'jsonpath={.items[*].reason}',
    ]);
    expect(events.split(' ')).toContain('Available');
  });

  it('a young pod that was Ready and is not any more makes it Degraded at once, not Scaling', async () => {
    await kvReady(3);
    // A new kv-1 (the StatefulSet recreates it): well within the start-up grace of its creation.
    await k().kubectl(['delete', 'pod', 'kv-1', '-n', NS, '--wait=true']);
    await waitUntil('kv-1 recreated and Ready', async () => {
      const p = await getJson(k(), ['pod', 'kv-1', '-n', NS]);
      return p?.status.conditions?.some((c: Json) => c.type === 'Ready' && c.status === 'True');
    });
    await phase('kv', 'Available');
    await new Promise((r) => setTimeout(r, 1100)); // a Ready change a second after the start
    // Its readiness probe fails now.
    await setReady('kv-1', 'False');
    const o = await phase('kv', 'Degraded', 20_000);
    const degraded = o.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded).toMatchObject({
      status: 'True',
      reason: 'PodsNotReady',
      message: 'not ready: kv-1 (was running)',
    });
    expect(o.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('Stable');
    await setReady('kv-1', 'True');
    await phase('kv', 'Available');
  });

  it('scales up with kubectl scale and reports rebalancing until it ends', async () => {
    await kvReady(3);
    standIn.moving = true;
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=5']);
    const r = await phase('kv', 'Rebalancing', 60_000);
    expect(r.status?.rebalancing).toBe(true);
    expect((await sts('kv'))?.spec.replicas).toBe(5);
    standIn.moving = false;
    const o = await phase('kv', 'Available');
    expect(o.status?.readyReplicas).toBe(5);
  });

  it('scales down one pod at a time, each decommissioned first', async () => {
    await kvReady(5);
    standIn.posts.length = 0;
    standIn.holdDecommission = true;
    // Data is still moving (an earlier join, say): no decommission starts until it stops.
    let moving = true;
    standIn.viewHook = async () => ({ moving });
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=3']);
    await waitUntil('the decommission waiting for data to settle', async () => {
      const o = await kvc('kv');
      const progressing = o?.status?.conditions?.find((c) => c.type === 'Progressing');
      return progressing?.message?.includes('kv-4 decommissions once data stops moving');
    });
    expect(standIn.posts).toEqual([]);
    moving = false;
    standIn.viewHook = null;
    const during = await waitUntil('decommission in status', async () => {
      const o = await kvc('kv');
      const d = o?.status?.decommission;
      return o && d?.member === 'kv-4' && d.state === 'decommissioning' ? o : undefined;
    });
    expect(during.status?.phase).toBe('Scaling');
    expect(standIn.posts).toEqual(['kv-4']);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await sts('kv'))?.spec.replicas).toBe(5);
    standIn.holdDecommission = false;
    await phase('kv', 'Available', 60_000);
    expect((await sts('kv'))?.spec.replicas).toBe(3);
    expect(standIn.posts).toEqual(['kv-4', 'kv-3']);
    for (const pod of ['kv-3', 'kv-4']) standIn.reset(NS, pod);
  });

  it('a leaving pod deleted mid-decommission is waited for: its claim holds data, the StatefulSet does not shrink past it', async () => {
    await kvReady(4);
    standIn.posts.length = 0;
    standIn.holdDecommission = true;
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=3']);
    await waitUntil('kv-3 decommissioning', async () => {
      return (await kvc('kv'))?.status?.decommission?.member === 'kv-3';
    });
    // Its pod made again cannot be scheduled (the nodes cordoned): it is back, not running.
    const cordon = (verb: string) => k().kubectl([verb, 'kwok-node-0', 'kwok-node-1']);
    await cordon('cordon');
    try {
      await k().kubectl(['delete', 'pod', 'kv-3', '-n', NS, '--wait=true']);
      // Before, a leaving pod being deleted or not running counted as one that never ran: the
      // StatefulSet shrank at once and the claim, with what was not handed off, was deleted.
      const held = await waitUntil('the scale-down held, or the StatefulSet shrunk', async () => {
        if ((await sts('kv'))?.spec.replicas !== 4) return 'shrunk';
        const p = (await kvc('kv'))?.status?.conditions?.find((c) => c.type === 'Progressing');
        return p?.message.includes('kv-3 is not running') ? p : undefined;
      });
      expect(held).toMatchObject({ status: 'False', reason: 'LeavingPodNotRunning' });
      expect(held).toHaveProperty(
        'message',
        expect.stringMatching(/volume data-kv-3 holds the data/),
      );
      expect(await getJson(k(), ['pvc', 'data-kv-3', '-n', NS])).not.toBeNull();
      expect((await kvc('kv'))?.status?.phase).toBe('Blocked');
    } finally {
      await cordon('uncordon');
    }
    // Running again on its claim, its node's decommission goes on: one POST, then the shrink.
    standIn.holdDecommission = false;
    await phase('kv', 'Available', 60_000);
    expect((await sts('kv'))?.spec.replicas).toBe(3);
    expect(standIn.posts).toEqual(['kv-3']);
    standIn.reset(NS, 'kv-3');
  });

  it('a cluster that was up with no pod ready is Degraded, not Pending', async () => {
    await kvReady(3);
    const pods = ['kv-0', 'kv-1', 'kv-2'];
    const pendingBefore = (await eventMessages('kv', 'Pending')).length;
    for (const pod of pods) await setReady(pod, 'False');
    // Before, a round that saw no pod ready showed Pending (a Normal Event) beside Degraded=True.
    const o = await waitUntil('kv with no ready pod in its status', async () => {
      const s = await kvc('kv');
      return s?.status?.readyReplicas === 0 && s.status.members?.every((m) => !m.ready)
        ? s
        : undefined;
    });
    expect(o.status?.phase).toBe('Degraded');
    expect((await eventMessages('kv', 'Pending')).length).toBe(pendingBefore);
    for (const pod of pods) await setReady(pod, 'True');
    await phase('kv', 'Available');
  });

  it('scaled back up onto a retained volume, a pod that comes back decommissioned is recommissioned', async () => {
    await kvReady(4);
    standIn.posts.length = 0;
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=3']);
    await waitUntil('kv-3 gone', async () => (await sts('kv'))?.spec.replicas === 3);
    await phase('kv', 'Available', 60_000);
    // The stand-in keeps kv-3's state, as its PersistentVolumeClaim keeps its data directory.
    expect(standIn.node(NS, 'kv-3').status).toBe('decommissioned');
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=4']);
    await waitUntil('kv-3 recommissioned', async () => standIn.posts.includes('recommission kv-3'));
    expect(standIn.node(NS, 'kv-3').status).toBe('active');
    await phase('kv', 'Available', 60_000);
    expect(standIn.posts.filter((p) => p.startsWith('recommission'))).toEqual([
      'recommission kv-3',
    ]);
    const reasons = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=kv,reason=Recommissioned',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    expect(reasons).toContain('kv-3 was decommissioned: taken back into the ring');
  });

  it('spec.backup makes a backup CronJob; spec.restoreFrom runs the restore Job once pods are ready', async () => {
    await backupClaim();
    const backupSpec =
      `  replicas: 1\n  replicationFactor: 1\n  readQuorum: 1\n  writeQuorum: 1\n  image: kvstore:1\n` +
      `  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n` +
      `  backup: {schedule: "0 3 * * *", claimName: kvb-backups}\n` +
      `  restoreFrom: {claimName: kvb-backups, path: kv-20261203T030000Z}\n`;
    expect((await apply(kvcYaml('kvb', backupSpec))).stderr).toBe('');
    const cron = await waitUntil('backup CronJob', () =>
      getJson(k(), ['cronjob', 'kvb-backup', '-n', NS]).then((o) => o ?? undefined),
    );
    expect(cron.spec.schedule).toBe('0 3 * * *');
    expect(cron.metadata.ownerReferences[0]).toMatchObject({ kind: 'KVCluster', name: 'kvb' });
    const backupCommand = cron.spec.jobTemplate.spec.template.spec.containers[0].command;
    expect(backupCommand.slice(-4)).toEqual([
      'backup',
      '/backups/kvb-{time}',
      '--summary-file',
      '/dev/termination-log',
    ]);
    // The restore runs once the cluster is up, and only once (kwok completes Job pods).
    const job = await waitUntil('restore Job', () =>
      getJson(k(), ['job', 'kvb-restore', '-n', NS]).then((o) => o ?? undefined),
    );
    expect(job.spec.template.spec.containers[0].command).toContain('/backups/kv-20261203T030000Z');
    expect((await kvc('kvb'))?.status?.readyReplicas).toBe(1);
    await waitUntil('restore Succeeded in status', async () =>
      (await kvc('kvb'))?.status?.restore?.phase === 'Succeeded' ? true : undefined,
    );
    // A backup on demand, from the CronJob's template: its run shows in status.backup.
    await k().kubectl(['create', 'job', '--from=cronjob/kvb-backup', 'kvb-backup-now', '-n', NS]);
    await waitUntil('backup run in status', async () => {
      const b = (await kvc('kvb'))?.status?.backup;
      return b?.phase === 'Succeeded' && b.pod.startsWith('kvb-backup-now') ? true : undefined;
    });
    // Dropping spec.backup removes the CronJob.
    await k().kubectl([
      'patch',
      'kvcluster',
      'kvb',
      '-n',
      NS,
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/spec/backup"}]',
    ]);
    await waitUntil('CronJob removed', async () =>
      (await getJson(k(), ['cronjob', 'kvb-backup', '-n', NS])) === null ? true : undefined,
    );
    await k().kubectl(['delete', 'kvcluster', 'kvb', '-n', NS, '--wait=true']);
  });

  it('a KVCluster made again under the same name does not take the earlier restore for its own', async () => {
    await backupClaim();
    const restoreSpec =
      `${ONE}  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n` +
      `  restoreFrom: {claimName: kvb-backups, path: kv-20261203T030000Z}\n`;
    const restored = async () => {
      const r = (await kvc('kvr'))?.status?.restore;
      return r?.phase === 'Succeeded' ? r : undefined;
    };
    expect((await apply(kvcYaml('kvr', restoreSpec))).stderr).toBe('');
    const first = await waitUntil('first restore Succeeded', restored, 60_000);
    // Deleted leaving its objects (or made again before the garbage collector removed them): its
    // restore Job and that Job's Succeeded pod stay.
    await k().kubectl(['delete', 'kvcluster', 'kvr', '-n', NS, '--cascade=orphan', '--wait=true']);
    expect(await getJson(k(), ['pod', first.pod, '-n', NS])).not.toBeNull();
    expect((await apply(kvcYaml('kvr', restoreSpec))).stderr).toBe('');
    await phase('kvr', 'Available');
    // The new KVCluster waits for that Job to go, saying so (before, it took the old pod's run
    // for its own restore: Succeeded, and never ran one).
    const waiting = await waitUntil('restore waiting for the old Job', async () => {
      const r = (await kvc('kvr'))?.status?.restore;
      return r?.error ? r : undefined;
    });
    expect(waiting).toMatchObject({ phase: 'Pending', pod: '' });
    expect(waiting.error).toMatch(/Job kv-test\/kvr-restore is not this KVCluster's/);
    await k().kubectl(['delete', 'job', 'kvr-restore', '-n', NS, '--wait=true']);
    const second = await waitUntil('its own restore Succeeded', restored, 60_000);
    expect(second.pod).not.toBe(first.pod);
    await k().kubectl(['delete', 'kvcluster', 'kvr', '-n', NS, '--wait=true']);
  });

  it('a KVCluster made again under the same name does not show the earlier backup as its own', async () => {
    await backupClaim();
    const backupSpec =
      `${ONE}  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n` +
      `  backup: {schedule: "0 3 * * *", claimName: kvb-backups}\n`;
    expect((await apply(kvcYaml('kvo', backupSpec))).stderr).toBe('');
    await waitUntil('backup CronJob', () =>
      getJson(k(), ['cronjob', 'kvo-backup', '-n', NS]).then((o) => o ?? undefined),
    );
    await k().kubectl(['create', 'job', '--from=cronjob/kvo-backup', 'kvo-backup-old', '-n', NS]);
    const old = await waitUntil('the first backup in status', async () => {
      const b = (await kvc('kvo'))?.status?.backup;
      return b?.phase === 'Succeeded' ? b : undefined;
    });
    // Deleted, and its CronJob too; that backup's Job and pod stay (the Job taken from its
    // CronJob first: whether an orphaning delete reaches a dependent depends on the garbage
    // collector's view, and once the CronJob went without it, the collector deleted the CronJob
    // itself in a loaded run, its Jobs with it).
    const unowned = '[{"op":"remove","path":"/metadata/ownerReferences"}]';
    await k().kubectl(['patch', 'job', 'kvo-backup-old', '-n', NS, '--type=json', '-p', unowned]);
    await k().kubectl(['delete', 'kvcluster', 'kvo', '-n', NS, '--cascade=orphan', '--wait=true']);
    await k().kubectl([
      'delete',
      'cronjob',
      'kvo-backup',
      '-n',
      NS,
      '--ignore-not-found',
      '--wait=true',
    ]);
    expect(await getJson(k(), ['pod', old.pod, '-n', NS])).not.toBeNull();
    expect((await apply(kvcYaml('kvo', backupSpec))).stderr).toBe('');
    const o = await phase('kvo', 'Available');
    // The new KVCluster's CronJob has not run: no backup yet (before, the old pod's Succeeded
    // run, a backup of the cluster before it, showed as this one's).
    expect(o.status?.backup).toEqual({ phase: 'Scheduled', pod: '' });
    await waitUntil('its own CronJob', async () => {
      const cron = await getJson(k(), ['cronjob', 'kvo-backup', '-n', NS]);
      return cron?.metadata.ownerReferences?.[0]?.uid === o.metadata?.uid;
    });
    await k().kubectl(['create', 'job', '--from=cronjob/kvo-backup', 'kvo-backup-new', '-n', NS]);
    await waitUntil('its own backup in status', async () => {
      const b = (await kvc('kvo'))?.status?.backup;
      return b?.phase === 'Succeeded' && b.pod.startsWith('kvo-backup-new') ? true : undefined;
    });
    await k().kubectl(['delete', 'job', 'kvo-backup-old', '-n', NS, '--wait=true']);
    await k().kubectl(['delete', 'kvcluster', 'kvo', '-n', NS, '--wait=true']);
  });

  it('keeps the cluster secret its pods run with: put back when deleted or changed by hand, Degraded when its value is unknown', async () => {
    const one = `${ONE}  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
    expect((await apply(kvcYaml('kvs', one))).stderr).toBe('');
    await phase('kvs', 'Available');
    const secret = () => getJson(k(), ['secret', 'kvs-cluster-secret', '-n', NS]);
    const secretText = (o: Json) => Buffer.from(o?.data.secret ?? '', 'base64').toString();
    const first = await secret();
    const value = secretText(first);
    const setValue = (v: string) =>
      k().kubectl([
        'patch',
        'secret',
        'kvs-cluster-secret',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ data: { secret: Buffer.from(v).toString('base64') } }),
      ]);
    // Deleted, then changed, by hand while the operator runs: put back with the pods' value.
    // Before, a deleted one held the cluster Degraded until someone put it back, and a changed
    // one was used as it was: each pod that restarted came up cut off from the others.
    await k().kubectl(['delete', 'secret', 'kvs-cluster-secret', '-n', NS, '--wait=true']);
    const again = await waitUntil('the Secret made again', async () => {
      const o = await secret();
      return o && o.metadata.uid !== first?.metadata.uid ? o : undefined;
    });
    expect(secretText(again)).toBe(value);
    expect(again.metadata.ownerReferences[0].uid).toBe((await kvc('kvs'))?.metadata?.uid);
    await setValue('another-value');
    await waitUntil('the value put back', async () => secretText(await secret()) === value);
    const restored = await eventMessages('kvs', 'ClusterSecretRestored');
    expect(restored.map((m) => m.split(',')[1]?.trim())).toEqual([
      'the cluster secret the pods run with',
      'the cluster secret the pods run with',
    ]);
    expect(restored[0]).toContain('was deleted by hand');
    expect(restored[1]).toContain('was changed by hand');
    await phase('kvs', 'Available');
    // The StatefulSet records the hash of the pods' value.
    const recorded = (await sts('kvs'))?.metadata.annotations['kvstore.dev/cluster-secret-sha256'];
    expect(recorded).toBe(createHash('sha256').update(value).digest('hex'));

    // While no operator runs: the next one does not know the pods' value. Deleted: it makes no
    // new one, Degraded until it is put back.
    const restart = async (meanwhile: () => Promise<unknown>) => {
      await operator?.stop();
      await meanwhile();
      operator = await startOperator(operatorKubeconfig, [
        '--pod-url-template',
        standIn.template,
        ...FAST,
      ]);
    };
    await restart(() =>
      k().kubectl(['delete', 'secret', 'kvs-cluster-secret', '-n', NS, '--wait=true']),
    );
    let o = await phase('kvs', 'Degraded', 30_000);
    const cond = (type: string) => o.status?.conditions?.find((c) => c.type === type);
    expect(cond('Progressing')).toMatchObject({ status: 'False', reason: 'ClusterSecretMissing' });
    expect(cond('Degraded')).toMatchObject({ status: 'True', reason: 'ClusterSecretMissing' });
    expect(cond('Degraded')?.message).toContain(
      `Put back the value the pods run with: it is in every running pod's environment: kubectl -n ${NS} exec kvs-0 -- node -e`,
    );
    expect(await secret()).toBeNull();
    const degraded = await eventMessages('kvs', 'Degraded');
    expect(degraded.join('\n')).toMatch(
      /Available -> Degraded: 1\/1 pods ready; ClusterSecretMissing: Secret/,
    );
    // Put back by hand with the pods' value: the cluster goes on with it.
    await k().kubectl([
      'create',
      'secret',
      'generic',
      'kvs-cluster-secret',
      '-n',
      NS,
      `--from-literal=secret=${value}`,
    ]);
    await phase('kvs', 'Available', 90_000);
    // Changed: not the value whose hash the StatefulSet records, so not taken for the pods'.
    await restart(() => setValue('changed-meanwhile'));
    o = await phase('kvs', 'Degraded', 30_000);
    expect(cond('Degraded')).toMatchObject({ status: 'True', reason: 'ClusterSecretChanged' });
    expect(secretText(await secret())).toBe('changed-meanwhile');
    await setValue(value);
    await phase('kvs', 'Available', 90_000);
    await k().kubectl(['delete', 'kvcluster', 'kvs', '-n', NS, '--wait=true']);
    await k().kubectl(['delete', 'secret', 'kvs-cluster-secret', '-n', NS, '--ignore-not-found']);
  });

  it('does not roll a cluster secret of another value: the pods could not reach each other', async () => {
    const one = `${ONE}  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
    expect((await apply(kvcYaml('kvx', one))).stderr).toBe('');
    await phase('kvx', 'Available');
    const generated = await getJson(k(), ['secret', 'kvx-cluster-secret', '-n', NS]);
    const value = Buffer.from(generated?.data.secret, 'base64').toString();
    const ownSecret = (v: string) =>
      k().kubectl(['apply', '-f', '-'], {
        input: `apiVersion: v1\nkind: Secret\nmetadata: {name: kvx-own, namespace: ${NS}}\nstringData: {cluster: ${v}}\n`,
      });
    const secretOfPods = async () =>
      (await podEnv('kvx')).find((e) => e.name === 'KV_CLUSTER_SECRET')?.valueFrom.secretKeyRef
        .name;
    // Bring your own secret, as docs/security.md says, on a running cluster: another value.
    await ownSecret('another-value-entirely');
    await k().kubectl([
      'patch',
      'kvcluster',
      'kvx',
      '-n',
      NS,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { auth: { clusterSecret: { name: 'kvx-own', key: 'cluster' } } } }),
    ]);
    // Before, it rolled: the first pod on the new secret was cut off from the others.
    const o = await phase('kvx', 'Degraded', 20_000);
    const degraded = o.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded?.reason).toBe('ClusterSecretChange');
    expect(degraded?.message).toContain(
      'the pods run with cluster secret Secret kvx-cluster-secret key secret, and the spec asks for Secret kvx-own key cluster with another value',
    );
    expect(await secretOfPods()).toBe('kvx-cluster-secret');
    // The same value under the new name rolls.
    await ownSecret(value);
    await waitUntil(
      'the pods on kvx-own',
      async () => (await secretOfPods()) === 'kvx-own',
      90_000,
    );
    await phase('kvx', 'Available', 60_000);
    await k().kubectl(['delete', 'kvcluster', 'kvx', '-n', NS, '--wait=true']);
    await k().kubectl(['delete', 'secret', 'kvx-own', '-n', NS]);
  });

  it('does not roll peer TLS turned on or off: a pod replaced with it could not reach the others', async () => {
    const one = `${ONE}  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
    expect((await apply(kvcYaml('kvt', one))).stderr).toBe('');
    await phase('kvt', 'Available');
    const peerTls = async () => (await podEnv('kvt')).some((e) => e.name === 'KV_PEER_TLS_CA_FILE');
    const setPeerSecret = (name: string | null) =>
      k().kubectl([
        'patch',
        'kvcluster',
        'kvt',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { tls: name ? { peerSecretName: name } : null } }),
      ]);
    await setPeerSecret('kvt-peer-tls');
    // Before, it rolled: the first pod with peer TLS and the others could not reach each other.
    const o = await phase('kvt', 'Degraded', 20_000);
    const degraded = o.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded?.reason).toBe('PeerTlsChange');
    expect(degraded?.message).toContain('the pods run with peer TLS off, and the spec turns it on');
    expect(await peerTls()).toBe(false);
    await setPeerSecret(null);
    await phase('kvt', 'Available', 30_000);
    expect(await peerTls()).toBe(false);
    await k().kubectl(['delete', 'kvcluster', 'kvt', '-n', NS, '--wait=true']);
  });

  it('refuses a scale below replicationFactor; a refused decommission waits with a condition saying why', async () => {
    await kvReady(3);
    // The scale subresource writes spec.replicas through the CRD's rules: RF 3 needs 3 nodes.
    const below = await k().kubectlResult(['scale', 'kvcluster/kv', '-n', NS, '--replicas=2'], {
      allowFailure: true,
    });
    expect(below.code).not.toBe(0);
    expect(below.stderr).toMatch(/replicationFactor must not exceed replicas/);
    expect((await kvc('kv'))?.spec.replicas).toBe(3);
    // A scale-down the leaving node refuses waits: Blocked, and the Event says why.
    await kvReady(4);
    standIn.refuse = 'rebalance: data is still moving';
    await k().kubectl(['scale', 'kvcluster/kv', '-n', NS, '--replicas=3']);
    const o = await phase('kv', 'Blocked');
    const progressing = o.status?.conditions?.find((c) => c.type === 'Progressing');
    expect(progressing).toMatchObject({ status: 'False', reason: 'DecommissionRefused' });
    expect(progressing?.message).toContain('kv-3 refused to decommission');
    expect((await sts('kv'))?.spec.replicas).toBe(4);
    const warnings = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=kv,type=Warning,reason=Blocked',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    expect(warnings).toMatch(
      /-> Blocked: 4\/4 pods ready; DecommissionRefused: scale-down waits: kv-3 refused to decommission: rebalance: data is still moving/,
    );
    standIn.refuse = null;
    await phase('kv', 'Available');
    expect((await sts('kv'))?.spec.replicas).toBe(3);
    standIn.reset(NS, 'kv-3');
  });

  it('upgrades one pod at a time, each step gated on cluster health, not only readiness', async () => {
    await kvReady(3);
    expect((await kvc('kv'))?.spec.image).toBe('kvstore:1');
    const partition = async () =>
      (await sts('kv'))?.spec.updateStrategy.rollingUpdate.partition as number;
    const secretValue = async () =>
      (await getJson(k(), ['secret', 'kv-cluster-secret', '-n', NS]))?.data.secret as string;
    const secretBefore = await secretValue();
    // The restarted kv-2, once on the new image, reports kv-0 down until the gate opens: Ready
    // in Kubernetes, not yet healthy in the cluster.
    let gate = true;
    const core = adminApi(k(), CoreV1Api);
    standIn.viewHook = async (ns, pod) => {
      if (!gate || pod !== 'kv-2') return {};
      const p = await core.readNamespacedPod({ name: pod, namespace: ns }).catch(() => null);
      return p?.spec?.containers[0]?.image === 'kvstore:2' ? { down: ['kv-0'] } : {};
    };
    standIn.down = ['kv-1'];
    await setImage('kv', 'kvstore:2');
    await waitUntil('partition 3', async () => (await partition()) === 3);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await partition()).toBe(3);
    expect((await kvc('kv'))?.status?.phase).toBe('Upgrading');
    standIn.down = [];
    await waitUntil('partition 2', async () => (await partition()) === 2, 30_000);
    await waitUntil('kv-2 updated and ready', async () => {
      const pod = await getJson(k(), ['pod', 'kv-2', '-n', NS]);
      const ready = pod?.status.conditions?.some(
        (c: Json) => c.type === 'Ready' && c.status === 'True',
      );
      return pod?.spec.containers[0].image === 'kvstore:2' && ready;
    });
    await new Promise((r) => setTimeout(r, 2000));
    expect(await partition()).toBe(2);
    const progressing = (await kvc('kv'))?.status?.conditions?.find(
      (c) => c.type === 'Progressing',
    );
    expect(progressing?.message).toContain('cluster not healthy: kv-2 sees kv-0 down');
    gate = false;
    standIn.viewHook = null;
    await waitUntil('partition 0', async () => (await partition()) === 0, 60_000);
    const o = await phase('kv', 'Available', 60_000);
    expect(o.status?.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('Stable');
    const images = await k().kubectl([
      'get',
      'pods',
      '-n',
      NS,
      '-l',
      'app.kubernetes.io/instance=kv',
      '-o',
      'jsonpath={.items[*].spec.containers[0].image}',
    ]);
    expect(images.split(' ')).toEqual(['kvstore:2', 'kvstore:2', 'kvstore:2']);
    // The generated cluster secret outlives every reconcile of the upgrade unchanged.
    expect(await secretValue()).toBe(secretBefore);
  });

  it('an upgrade holds while a Ready pod refuses writes, saying which and why, the budget counts it down, and both go on once it takes writes', async () => {
    await kvReady(3);
    const to = (await kvc('kv'))?.spec.image === 'kvstore:3' ? 'kvstore:4' : 'kvstore:3';
    const partition = async () =>
      (await sts('kv'))?.spec.updateStrategy.rollingUpdate.partition as number;
    const condition = async (type: string) =>
      (await kvc('kv'))?.status?.conditions?.find((c) => c.type === type);
    // kv-0's disk is full: Ready (it serves reads, coordinates writes) and up in every view, but
    // it stores no write. Replacing kv-2 would leave kv-1 the only replica that stores the writes
    // of keys the three hold (W=2). Before, the gate let it: kv-0 was Ready and up.
    const full = 'disk full (1048576 bytes free in /data, below --min-free-disk-bytes 67108864)';
    let refusing = true;
    standIn.viewHook = async (_ns, pod) =>
      refusing && pod === 'kv-0' ? { notWritable: full } : {};
    const said = `kv-0 refuses writes: storage not writable: ${full}`;
    await waitUntil('Degraded: MembersRefusing', async () => {
      const d = await condition('Degraded');
      return d?.status === 'True' && d.reason === 'MembersRefusing' && d.message === said;
    });
    // The budget counts kv-0 down: a drain may evict no other pod meanwhile (before, one).
    const budget = async () =>
      (await getJson(k(), ['pdb', 'kv', '-n', NS]))?.spec.maxUnavailable as number;
    await waitUntil('the budget allows no disruption', async () => (await budget()) === 0);
    await setImage('kv', to);
    await waitUntil('the rollout holds at kv-2', async () =>
      (await condition('Progressing'))?.message.includes(`waiting: cluster not healthy: ${said}`),
    );
    await new Promise((r) => setTimeout(r, 2000)); // a window for a wrong step, not a wait for a state
    expect(await partition()).toBe(3);
    expect((await kvc('kv'))?.status?.phase).toBe('Upgrading');
    // status.members says it too, kept by the API server (the CRD's schema lists the field).
    expect((await kvc('kv'))?.status?.members?.find((m) => m.name === 'kv-0')).toMatchObject({
      state: 'active',
      refusing: [`refuses writes: storage not writable: ${full}`],
    });
    expect((await eventField('kv', 'RolloutHeld', 'type'))[0]).toBe('Warning');
    expect(await eventMessages('kv', 'RolloutHeld')).toEqual([
      expect.stringMatching(/^the rollout holds at partition 3: kv-0 refuses work while running /),
    ]);
    // Room again on kv-0: the rollout goes on by itself to the end.
    refusing = false;
    await waitUntil('partition 0', async () => (await partition()) === 0, 60_000);
    const done = await phase('kv', 'Available', 60_000);
    expect(done.status?.conditions?.find((c) => c.type === 'Degraded')?.reason).toBe('AsExpected');
    expect(done.status?.members?.find((m) => m.name === 'kv-0')?.refusing).toBeUndefined();
    expect(await budget()).toBe(1);
  });

  it('a settings change gets a ConfigMap of its own: a pod restarted on the old revision starts with the old settings', async () => {
    await kvReady(3);
    const partition = async () =>
      (await sts('kv'))?.spec.updateStrategy.rollingUpdate.partition as number;
    const configMapOf = (o: Json) =>
      o?.spec.template?.spec.containers[0].envFrom[0].configMapRef.name as string;
    const old = configMapOf(await sts('kv'));
    const level = (await getJson(k(), ['configmap', old, '-n', NS]))?.data.KV_LOG_LEVEL;
    expect(level).not.toBe('debug');
    // The single ConfigMap of the earlier layout, left by an older operator: deleted once no pod
    // revision uses it.
    const owner = await kvc('kv');
    await k().kubectl(['apply', '-n', NS, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'kv-config',
          labels: {
            'app.kubernetes.io/name': 'kvstore',
            'app.kubernetes.io/instance': 'kv',
            'app.kubernetes.io/component': 'config',
            'app.kubernetes.io/managed-by': 'kvstore-operator',
            'kvstore.dev/cluster': 'kv',
          },
          ownerReferences: [
            {
              apiVersion: 'kvstore.dev/v1alpha1',
              kind: 'KVCluster',
              name: 'kv',
              uid: owner?.metadata?.uid,
              controller: true,
            },
          ],
        },
        data: { KV_LOG_LEVEL: 'info' },
      }),
    });
    // kv-1 seen down holds the rollout before its first pod.
    standIn.down = ['kv-1'];
    await k().kubectl([
      'patch',
      'kvcluster',
      'kv',
      '-n',
      NS,
      '--type=merge',
      '-p',
      '{"spec":{"logLevel":"debug"}}',
    ]);
    const next = await waitUntil('the template names a new ConfigMap', async () => {
      const o = await sts('kv');
      return configMapOf(o) !== old && o?.spec.updateStrategy.rollingUpdate.partition === 3
        ? configMapOf(o)
        : undefined;
    });
    expect(next).toMatch(/^kv-config-[0-9a-f]{16}$/);
    expect((await getJson(k(), ['configmap', next, '-n', NS]))?.data.KV_LOG_LEVEL).toBe('debug');
    // A pod of the old revision restarted mid-rollout (a crash, an eviction) comes back on its
    // own revision, and that revision's ConfigMap is still there with the settings it had.
    const before = await getJson(k(), ['pod', 'kv-2', '-n', NS]);
    await k().kubectl(['delete', 'pod', 'kv-2', '-n', NS, '--wait=true']);
    const again = await waitUntil('kv-2 made again', async () => {
      const p = await getJson(k(), ['pod', 'kv-2', '-n', NS]);
      return p && p.metadata.uid !== before?.metadata.uid ? p : undefined;
    });
    expect(again.spec.containers[0].envFrom[0].configMapRef.name).toBe(old);
    expect((await getJson(k(), ['configmap', old, '-n', NS]))?.data.KV_LOG_LEVEL).toBe(level);
    expect(await partition()).toBe(3);
    // Rolled out: the ConfigMaps no revision uses any more are gone, the new one stays.
    standIn.down = [];
    await waitUntil('partition 0', async () => (await partition()) === 0, 60_000);
    await phase('kv', 'Available', 60_000);
    await waitUntil('old ConfigMaps deleted', async () => {
      const names = await k().kubectl([
        'get',
        'configmaps',
        '-n',
        NS,
        '-l',
        'kvstore.dev/cluster=kv',
        '-o',
        'jsonpath={.items[*].metadata.name}',
      ]);
      return names.split(' ').join(',') === next;
    });
    const events = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=kv,reason=ConfigMapsDeleted',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    expect(events).toContain(old);
  });

  it('makes a settings ConfigMap a running revision uses again, with its data, when it is deleted by hand', async () => {
    await ownVolumes('kvm', 2);
    const two = `  replicas: 2\n  replicationFactor: 1\n  readQuorum: 1\n  writeQuorum: 1\n  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
    const configMapOf = (o: Json) =>
      o?.spec.template?.spec.containers[0].envFrom[0].configMapRef.name as string;
    try {
      expect((await apply(kvcYaml('kvm', two))).stderr).toBe('');
      await phase('kvm', 'Available', 90_000);
      const old = configMapOf(await sts('kvm'));
      const before = await getJson(k(), ['configmap', old, '-n', NS]);
      // kvm-0 seen down holds the rollout before its first pod: both pods stay on the old
      // revision, whose settings the spec no longer gives.
      standIn.down = ['kvm-0'];
      await k().kubectl([
        'patch',
        'kvcluster',
        'kvm',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"logLevel":"debug"}}',
      ]);
      await waitUntil('the template names a new ConfigMap, partition 2', async () => {
        const o = await sts('kvm');
        return configMapOf(o) !== old && o?.spec.updateStrategy.rollingUpdate.partition === 2;
      });
      await k().kubectl(['delete', 'configmap', old, '-n', NS, '--wait=true']);
      const again = await waitUntil(
        `${old} made again`,
        async () => {
          const o = await getJson(k(), ['configmap', old, '-n', NS]);
          return o && o.metadata.uid !== before?.metadata.uid ? o : undefined;
        },
        20_000,
      );
      expect(again.data).toEqual(before?.data);
      expect(again.immutable).toBe(true);
      expect(again.metadata.ownerReferences[0].uid).toBe((await kvc('kvm'))?.metadata?.uid);
      const recreated = await eventMessages('kvm', 'ConfigMapRecreated');
      expect(recreated.join('\n')).toContain(`ConfigMap ${old}, the settings of a pod revision`);
      // A pod of that revision restarted mid-rollout starts with it, as before the deletion.
      const pod = await getJson(k(), ['pod', 'kvm-1', '-n', NS]);
      await k().kubectl(['delete', 'pod', 'kvm-1', '-n', NS, '--wait=true']);
      const back = await waitUntil('kvm-1 made again and Ready', async () => {
        const p = await getJson(k(), ['pod', 'kvm-1', '-n', NS]);
        const ready = p?.status.conditions?.some(
          (c: Json) => c.type === 'Ready' && c.status === 'True',
        );
        return p && p.metadata.uid !== pod?.metadata.uid && ready ? p : undefined;
      });
      expect(back.spec.containers[0].envFrom[0].configMapRef.name).toBe(old);

      // Deleted while no operator ran: its data was never seen by the one that starts next, so
      // it says so (Degraded, ConfigMapMissing, naming the pods), and the rollout, once the
      // cluster is healthy, replaces those pods.
      await operator?.stop();
      await k().kubectl(['delete', 'configmap', old, '-n', NS, '--wait=true']);
      operator = await startOperator(operatorKubeconfig, [
        '--pod-url-template',
        standIn.template,
        ...FAST,
      ]);
      const missing = await waitUntil('ConfigMapMissing', async () => {
        const d = (await kvc('kvm'))?.status?.conditions?.find((c) => c.type === 'Degraded');
        return d?.reason === 'ConfigMapMissing' ? d : undefined;
      });
      expect(missing.message).toContain(
        `ConfigMap ${old}, the settings of a pod revision, was deleted before this operator saw it: kvm-0, kvm-1 cannot start again`,
      );
      expect(await getJson(k(), ['configmap', old, '-n', NS])).toBeNull();
      standIn.down = [];
      await waitUntil(
        'rolled out',
        async () => {
          const o = await kvc('kvm');
          const d = o?.status?.conditions?.find((c) => c.type === 'Degraded');
          return o?.status?.phase === 'Available' && d?.reason === 'AsExpected';
        },
        60_000,
      );
    } finally {
      standIn.down = [];
      await k().kubectl([
        'delete',
        'kvcluster',
        'kvm',
        '-n',
        NS,
        '--ignore-not-found',
        '--wait=true',
      ]);
    }
  });

  it('a reverted upgrade reaches the pod the bad template broke: the gate does not wait for it', async () => {
    await kvReady(3);
    const good = (await kvc('kv'))?.spec.image as string;
    const partition = async () =>
      (await sts('kv'))?.spec.updateStrategy.rollingUpdate.partition as number;
    const image = async (pod: string) =>
      (await getJson(k(), ['pod', pod, '-n', NS]))?.spec.containers[0].image as string;
    // A node on kvstore:bad never answers (an image or setting it cannot run with).
    const core = adminApi(k(), CoreV1Api);
    standIn.viewHook = async (ns, pod) => {
      const p = await core.readNamespacedPod({ name: pod, namespace: ns }).catch(() => null);
      if (p?.spec?.containers[0]?.image === 'kvstore:bad') throw new Error(`${pod} is broken`);
      return {};
    };
    await setImage('kv', 'kvstore:bad');
    await waitUntil('kv-2 on the bad image', async () => (await image('kv-2')) === 'kvstore:bad');
    await waitUntil('the rollout holds at kv-2', async () => {
      const p = (await kvc('kv'))?.status?.conditions?.find((c) => c.type === 'Progressing');
      return p?.message.includes('cluster not healthy: kv-2 unreachable');
    });
    expect(await partition()).toBe(2);
    expect(await image('kv-1')).toBe(good);
    // Back to the good image: the partition goes back above kv-2, and kv-2, still broken on the
    // abandoned template, is the next pod to update; only it is unhealthy, so it is replaced.
    await setImage('kv', good);
    await waitUntil(
      'kv-2 back on the good image',
      async () => (await image('kv-2')) === good,
      60_000,
    );
    await phase('kv', 'Available', 60_000);
    expect(await partition()).toBe(0);
  });

  it('refuses a change of ports.peer; rolls one of ports.http, each pod asked at its own port until replaced', async () => {
    const two = (http: number) =>
      `  replicas: 2\n  replicationFactor: 1\n  readQuorum: 1\n  writeQuorum: 1\n  image: kvstore:1\n` +
      `  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n  ports: {http: ${http}}\n`;
    expect((await apply(kvcYaml('kvp', two(9090)))).stderr).toBe('');
    await phase('kvp', 'Available');
    // ports.peer cannot roll (a pod on the new port and the others cannot reach each other): the
    // apiserver refuses the change.
    const peer = await k().kubectlResult(
      [
        'patch',
        'kvcluster',
        'kvp',
        '-n',
        NS,
        '--type=merge',
        '-p',
        '{"spec":{"ports":{"peer":7947}}}',
      ],
      { allowFailure: true },
    );
    expect(peer.code).not.toBe(0);
    expect(peer.stderr).toMatch(/ports\.peer is immutable/);
    // A node answers only at the port its pod's revision gave it.
    const core = adminApi(k(), CoreV1Api);
    const portOf = async (pod: string) => {
      const p = await core.readNamespacedPod({ name: pod, namespace: NS }).catch(() => null);
      return p?.spec?.containers[0]?.ports?.find((x) => x.name === 'http')?.containerPort;
    };
    standIn.viewHook = async (_ns, pod, httpPort) => {
      if (pod.startsWith('kvp-') && (await portOf(pod)) !== httpPort)
        throw new Error(`${pod} does not listen on ${httpPort}`);
      return {};
    };
    expect((await apply(kvcYaml('kvp', two(9095)))).stderr).toBe('');
    // Before, the operator asked every pod at 9095: the ones still on 9090 did not answer, the
    // cluster never looked healthy, and the rollout held for good.
    await waitUntil(
      'both pods on the new port',
      async () => (await portOf('kvp-0')) === 9095 && (await portOf('kvp-1')) === 9095,
      60_000,
    );
    await phase('kvp', 'Available', 60_000);
    await k().kubectl(['delete', 'kvcluster', 'kvp', '-n', NS, '--wait=true']);
  });

  it('grows its volumes: every claim asked for the new size, the StatefulSet made again, no pod restarted; never shrinks', async () => {
    await ownVolumes('kvg', 3);
    const setSize = (size: string) =>
      k().kubectl([
        'patch',
        'kvcluster',
        'kvg',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { storage: { size } } }),
      ]);
    /** `kind`s of kvg as `name=<jsonpath of each>` pairs, space-separated. */
    const listed = async (kind: string, field: string) =>
      (
        await k().kubectl([
          'get',
          kind,
          '-n',
          NS,
          '-l',
          'kvstore.dev/cluster=kvg',
          '-o',
          `jsonpath={range .items[*]}{.metadata.name}={${field}} {end}`,
        ])
      ).trim();
    const claims = () => listed('pvc', '.spec.resources.requests.storage');
    const pods = () => listed('pods', '.metadata.uid');
    const condition = async (type: string) =>
      (await kvc('kvg'))?.status?.conditions?.find((c) => c.type === type);
    try {
      const kvgSpec = `  replicas: 3\n  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
      expect((await apply(kvcYaml('kvg', kvgSpec))).stderr).toBe('');
      await phase('kvg', 'Available', 90_000);
      const first = await sts('kvg');
      const podsBefore = await pods();
      expect(podsBefore.split(' ')).toHaveLength(3);

      // The StorageClass does not allow expansion: held, saying why, and no claim changed.
      await setSize('2Gi');
      await phase('kvg', 'Degraded');
      const held = await condition('Degraded');
      expect(held?.reason).toBe('VolumeExpansionFailed');
      expect(held?.message).toContain('allowVolumeExpansion: true');
      expect(held?.message).toContain('(no claim was changed)');
      expect(await claims()).toBe('data-kvg-0=1Gi data-kvg-1=1Gi data-kvg-2=1Gi');
      expect((await sts('kvg'))?.metadata.uid).toBe(first?.metadata.uid);

      // Allowed: every claim asks for 2Gi, the StatefulSet is made again with a 2Gi claim
      // template and adopts the pods, which keep running (same uids).
      await allowExpansion(true);
      const second = await waitUntil('the StatefulSet made again with 2Gi claims', async () => {
        const o = await sts('kvg');
        const size = o?.spec.volumeClaimTemplates?.[0]?.spec.resources.requests.storage;
        return o && o.metadata.uid !== first?.metadata.uid && size === '2Gi' ? o : undefined;
      });
      expect(second.spec.replicas).toBe(3);
      expect(await claims()).toBe('data-kvg-0=2Gi data-kvg-1=2Gi data-kvg-2=2Gi');
      await waitUntil('pods adopted by the new StatefulSet', async () => {
        const owners = await k().kubectl([
          'get',
          'pods',
          '-n',
          NS,
          '-l',
          'kvstore.dev/cluster=kvg',
          '-o',
          'jsonpath={.items[*].metadata.ownerReferences[0].uid}',
        ]);
        return (
          owners.split(' ').every((u) => u === second.metadata.uid) &&
          owners.split(' ').length === 3
        );
      });
      expect(await pods()).toBe(podsBefore);
      // kwok's volumes have no resizer: the claims wait for the storage provider, and say so,
      // while the cluster is Available.
      const growing = await waitUntil('VolumesGrowing', async () => {
        const o = await kvc('kvg');
        const p = o?.status?.conditions?.find((c) => c.type === 'Progressing');
        return o?.status?.phase === 'Available' && p?.reason === 'VolumesGrowing' ? p : undefined;
      });
      expect(growing.message).toContain(
        'data-kvg-0: 1Gi of 2Gi, the storage provider has not grown it yet',
      );
      const events = (field: string) =>
        k().kubectl([
          'get',
          'events',
          '-n',
          NS,
          '--field-selector',
          'involvedObject.name=kvg',
          '-o',
          `jsonpath={range .items[*]}{${field}}{"\\n"}{end}`,
        ]);
      expect((await events('.reason')).split('\n')).toEqual(
        expect.arrayContaining(['VolumesGrowing', 'StatefulSetRecreated']),
      );
      // Served throughout: after the first start the phase went only to Degraded (the refused
      // expansion) and back, never to Pending or Scaling while the StatefulSet was made again.
      const phases = (await events('.message')).split('\n').filter((m) => m.startsWith('phase '));
      const moves = phases.map((m) => m.split(':')[0]);
      expect(
        moves.filter((m) => /-> (Pending|Scaling|Upgrading|Rebalancing)$/.test(m ?? '')),
      ).toEqual(['phase none -> Pending']);
      expect(moves).toContain('phase Degraded -> Available');

      // A volume cannot shrink: held, nothing changed; back to 2Gi, Available again.
      await setSize('1Gi');
      await phase('kvg', 'Degraded');
      expect((await condition('Degraded'))?.reason).toBe('StorageShrink');
      expect((await sts('kvg'))?.metadata.uid).toBe(second.metadata.uid);
      expect(await claims()).toBe('data-kvg-0=2Gi data-kvg-1=2Gi data-kvg-2=2Gi');
      await setSize('2Gi');
      await phase('kvg', 'Available');
      expect(await pods()).toBe(podsBefore);
    } finally {
      await allowExpansion(false);
      await k().kubectl([
        'delete',
        'kvcluster',
        'kvg',
        '-n',
        NS,
        '--ignore-not-found',
        '--wait=true',
      ]);
    }
  });

  it('restarts the pods whose file system grows only on a restart (FileSystemResizePending): one at a time, each once the cluster is healthy', async () => {
    await ownVolumes('kvr', 3);
    /** The claim's status as the resize controller (pending) or the kubelet (grown) leaves it. */
    const claimStatus = (i: number, status: Json) =>
      k().kubectl([
        'patch',
        'pvc',
        `data-kvr-${i}`,
        '-n',
        NS,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]);
    const pending = (i: number) =>
      claimStatus(i, {
        capacity: { storage: '1Gi' },
        conditions: [
          {
            type: 'FileSystemResizePending',
            status: 'True',
            lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            message:
              'Waiting for user to (re-)start a pod to finish file system resize of volume on node.',
          },
        ],
      });
    const grown = (i: number) => claimStatus(i, { capacity: { storage: '2Gi' }, conditions: null });
    const core = adminApi(k(), CoreV1Api);
    const uids = async () => {
      const list = await core.listNamespacedPod({
        namespace: NS,
        labelSelector: 'app.kubernetes.io/instance=kvr',
      });
      return Object.fromEntries(list.items.map((p) => [p.metadata?.name, p.metadata?.uid]));
    };
    const progressing = async () =>
      (await kvc('kvr'))?.status?.conditions?.find((c) => c.type === 'Progressing');
    // Pods down at once (gone, terminating or not Ready), after every watch event.
    const downs = { most: 0, watch: null as { abort(): void } | null };
    const watchPods = async () => {
      const kc = new KubeConfig();
      kc.loadFromFile(k().kubeconfig);
      const up = new Map<string, boolean>();
      downs.watch = await new Watch(kc).watch(
        `/api/v1/namespaces/${NS}/pods`,
        { labelSelector: 'app.kubernetes.io/instance=kvr' },
        (type: string, pod: V1Pod) => {
          const ready = pod.status?.conditions?.some(
            (c) => c.type === 'Ready' && c.status === 'True',
          );
          up.set(
            pod.metadata?.name ?? '',
            type !== 'DELETED' && !pod.metadata?.deletionTimestamp && ready === true,
          );
          if (up.size < 3) return;
          downs.most = Math.max(downs.most, [...up.values()].filter((u) => !u).length);
        },
        () => {},
      );
    };
    try {
      const spec = `  replicas: 3\n  image: kvstore:1\n  storage: {size: 1Gi, storageClassName: ${STORAGE_CLASS}}\n`;
      expect((await apply(kvcYaml('kvr', spec))).stderr).toBe('');
      await phase('kvr', 'Available', 90_000);
      await allowExpansion(true);
      await k().kubectl([
        'patch',
        'kvcluster',
        'kvr',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { storage: { size: '2Gi' } } }),
      ]);
      await waitUntil('claims asked for 2Gi, Available', async () => {
        const p = await progressing();
        return (await kvc('kvr'))?.status?.phase === 'Available' && p?.reason === 'VolumesGrowing';
      });
      const first = await uids();
      expect(Object.keys(first)).toHaveLength(3);
      await watchPods();

      // The provider grew kvr-2's volume; its file system waits for a restart. kvr-0 is seen
      // down: the gate holds it.
      standIn.down = ['kvr-0'];
      await pending(2);
      await waitUntil('held while the cluster is unhealthy', async () => {
        const p = await progressing();
        return (
          p?.reason === 'FileSystemResize' &&
          p.message?.includes(
            'kvr-2 restarts so that the file system of data-kvr-2 grows once the cluster is healthy (kvr-0 sees kvr-0 down)',
          )
        );
      });
      expect(await uids()).toEqual(first);
      standIn.down = [];
      const second = await waitUntil('kvr-2 restarted', async () => {
        const now = await uids();
        return now['kvr-2'] && now['kvr-2'] !== first['kvr-2'] ? now : undefined;
      });
      expect({ ...second, 'kvr-2': first['kvr-2'] }).toEqual(first);
      // Available alone is not enough: it also reads so while kvr-2 is not made again yet and the
      // StatefulSet's status still counts it.
      await waitUntil('kvr Available, its 3 pods Ready', async () => {
        const s = (await kvc('kvr'))?.status;
        const ready = s?.members?.filter((m) => m.ready).length;
        return s?.phase === 'Available' && ready === 3;
      });

      // Restarted already: kvr-2 is not restarted again while the kubelet has not grown its file
      // system. kvr-0 and kvr-1 wait too, then go one at a time, once kvr-2 is seen up again.
      standIn.down = ['kvr-2'];
      await pending(1);
      await pending(0);
      await waitUntil('held again', async () => {
        const p = await progressing();
        return p?.message?.includes(
          'kvr-1 restarts so that the file system of data-kvr-1 grows once the cluster is healthy',
        );
      });
      // kvr-0 and kvr-1 held. kvr-2 is judged by the operator's own records below (the claim's
      // mark, the restart Events), not by its uid: kwok deletes pods by name, and before it was
      // made to delete once per deletion (kwokStagesDeletingOnce) its second delete took the pod
      // the StatefulSet had just made again, so kvr-2 was "restarted twice" with one eviction.
      expect({ ...(await uids()), 'kvr-2': second['kvr-2'] }).toEqual(second);
      standIn.down = [];
      await waitUntil('kvr-1 and kvr-0 restarted', async () => {
        const now = await uids();
        return now['kvr-0'] !== first['kvr-0'] && now['kvr-1'] !== first['kvr-1'] ? now : undefined;
      });
      // Each claim says which wait its pod was restarted for, and which pod, written before each
      // eviction: a second restart of kvr-2 for its wait would name the pod made again, not the
      // first one.
      for (const i of [0, 1, 2]) {
        const pvc = await getJson(k(), ['pvc', `data-kvr-${i}`, '-n', NS]);
        const since = pvc?.status.conditions[0].lastTransitionTime as string;
        const mark = JSON.parse(pvc?.metadata.annotations['kvstore.dev/restarted-for-resize']);
        expect({ since: Date.parse(mark.since), pod: mark.pod }).toEqual({
          since: Date.parse(since),
          pod: first[`kvr-${i}`],
        });
      }
      for (const i of [0, 1, 2]) await grown(i);
      const done = await phase('kvr', 'Available', 60_000);
      await waitUntil('Stable', async () => (await progressing())?.reason === 'Stable');
      expect(done.status?.readyReplicas).toBe(3);
      const restarted = (await eventMessages('kvr', 'FileSystemResizeRestart')).map(
        (m) => m.split(' ')[1],
      );
      expect(restarted).toEqual(['kvr-2', 'kvr-1', 'kvr-0']);
      expect(downs.most).toBe(1);
    } finally {
      downs.watch?.abort();
      standIn.down = [];
      await allowExpansion(false);
      await k().kubectl([
        'delete',
        'kvcluster',
        'kvr',
        '-n',
        NS,
        '--ignore-not-found',
        '--wait=true',
      ]);
    }
  });

  it('is garbage-collected with its KVCluster (claims kept: retainOnDelete)', async () => {
    await k().kubectl(['apply', '-f', '-'], { input: SERVICE_MONITOR_CRD });
    await kvReady();
    await waitUntil('ServiceMonitor', () =>
      getJson(k(), ['servicemonitor', 'kv', '-n', NS]).then((o) => o ?? undefined),
    );
    await k().kubectl(['delete', 'kvcluster', 'kv', '-n', NS, '--wait=true']);
    for (const [kind, name] of [
      ['statefulset', 'kv'],
      ['service', 'kv'],
      ['service', 'kv-headless'],
      ['pdb', 'kv'],
      ['servicemonitor', 'kv'],
      ['secret', 'kv-cluster-secret'],
    ]) {
      await waitUntil(
        `${kind}/${name} deleted`,
        async () => (await getJson(k(), [kind!, name!, '-n', NS])) === null,
      );
    }
    // The settings ConfigMaps are named by their hash (kv-config-<hash>): found by label.
    await waitUntil('ConfigMaps deleted', async () => {
      const left = await k().kubectl([
        'get',
        'configmap',
        '-n',
        NS,
        '-l',
        'kvstore.dev/cluster=kv',
        '-o',
        'name',
      ]);
      return left.trim() === '';
    });
    const claims = await k().kubectl([
      'get',
      'pvc',
      '-n',
      NS,
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ]);
    expect(claims).toContain('data-kv-0');
  });
});

/** The Events of `reason` on object `name`: how many objects, and the count each holds. */
const eventCounts = async (name: string, reason: string): Promise<number[]> =>
  (await eventField(name, reason, 'count')).map(Number);

const condition = (o: KVC | null, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type);

describe('pods that cannot start', { timeout: 180_000 }, () => {
  it('say why in the conditions, the Progress column and a Warning Event: a claim of a StorageClass that does not exist; cleared once it exists', async () => {
    const yaml = kvcYaml('nosc', `${ONE}  storage: {storageClassName: kv-missing-class}\n`);
    expect((await apply(yaml)).code).toBe(0);
    const cause =
      /nosc-0 cannot start: claim data-nosc-0 ProvisioningFailed: storageclass\.storage\.k8s\.io "kv-missing-class" not found/;
    // Before, the condition said only `starting: nosc-0`, whatever kept it from starting.
    const o = await waitUntil('nosc says why nosc-0 does not start', async () => {
      const s = await kvc('nosc');
      return s && cause.test(condition(s, 'Progressing')?.message ?? '') ? s : undefined;
    });
    expect(o.status?.phase).toBe('Pending');
    expect(condition(o, 'Progressing')?.reason).toBe('PodsStarting');
    expect(o.status?.progress).toBe('nosc-0 cannot start: claim data-nosc-0 ProvisioningFailed');
    const table = await k().kubectl(['get', 'kvc', 'nosc', '-n', NS]);
    expect(table).toContain('nosc-0 cannot start: claim data-nosc-0 ProvisioningFailed');
    const warned = await waitUntil('a ProvisioningFailed Event on nosc', async () => {
      const m = await eventMessages('nosc', 'ProvisioningFailed');
      return m.length ? m : undefined;
    });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(cause);
    // The class and a volume of it appear: the claim binds, the pod starts, the cause is gone.
    await k().kubectl(['apply', '-f', '-'], {
      input: `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: kv-missing-class}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: kwok-pv-nosc}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: kv-missing-class
  hostPath: {path: /tmp/kwok-pv-nosc}
`,
    });
    const up = await phase('nosc', 'Available', 120_000);
    expect(up.status?.progress).toBeUndefined();
    for (const c of up.status?.conditions ?? []) expect(c.message).not.toMatch(/cannot start/);
    await k().kubectl(['delete', 'kvcluster', 'nosc', '-n', NS]);
  });

  it("an unschedulable pod: the scheduler's reason; a cause that stays is one Event whose count grows, not an Event per reconcile", async () => {
    const yaml = kvcYaml(
      'nosched',
      `${ONE}  storage: {storageClassName: ${STORAGE_CLASS}}\n  nodeSelector: {kvstore.dev/no-such-node: 'true'}\n`,
    );
    expect((await apply(yaml)).code).toBe(0);
    const o = await waitUntil('nosched says why nosched-0 does not start', async () => {
      const s = await kvc('nosched');
      const m = condition(s, 'Progressing')?.message ?? '';
      return s &&
        /nosched-0 cannot start: pod nosched-0 Unschedulable: 0\/2 nodes are available: 2 node\(s\) didn't match Pod's node affinity\/selector/.test(
          m,
        )
        ? s
        : undefined;
    });
    expect(o.status?.phase).toBe('Pending');
    // The operator polls a starting cluster every 300 ms here: many reconciles see the cause.
    const counts = await waitUntil('Unschedulable recorded on nosched 5 times', async () => {
      const c = await eventCounts('nosched', 'Unschedulable');
      return c.reduce((a, b) => a + b, 0) >= 5 ? c : undefined;
    });
    // Before, each reconcile made an Event object of its own (count 1 each).
    expect(counts).toHaveLength(1);
    expect(counts[0]).toBeGreaterThanOrEqual(5);
    await k().kubectl(['delete', 'kvcluster', 'nosched', '-n', NS]);
  });
});

describe('pods that are never made', { timeout: 180_000 }, () => {
  it("say why too: a ResourceQuota refusing pods is the StatefulSet's FailedCreate in the conditions, the Progress column and a Warning Event; cleared once the quota allows them", async () => {
    // A namespace of its own: its quota counts every pod in it.
    const ns = 'kv-quota';
    const quota = (pods: number) =>
      k().kubectl(['apply', '-n', ns, '-f', '-'], {
        input: `apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: pods}\nspec:\n  hard: {pods: "${pods}"}\n`,
      });
    const pv = (i: number) => `apiVersion: v1
kind: PersistentVolume
metadata: {name: kwok-pv-kvq-${i}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ${STORAGE_CLASS}
  claimRef: {namespace: ${ns}, name: data-kvq-${i}}
  hostPath: {path: /tmp/kwok-pv-kvq-${i}}
---
`;
    const kvq = () => getJson<KVC>(k(), ['kvcluster', 'kvq', '-n', ns]);
    try {
      await k().kubectl(['create', 'namespace', ns]);
      await k().kubectl(['apply', '-f', '-'], { input: [0, 1, 2].map(pv).join('') });
      await quota(1);
      const spec = `  replicas: 3\n  storage: {storageClassName: ${STORAGE_CLASS}}\n`;
      await k().kubectl(['apply', '-n', ns, '-f', '-'], { input: kvcYaml('kvq', spec) });
      const cause =
        /kvq-1 cannot start: statefulset kvq FailedCreate: pods "kvq-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1/;
      // Before, Progressing said `1/3 pods created` (ScalingUp) and the phase stayed Pending.
      const o = await waitUntil('kvq says why kvq-1 is not made', async () => {
        const s = await kvq();
        return s && cause.test(condition(s, 'Progressing')?.message ?? '') ? s : undefined;
      });
      expect(condition(o, 'Progressing')).toMatchObject({
        status: 'False',
        reason: 'FailedCreate',
      });
      expect(condition(o, 'Progressing')?.message).toMatch(/^1\/3 pods created; /);
      expect(condition(o, 'Degraded')).toMatchObject({ status: 'True', reason: 'PodsNotCreated' });
      expect(condition(o, 'Degraded')?.message).toMatch(/^not created: kvq-1, kvq-2; /);
      expect(o.status?.phase).toBe('Blocked');
      expect(o.status?.progress).toBe('kvq-1 cannot start: statefulset kvq FailedCreate (+1 more)');
      const warned = await waitUntil('FailedCreate Events on kvq', async () => {
        const m = (
          await k().kubectl([
            'get',
            'events',
            '-n',
            ns,
            '--field-selector',
            'involvedObject.kind=KVCluster,involvedObject.name=kvq,reason=FailedCreate',
            '-o',
            'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
          ])
        )
          .split('\n')
          .filter((l) => l !== '')
          .sort();
        return m.length === 2 ? m : undefined;
      });
      expect(warned[0]).toMatch(cause);
      expect(warned[1]).toMatch(
        /^kvq-2 cannot start: statefulset kvq FailedCreate: pods "kvq-2" is forbidden/,
      );
      // The quota allows them: the pods are made, the cause is gone from the status.
      await quota(3);
      const up = await waitUntil(
        'kvq Available',
        async () => {
          const s = await kvq();
          return s?.status?.phase === 'Available' ? s : undefined;
        },
        120_000,
      );
      expect(up.status?.progress).toBeUndefined();
      for (const c of up.status?.conditions ?? []) expect(c.message).not.toMatch(/cannot start/);
    } finally {
      await k().kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=true']);
      await k().kubectl([
        'delete',
        'pv',
        'kwok-pv-kvq-0',
        'kwok-pv-kvq-1',
        'kwok-pv-kvq-2',
        '--ignore-not-found',
      ]);
    }
  });
});

describe('a KVCluster deleted', { timeout: 180_000 }, () => {
  afterEach(() => {
    standIn.viewHook = null;
  });

  it('mid-reconcile ends that reconcile quietly: no failure logged, no retry', async () => {
    const yaml = kvcYaml('gone', `${ONE}  storage: {storageClassName: ${STORAGE_CLASS}}\n`);
    expect((await apply(yaml)).code).toBe(0);
    await phase('gone', 'Available', 90_000);
    const logs = operator!.logs;
    const from = logs.length;
    // The next reconcile asks gone-0's node for its view: the KVCluster is deleted before the
    // answer, so the rest of that reconcile meets a KVCluster that is gone. The node reports data
    // moving, so that reconcile has a new status to write (Rebalancing): NotFound.
    let deleted = false;
    standIn.viewHook = async (ns, pod) => {
      if (ns !== NS || pod !== 'gone-0' || deleted) return {};
      deleted = true;
      await k().kubectl(['delete', 'kvcluster', 'gone', '-n', NS, '--wait=true']);
      return { moving: true };
    };
    const about = (l: Record<string, unknown>) => l.key === `${NS}/gone` || l.cluster === 'gone';
    const end = await waitUntil('the reconcile of gone ended', async () =>
      logs
        .slice(from)
        .find(
          (l) =>
            about(l) &&
            (l.msg === 'KVCluster deleted during its reconcile' || l.msg === 'reconcile failed'),
        ),
    );
    // Before: 'reconcile failed' (warn): kvclusters.kvstore.dev "gone" not found, and a retry.
    expect(end.msg).toBe('KVCluster deleted during its reconcile');
    expect(end.level).toBe(30);
    // Deleted: no reconcile of it is queued again, so nothing about it is logged from here on,
    // however long the backoff of a retry would have been (the first is 200 ms).
    const after = logs.length;
    const endMs = Date.parse(String(end.time));
    await waitUntil('3 s past the end of the reconcile of gone', async () => {
      return (await kvc('gone')) === null && Date.now() - endMs > 3000;
    });
    expect(logs.slice(after).filter(about)).toEqual([]);
    expect(logs.slice(from).filter((l) => about(l) && (l.level as number) >= 40)).toEqual([]);
  });
});

describe('operator identity', { timeout: 60_000 }, () => {
  it('runs as its ServiceAccount with only operator/rbac.yaml', async () => {
    const sa = `system:serviceaccount:${OPERATOR_NS}:${OPERATOR_SA}`;
    const can = async (args: string[]) =>
      (
        await k().kubectlResult(['auth', 'can-i', '--as', sa, ...args], { allowFailure: true })
      ).stdout.trim();
    expect(await can(['patch', 'statefulsets', '-n', NS])).toBe('yes');
    // Deleted (pods orphaned) only to make it again with a larger claim template.
    expect(await can(['delete', 'statefulsets', '-n', NS])).toBe('yes');
    // Claims are asked for a larger size; never made or deleted by the operator.
    expect(await can(['patch', 'persistentvolumeclaims', '-n', NS])).toBe('yes');
    expect(await can(['create', 'persistentvolumeclaims', '-n', NS])).toBe('no');
    expect(await can(['delete', 'persistentvolumeclaims', '-n', NS])).toBe('no');
    // A pod whose file system grows on a restart is evicted (the PDB holds), never deleted.
    expect(await can(['create', 'pods', '--subresource=eviction', '-n', NS])).toBe('yes');
    expect(await can(['delete', 'pods', '-n', NS])).toBe('no');
    // Secrets: read by name, watched (the operator's own, by label), created when a KVCluster
    // names none and put back (patch) when changed by hand; never updated whole or deleted.
    for (const verb of ['get', 'list', 'watch', 'create', 'patch'])
      expect(await can([verb, 'secrets', '-n', NS])).toBe('yes');
    expect(await can(['update', 'secrets', '-n', NS])).toBe('no');
    expect(await can(['delete', 'secrets', '-n', NS])).toBe('no');
    expect(await can(['update', 'kvclusters', '-n', NS])).toBe('no');
    expect(await can(['update', 'leases/other', '-n', OPERATOR_NS])).toBe('no');
    // An RBAC denial names the identity (`... is forbidden: User "system:serviceaccount:..."
    // cannot ...`); an admission plugin's refusal (a claim that may not grow) is a Forbidden
    // too, and expected in the volumes test.
    const forbidden =
      operator?.logs.filter((l) => JSON.stringify(l).includes('forbidden: User')) ?? [];
    expect(forbidden).toEqual([]);
    const metrics = await operator!.metrics();
    expect(metrics).toMatch(/kvstore_operator_reconciles_total\{result="success"\} [1-9]/);
    expect(metrics).toContain('kvstore_operator_reconcile_duration_seconds_bucket');
    expect(metrics).toMatch(/^kvstore_operator_leader 1$/m);
  });
});
