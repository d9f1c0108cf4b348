// The README's Kubernetes recipe on a real node (kubelet, containerd, CNI, CoreDNS, kube-proxy): helm install runs the operator and three kvstore pods with bound claims, port-forward + nc and redis-cli reach them, Prometheus scrapes them, and day two (scale, pod loss, rolling upgrade under a writer, uninstall) works.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { KvClient } from '../../src/client/index.ts';
import { STORAGE_CLASS } from './node-config.ts';
import { mountsUnder } from './node-host.ts';
import { getJson, type Json, type KVC, NODE, waitUntil } from './operator-fixtures.ts';
import { alive, run } from './processes.ts';
import {
  buildHelm3,
  buildImage,
  CRD,
  IMAGE,
  loadImage,
  nc,
  newerChart,
  type Prometheus,
  portForward,
  sh,
  startPrometheus,
  stopPortForwards,
  tagImage,
  VERSION,
} from './real-node-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const NS = 'kvstore-system';
const KVC_NAME = 'kvstore';
const POD_SELECTOR = 'app.kubernetes.io/instance=kvstore,app.kubernetes.io/component=node';

/** Helm 3 (for the upgrade test) and the image from this checkout, built while the node starts. */
let helm3Built: Promise<string>;
let imageBuilt: Promise<void>;

// Registered before useControlPlane's start, so these run beside it.
beforeAll(() => {
  helm3Built = buildHelm3();
  imageBuilt = buildImage();
  // Not rejected unobserved when the node fails to start: they are awaited again below.
  helm3Built.catch(() => {});
  imageBuilt.catch(() => {});
});

const k = useControlPlane({ node: true });
let work: string;
let prometheus: Prometheus | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'kvstore-real-node-'));
  await imageBuilt;
  await loadImage(k()); // about 20 s
}, START_TIMEOUT_MS);

afterAll(async () => {
  await prometheus?.stop();
  await stopPortForwards();
  await rm(work, { recursive: true, force: true });
}, 120_000);

const kvc = (name = KVC_NAME) => getJson<KVC>(k(), ['kvcluster', name, '-n', NS]);

/** The KVCluster is Available with `replicas` members, every pod Ready. */
async function available(replicas: number, timeoutMs = 300_000, name = KVC_NAME): Promise<KVC> {
  return waitUntil(
    `KVCluster ${name} Available with ${replicas} ready`,
    async () => {
      const c = await kvc(name);
      const s = c?.status;
      if (!c) return undefined;
      return (
        s?.phase === 'Available' && s.readyReplicas === replicas && s.replicas === replicas && c
      );
    },
    timeoutMs,
  );
}

async function pods(): Promise<Json[]> {
  return (await getJson(k(), ['pods', '-n', NS, '-l', POD_SELECTOR]))?.items ?? [];
}

async function claims(): Promise<Json[]> {
  return (await getJson(k(), ['pvc', '-n', NS]))?.items ?? [];
}

/** A client through `kubectl port-forward svc/<name> :8081` (closed with its forward). */
async function client(name = KVC_NAME): Promise<{ kv: KvClient; close(): Promise<void> }> {
  const pf = await portForward(k(), NS, `svc/${name}`, 8081);
  const kv = await KvClient.connect({ host: '127.0.0.1', port: pf.port });
  return {
    kv,
    close: async () => {
      await kv.close();
      await pf.stop();
    },
  };
}

describe('a real node', () => {
  it('runs the README recipe: helm install gives 2 operator pods (one leader) and 3 Ready kvstore pods with bound claims', async () => {
    await sh(k(), 'helm install kvstore charts/kvstore -n kvstore-system --create-namespace', {});
    const c = await available(3);
    expect(c.status?.members?.map((m) => m.name).sort()).toEqual([
      'kvstore-0',
      'kvstore-1',
      'kvstore-2',
    ]);

    const operators = await waitUntil('2 Running operator pods', async () => {
      const items: Json[] =
        (await getJson(k(), ['pods', '-n', NS, '-l', 'app.kubernetes.io/component=operator']))
          ?.items ?? [];
      const running = items.filter(
        (p) =>
          p.status.phase === 'Running' &&
          p.status.conditions?.some((x: Json) => x.type === 'Ready' && x.status === 'True'),
      );
      return running.length === 2 && running;
    });
    const lease = await waitUntil('the operator Lease held', async () => {
      const l = await getJson(k(), ['lease', '-n', NS, 'kvstore-operator']);
      return l?.spec?.holderIdentity && l;
    });
    expect(operators.map((p: Json) => p.metadata.name)).toContain(lease.spec.holderIdentity);

    const running = await pods();
    expect(running).toHaveLength(3);
    for (const p of running) {
      expect(p.spec.nodeName).toBe('kvstore-node');
      expect(p.spec.containers[0].image).toBe(IMAGE);
      // The pod IP is on the node's pod bridge, not the host.
      expect(p.status.podIP).toMatch(/^10\.244\.\d+\.\d+$/);
    }
    const pvcs = await claims();
    expect(pvcs.map((p) => [p.metadata.name, p.status.phase]).sort()).toEqual([
      ['data-kvstore-0', 'Bound'],
      ['data-kvstore-1', 'Bound'],
      ['data-kvstore-2', 'Bound'],
    ]);
  }, 600_000);

  it('serves the seed lines through kubectl port-forward svc/kvstore and nc, and redis-cli through the same forward', async () => {
    const pf = await portForward(k(), NS, 'svc/kvstore', 8081);
    try {
      expect(await nc(pf.port, 'PING')).toBe('PONG');
      expect(await nc(pf.port, 'PUT session:user1 {token:xyz123}')).toBe('OK');
      expect(await nc(pf.port, 'GET session:user1')).toBe('{token:xyz123}');
      const cli = (args: string[]) =>
        run('redis-cli', ['-h', '127.0.0.1', '-p', String(pf.port), ...args]);
      expect((await cli(['GET', 'session:user1'])).stdout.trim()).toBe('{token:xyz123}');
      expect((await cli(['SET', 'session:user2', 'via-redis-cli'])).stdout.trim()).toBe('OK');
      expect(await nc(pf.port, 'GET session:user2')).toBe('via-redis-cli');
    } finally {
      await pf.stop();
    }
  }, 120_000);

  it('is scraped by Prometheus through kubernetes_sd_configs; the rules evaluate and KvstoreNodeDown fires for a killed pod', async () => {
    // KvstoreNodeDown's `for: 1m` shortened to 6 s: the test shows the rule fires on these
    // series, not that a minute passes.
    prometheus = await startPrometheus(k(), join(work, 'prometheus'), { KvstoreNodeDown: '6s' });
    const p = prometheus;
    const up = await waitUntil(
      '3 kvstore targets up',
      async () => {
        const r = await p.query('up{job="kvstore"}');
        return r.length === 3 && r.every((s) => s.value[1] === '1') && r;
      },
      120_000,
    );
    expect(up.map((s) => s.metric.instance).sort()).toEqual([
      'kvstore-0',
      'kvstore-1',
      'kvstore-2',
    ]);
    expect((await p.query('sum(kvstore_storage_keys)'))[0]?.value[1]).toBeDefined();
    await waitUntil(
      'the operator targets up',
      async () => {
        const r = await p.query('up{job="kvstore-operator"}');
        return r.length === 2 && r.every((s) => s.value[1] === '1');
      },
      120_000,
    );
    // Every rule of monitoring/prometheus-rules.yaml evaluates against these series without error.
    await waitUntil('every rule evaluated', async () => {
      const res = await fetch(`${p.url}/api/v1/rules`);
      const groups: Json[] = ((await res.json()) as Json).data.groups;
      const rules = groups.flatMap((g) => g.rules);
      return (
        rules.length > 0 &&
        rules.every((r: Json) => r.health === 'ok' && r.lastEvaluation !== '0001-01-01T00:00:00Z')
      );
    });

    // Kill kvstore-2's process and keep it down: the kubelet is frozen so it cannot restart it.
    const kubelet = k().node?.pids.kubelet;
    expect(kubelet !== undefined && alive(kubelet)).toBe(true);
    const pod = await getJson(k(), ['pod', 'kvstore-2', '-n', NS]);
    const containerId = String(pod.status.containerStatuses[0].containerID).replace(
      'containerd://',
      '',
    );
    const tasks = (await sh(k(), 'ctr tasks ls')).stdout;
    const pid = Number(
      tasks
        .split('\n')
        .find((l) => l.startsWith(containerId))
        ?.split(/\s+/)[1],
    );
    expect(pid).toBeGreaterThan(1);
    process.kill(kubelet as number, 'SIGSTOP');
    try {
      process.kill(pid, 'SIGKILL');
      // Pending first, firing after 6 s of up == 0.
      const fired = await waitUntil(
        'KvstoreNodeDown firing for kvstore-2',
        async () => {
          const alerts = await p.alerts();
          return alerts.find(
            (a) => a.labels.alertname === 'KvstoreNodeDown' && a.state === 'firing',
          );
        },
        180_000,
      );
      expect(fired.labels.instance).toBe('kvstore-2');
      expect(fired.labels.severity).toBeDefined();
    } finally {
      process.kill(kubelet as number, 'SIGCONT');
    }
    await waitUntil(
      'kvstore-2 restarted and up',
      async () => {
        const r = await p.query('up{job="kvstore",instance="kvstore-2"}');
        return r[0]?.value[1] === '1';
      },
      180_000,
    );
    await available(3);
  }, 600_000);

  it('scales 3 -> 5 -> 3 with real decommissions: every key stays readable, removed members lose their claims', async () => {
    const c = await client();
    const keys = Array.from({ length: 200 }, (_, i) => `scale-${i}`);
    try {
      for (const k of keys) await c.kv.put(k, `v-${k}`);
    } finally {
      await c.close();
    }
    await sh(k(), `kubectl -n ${NS} scale kvc ${KVC_NAME} --replicas=5`);
    await available(5);
    expect((await claims()).filter((p) => p.status.phase === 'Bound')).toHaveLength(5);
    await sh(k(), `kubectl -n ${NS} scale kvc ${KVC_NAME} --replicas=3`);
    await available(3, 600_000);
    // retainOnScaleDown: false (the default): the decommissioned members' claims are deleted.
    await waitUntil('claims of kvstore-3 and kvstore-4 deleted', async () => {
      const names = (await claims()).map((p) => p.metadata.name).sort();
      return names.join(',') === 'data-kvstore-0,data-kvstore-1,data-kvstore-2';
    });
    // The operator decommissioned each leaving member, the highest ordinal first, before the
    // StatefulSet shrank (a member removed without its hand-off would leave keys with one of
    // their three replicas: quorum reads of them fail below).
    const events: Json[] =
      (
        await getJson(k(), [
          'events',
          '-n',
          NS,
          '--field-selector',
          `involvedObject.kind=KVCluster,involvedObject.name=${KVC_NAME}`,
        ])
      )?.items ?? [];
    const decommissions = events
      .filter((e) => e.reason === 'Decommissioning')
      // Named <cluster>.<milliseconds in hex><random>: by name is by time.
      .sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)))
      .map((e) => e.message);
    expect(decommissions).toEqual([
      'decommissioning kvstore-4 before scale-down',
      'decommissioning kvstore-3 before scale-down',
    ]);
    expect(events.some((e) => e.reason === 'Scaling')).toBe(true);
    const r = await client();
    try {
      for (const k of keys) expect(await r.kv.get(k)).toBe(`v-${k}`);
    } finally {
      await r.close();
    }
    // Every admin call of the operator (cluster views, decommissions) proved the cluster
    // secret: no node, removed ones included, ever refused one.
    const p = prometheus;
    if (!p) throw new Error('Prometheus did not start (the scrape test failed)');
    const refused = await p.query('max(max_over_time(kvstore_admin_auth_failures_total[30m]))');
    expect(refused.map((x) => x.value[1])).toEqual(['0']);
  }, 900_000);

  it('a deleted pod comes back on its claim with its data', async () => {
    const before = await getJson(k(), ['pod', 'kvstore-1', '-n', NS]);
    const claim = await getJson(k(), ['pvc', 'data-kvstore-1', '-n', NS]);
    await sh(k(), `kubectl -n ${NS} delete pod kvstore-1`);
    await waitUntil(
      'kvstore-1 recreated and Ready',
      async () => {
        const p = await getJson(k(), ['pod', 'kvstore-1', '-n', NS]);
        return (
          p &&
          p.metadata.uid !== before.metadata.uid &&
          p.status.conditions?.some((x: Json) => x.type === 'Ready' && x.status === 'True')
        );
      },
      300_000,
    );
    expect((await getJson(k(), ['pvc', 'data-kvstore-1', '-n', NS])).metadata.uid).toBe(
      claim.metadata.uid,
    );
    // The node's own store (its metrics, not a quorum read) holds keys as soon as it is back.
    const pf = await portForward(k(), NS, 'pod/kvstore-1', 9090);
    try {
      const metrics = await (await fetch(`http://127.0.0.1:${pf.port}/metrics`)).text();
      const keys = Number(/^kvstore_storage_keys(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1]);
      expect(keys).toBeGreaterThan(100);
    } finally {
      await pf.stop();
    }
    await available(3);
  }, 600_000);

  it('rolls to a new image tag one pod at a time under a writer without losing an acknowledged write', async () => {
    const next = `${VERSION}-rolled`;
    await tagImage(k(), IMAGE, `kvstore:${next}`);
    const svc = await getJson(k(), ['service', KVC_NAME, '-n', NS]);
    const net = k().node?.net;
    if (!net) throw new Error('no node');
    // The writer runs on the node's network and writes to the client Service's ClusterIP.
    const writer = spawn(
      'nsenter',
      [
        `--net=/run/netns/${net.netns}`,
        '--',
        NODE,
        join(import.meta.dirname, 'cluster-writer.ts'),
        svc.spec.clusterIP,
        '8081',
        'roll',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const acked: string[] = [];
    let done = '';
    createInterface({ input: writer.stdout! }).on('line', (l) => {
      if (l.startsWith('ACK ')) acked.push(l.slice(4));
      if (l.startsWith('DONE ')) done = l;
    });
    const exited = new Promise<void>((r) => writer.on('exit', () => r()));
    try {
      await waitUntil('the writer acknowledged writes', async () => acked.length >= 20);
      await sh(
        k(),
        `helm upgrade kvstore charts/kvstore -n ${NS} --reuse-values --set cluster.image.repository=kvstore --set cluster.image.tag=${next}`,
      );
      // One pod at a time: never more than one member not Ready while the image changes.
      let worst = 0;
      await waitUntil(
        'every pod on the new image and Available',
        async () => {
          const items = await pods();
          const notReady = items.filter(
            (p) =>
              !p.status.conditions?.some((x: Json) => x.type === 'Ready' && x.status === 'True'),
          );
          worst = Math.max(worst, notReady.length);
          const c = await kvc();
          return (
            items.length === 3 &&
            items.every((p) => p.spec.containers[0].image === `kvstore:${next}`) &&
            c?.status?.phase === 'Available' &&
            c.status.readyReplicas === 3
          );
        },
        900_000,
      );
      expect(worst).toBeLessThanOrEqual(1);
      const n = acked.length;
      await waitUntil('the writer wrote after the roll', async () => acked.length >= n + 20);
    } finally {
      writer.kill('SIGTERM');
      await exited;
    }
    expect(done).toMatch(/^DONE \d+ \d+$/);
    const c = await client();
    try {
      for (const k of acked) expect(await c.kv.get(k), k).toBe(`value of ${k}`);
    } finally {
      await c.close();
    }
  }, 1_200_000);

  it("helm upgrade applies the chart's CRD with its hook Job, with Helm 4 and with Helm 3 (skaffold's), default values", async () => {
    const helm3 = await helm3Built;
    const crdColumns = async (): Promise<string[]> =>
      (await getJson(k(), ['crd', CRD])).spec.versions[0].additionalPrinterColumns.map(
        (c: Json) => c.name,
      );
    const before = await crdColumns();
    const upgrades: [string, string, string, string[]][] = [
      // [helm, the column the newer chart adds, values, extra]
      ['helm', 'HelmFour', 'helm 4', []],
      [helm3, 'HelmThree', 'helm 3', ['--set', 'operator.podDisruptionBudget.maxUnavailable=2']],
    ];
    for (const [bin, column, label, extra] of upgrades) {
      // A newer chart: charts/kvstore whose CRD has one more printer column.
      const chart = await newerChart(join(work, `chart-${column}`), column);
      const r = await sh(
        k(),
        [
          `'${bin}' upgrade kvstore '${chart}' -n ${NS} --reuse-values --wait --timeout=5m`,
          ...extra,
        ].join(' '),
        { allowFailure: true },
      );
      expect(r.code, `${label}: ${r.stderr}`).toBe(0);
      // The new chart's CRD is the cluster's: its column is there, the previous chart's extra
      // column is gone (one field manager applies the file whole).
      expect(await crdColumns(), label).toEqual([...before, column]);
      const crd = await getJson(k(), ['crd', CRD]);
      expect(crd.status.conditions.find((c: Json) => c.type === 'Established').status).toBe('True');
      // Whole: defaults, CEL rules and x-kubernetes-* keys as the chart has them.
      const file = parse(readFileSync(join(chart, 'crds', `${CRD}.yaml`), 'utf8'));
      expect(crd.spec.versions[0].schema, label).toEqual(file.spec.versions[0].schema);
      // Every hook object was deleted after the Job succeeded.
      for (const [kind, ns] of [
        ['job', NS],
        ['configmap', NS],
        ['serviceaccount', NS],
        ['clusterrole', ''],
        ['clusterrolebinding', ''],
      ] as const) {
        const args = [kind, 'kvstore-crd-upgrade', ...(ns ? ['-n', ns] : [])];
        expect(await getJson(k(), args), `${label}: ${kind}`).toBeNull();
      }
    }
    // Helm 3's values reached the cluster too.
    const pdb = await getJson(k(), ['pdb', 'kvstore-operator', '-n', NS]);
    expect(pdb.spec.maxUnavailable).toBe(2);
    const history = JSON.parse((await sh(k(), `helm history kvstore -n ${NS} -o json`)).stdout);
    expect(history.at(-1).status).toBe('deployed');
    await available(3);
  }, 900_000);

  it('backs up a KVCluster onto a claim (an on-demand run of its CronJob), and a new KVCluster starts from it (spec.restoreFrom)', async () => {
    // One member, RF 1: the cheapest real clusters. The schedule (January 1st) does not fire
    // during the test; the backup runs on demand from the CronJob's template.
    const cluster = (name: string, extra: string) =>
      `apiVersion: kvstore.dev/v1alpha1\nkind: KVCluster\nmetadata: {name: ${name}, namespace: ${NS}}\n` +
      `spec:\n  replicas: 1\n  replicationFactor: 1\n  readQuorum: 1\n  writeQuorum: 1\n` +
      `  image: ${IMAGE}\n  storage: {size: 1Gi, retainOnDelete: false}\n${extra}`;
    // Terminal: Succeeded, or Failed with kvctl's error (a retried pod shows Running again).
    const run = (name: string, which: 'backup' | 'restore', pod: string) =>
      waitUntil(
        `${which} of ${name} finished in its status`,
        async () => {
          const r = (await kvc(name))?.status?.[which];
          return r?.pod.startsWith(pod) && (r.phase === 'Succeeded' || r.phase === 'Failed') && r;
        },
        300_000,
      );
    const keys = Array.from({ length: 50 }, (_, i) => `bk-${i}`);
    try {
      // The backups' claim: the node's default StorageClass (bound when the first backup pod
      // lands on the node).
      await k().kubectl(['apply', '-f', '-'], {
        input:
          `apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: kvb-backups, namespace: ${NS}}\n` +
          `spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: ${STORAGE_CLASS}\n` +
          `  resources: {requests: {storage: 1Gi}}\n---\n` +
          cluster('kvb', '  backup: {schedule: "0 3 1 1 *", claimName: kvb-backups}\n'),
      });
      await available(1, 300_000, 'kvb');
      const w = await client('kvb');
      try {
        for (const key of keys) await w.kv.put(key, `v-${key}`);
        await w.kv.put('bk-gone', 'deleted before the backup');
        expect(await w.kv.remove('bk-gone')).toBe(true);
      } finally {
        await w.close();
      }
      await sh(k(), `kubectl -n ${NS} create job --from=cronjob/kvb-backup kvb-backup-now`);
      const backup = await run('kvb', 'backup', 'kvb-backup-now');
      expect(backup, JSON.stringify(backup)).toMatchObject({ phase: 'Succeeded', keys: 50 });
      // The path as spec.restoreFrom takes it, relative to the claim.
      expect(backup.path).toMatch(/^kvb-\d{8}T\d{6}Z$/);
      // On the node's disk: the claim's directory holds the backup with its manifest.
      const pvc = await getJson(k(), ['pvc', 'kvb-backups', '-n', NS]);
      const pv = await getJson(k(), ['pv', pvc.spec.volumeName]);
      const manifest = JSON.parse(
        readFileSync(join(pv.spec.local.path, String(backup.path), 'MANIFEST.json'), 'utf8'),
      );
      expect(manifest).toMatchObject({ kind: 'kvstore-backup', liveKeys: 50 });

      await k().kubectl(['apply', '-f', '-'], {
        input: cluster(
          'kvr',
          `  restoreFrom: {claimName: kvb-backups, path: ${JSON.stringify(backup.path)}}\n` +
            // spec.settings reach the node (ConfigMap, envFrom): its keys are at most 16 bytes.
            '  settings: {maxKeyBytes: 16}\n',
        ),
      });
      const restore = await run('kvr', 'restore', 'kvr-restore');
      expect(restore, JSON.stringify(restore)).toMatchObject({ phase: 'Succeeded', keys: 50 });
      const r = await client('kvr');
      try {
        for (const key of keys) expect(await r.kv.get(key), key).toBe(`v-${key}`);
        expect(await r.kv.get('bk-gone')).toBeNull();
        await expect(r.kv.put('k'.repeat(17), 'x')).rejects.toThrow(
          /key is 17 bytes, the limit is 16/,
        );
        expect(await r.kv.put('k'.repeat(16), 'x')).toBeUndefined();
      } finally {
        await r.close();
      }
    } finally {
      // Both clusters with their claims (retainOnDelete: false), and the backups' claim: the
      // uninstall test below expects only the chart cluster's claims.
      await sh(
        k(),
        `kubectl -n ${NS} delete kvcluster kvb kvr --ignore-not-found --wait && ` +
          `kubectl -n ${NS} delete pvc kvb-backups --ignore-not-found --wait`,
      );
      await waitUntil(
        'the claims of kvb and kvr gone',
        async () =>
          !(await claims()).some((p) => /^(data-kvb-|data-kvr-|kvb-)/.test(p.metadata.name)),
        120_000,
      );
    }
  }, 900_000);

  it('helm uninstall removes the operator and the cluster, and keeps the CRD and the data claims', async () => {
    await sh(k(), `helm uninstall kvstore -n ${NS} --wait`);
    await waitUntil('kvstore pods gone', async () => (await pods()).length === 0, 180_000);
    expect(await getJson(k(), ['crd', CRD])).not.toBeNull();
    expect((await claims()).map((p) => p.metadata.name).sort()).toEqual([
      'data-kvstore-0',
      'data-kvstore-1',
      'data-kvstore-2',
    ]);
  }, 300_000);

  it('runs the README path without Helm: kubectl apply -k k8s/ gives a Ready demo cluster', async () => {
    await sh(
      k(),
      'kubectl apply -k k8s/crd && kubectl wait --for=condition=Established crd/kvclusters.kvstore.dev',
    );
    const out = (await sh(k(), 'kubectl apply -k k8s/')).stdout;
    expect(out).toContain('kvcluster.kvstore.dev/demo created');
    expect(out).toContain('deployment.apps/kvstore-operator created');
    const demo = await waitUntil(
      'KVCluster demo Available',
      async () => {
        const c = await getJson<KVC>(k(), ['kvcluster', 'demo', '-n', 'default']);
        return c?.status?.phase === 'Available' && c.status.readyReplicas === 3 && c;
      },
      600_000,
    );
    expect(demo.spec).toMatchObject({ replicas: 3, image: IMAGE });
    // The operator k8s/ made reconciled it: 2 Ready replicas, none of Helm's labels.
    const deploy = await getJson(k(), ['deployment', 'kvstore-operator', '-n', NS]);
    expect(deploy.status.readyReplicas).toBe(2);
    expect(deploy.metadata.labels['helm.sh/chart']).toBeUndefined();
    // What is applied is what k8s/ says (kubectl diff exits 0 when nothing would change).
    const diff = await sh(k(), 'kubectl diff -k k8s/', { allowFailure: true });
    expect(diff.code, diff.stdout + diff.stderr).toBe(0);
    const pf = await portForward(k(), 'default', 'svc/demo', 8081);
    try {
      expect(await nc(pf.port, 'PING')).toBe('PONG');
    } finally {
      await pf.stop();
    }
  }, 900_000);
});

describe('stopping the node', () => {
  it('leaves no process, mount, cgroup or network namespace of the node behind', async () => {
    const node = k().node;
    if (!node) throw new Error('no node');
    const pids = Object.values(node.pids);
    await k().stop();
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(mountsUnder(node.dir)).toEqual([]);
    expect(existsSync(`/run/netns/${node.net.netns}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/pids${node.net.cgroupRoot}`)).toBe(false);
    const routes = (await run('ip', ['-4', 'route'])).stdout;
    expect(routes).not.toContain(node.net.podCidr.split('/')[0]);
    const shims = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(shims).not.toContain(node.dir);
  }, 120_000);
});
