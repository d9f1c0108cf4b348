// kvstore-operator driving real kvstore nodes: kwok pods are fake, so this test plays kubelet for
// them. For each pod of the StatefulSet it runs a real `kvstore` process on its own loopback
// address, publishes the running ones in a real DNS server as the headless Service would, and
// relays the operator's admin calls for that pod to the process (StandIn.proxy). Scale-up then
// rebalances for real and scale-down decommissions real nodes, whose data must survive.

import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuthorization } from '../../src/auth/index.ts';
import {
  type ClusterNode,
  connect,
  loopbackBlock,
  metric,
  startMember,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';
import {
  createStaticVolumes,
  getJson,
  installOperatorBasics,
  type OperatorProcess,
  STORAGE_CLASS,
  StandIn,
  serviceAccountKubeconfig,
  startOperator,
  stopOperators,
  waitUntil,
} from './operator-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const NS = 'kv-real';
const SERVICE = `real-headless.${NS}.svc.cluster.local`;
/** The KVCluster's cluster secret: the nodes refuse admin calls that do not prove it. */
const CLUSTER_SECRET = 'operator-proves-this\n';

const k = useControlPlane({ nodes: 2 });
let dns: TestDnsServer | undefined;
let operator: OperatorProcess | undefined;
let runner: PodRunner | undefined;
const standIn = new StandIn();
standIn.proxyOnly = true;

/** Runs a real node per live pod of KVCluster `real`; stops it when its pod goes away. */
class PodRunner {
  readonly running = new Map<string, ClusterNode>();
  /** Nodes stopped because their pod went away (their logs go into a timeout's report). */
  readonly stopped = new Map<string, ClusterNode>();
  /** Each stopped node's own decommission status at the moment its pod was deleted. */
  readonly statusAtRemoval = new Map<string, string>();
  readonly #block = loopbackBlock();
  readonly #core: CoreV1Api;
  /** The last error of a sync (reported by the test when it times out). */
  lastError = '';
  #timer: NodeJS.Timeout | undefined;
  #busy = Promise.resolve();

  constructor(kubeconfig: string) {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#busy = this.#busy
        .then(() => this.#sync())
        .catch((err: unknown) => {
          this.lastError = String(err);
        });
    }, 250);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#busy;
  }

  async #sync(): Promise<void> {
    const pods = await this.#core.listNamespacedPod({
      namespace: NS,
      labelSelector: 'app.kubernetes.io/instance=real',
    });
    const live = new Set(
      pods.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata!.name!),
    );
    for (const name of live) if (!this.running.has(name)) await this.#run(name);
    for (const [name, node] of this.running) if (!live.has(name)) await this.#remove(name, node);
    dns!.setA(
      SERVICE,
      [...this.running.values()].map((n) => n.host),
    );
  }

  async #run(pod: string): Promise<void> {
    const host = `${this.#block}.${Number(pod.split('-')[1]) + 1}`;
    const args = [
      '--discovery',
      `dns:${SERVICE}`,
      '--dns-servers',
      `127.0.0.1:${dns!.port}`,
      '--resolve-interval-ms',
      '300',
    ];
    // The KVCluster's settings (the ConfigMap's KV_*), and a throttle so data moves visibly long.
    args.push(
      '--cluster-secret',
      CLUSTER_SECRET,
      '--replication-factor',
      '2',
      '--read-quorum',
      '1',
      '--write-quorum',
      '2',
      '--rebalance-rate-bytes',
      '3000',
    );
    const node = await startMember(pod, host, args);
    this.running.set(pod, node);
    standIn.proxy.set(`${NS}/${pod}`, `http://${host}:${node.proc.httpPort}`);
  }

  async #remove(pod: string, node: ClusterNode): Promise<void> {
    const r = await fetch(`http://${node.host}:${node.proc.httpPort}/admin/decommission`, {
      headers: { authorization: adminAuthorization(CLUSTER_SECRET, 'GET', '/admin/decommission') },
      signal: AbortSignal.timeout(5000),
    }).catch(() => null);
    this.statusAtRemoval.set(
      pod,
      ((await r?.json()) as { status?: string } | undefined)?.status ?? 'unreachable',
    );
    standIn.proxy.delete(`${NS}/${pod}`);
    this.running.delete(pod);
    this.stopped.set(pod, node);
    await node.proc.stop('SIGTERM');
  }
}

async function phases(until: string, timeoutMs: number): Promise<Set<string>> {
  const seen = new Set<string>();
  let status = '';
  try {
    await waitUntil(
      `phase ${until}`,
      async () => {
        if (runner?.lastError) throw new Error(`pod runner: ${runner.lastError}`);
        const o = await getJson(k(), ['kvcluster', 'real', '-n', NS]);
        const p = o?.status?.phase as string | undefined;
        if (p) seen.add(p);
        status = JSON.stringify(o?.status);
        return (
          p === until &&
          o?.status.observedGeneration === o?.metadata.generation &&
          o?.status.replicas === o?.spec.replicas
        );
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstatus: ${status}\n${await nodeViews()}`);
  }
  return seen;
}

/** What each running node says about the cluster and its decommission, and its last log lines. */
async function nodeViews(): Promise<string> {
  const out: string[] = [];
  for (const [pod, n] of runner?.stopped ?? []) {
    out.push(...n.proc.logs.slice(-10).map((l) => `${pod} (stopped) log: ${JSON.stringify(l)}`));
  }
  for (const [pod, n] of runner?.running ?? []) {
    const base = `http://${n.host}:${n.proc.httpPort}`;
    const get = async (path: string) =>
      fetch(`${base}${path}`, {
        headers: { authorization: adminAuthorization(CLUSTER_SECRET, 'GET', path) },
        signal: AbortSignal.timeout(2000),
      })
        .then((r) => r.text())
        .catch((e: unknown) => String(e));
    const recent = n.proc.logs.slice(-25).map((l) => JSON.stringify(l));
    out.push(
      `${pod} cluster: ${await get('/admin/cluster')}`,
      `${pod} decommission: ${await get('/admin/decommission')}`,
      ...recent.map((w) => `${pod} log: ${w}`),
    );
  }
  return out.join('\n');
}

beforeAll(async () => {
  await installOperatorBasics(k(), NS);
  await createStaticVolumes(k(), 12);
  dns = await startDnsServer();
  await standIn.start();
  runner = new PodRunner(k().kubeconfig);
  runner.start();
  const kubeconfig = await serviceAccountKubeconfig(k());
  operator = await startOperator(kubeconfig, [
    '--pod-url-template',
    standIn.template,
    '--poll-ms',
    '300',
    '--resync-ms',
    '3000',
  ]);
}, START_TIMEOUT_MS);

afterAll(async () => {
  await operator?.stop();
  await stopOperators();
  await runner?.stop();
  await cleanup();
  await dns?.close();
  await standIn.close();
}, 120_000);

describe('real kvstore nodes', () => {
  it('rebalance on scale-up and hand their data off before scale-down removes them', async () => {
    // The nodes get the Secret's value as it is stored, trailing newline included (env from a
    // secretKeyRef); the operator must prove exactly that value.
    const secret = Buffer.from(CLUSTER_SECRET).toString('base64');
    const auth = '{clusterSecret: {name: real-secret, key: cluster-secret}}';
    const spec = `{replicas: 3, replicationFactor: 2, readQuorum: 1, writeQuorum: 2, auth: ${auth}, storage: {storageClassName: ${STORAGE_CLASS}}}`;
    await k().kubectl(['apply', '-n', NS, '-f', '-'], {
      input:
        `apiVersion: v1\nkind: Secret\nmetadata: {name: real-secret}\ndata: {cluster-secret: ${secret}}\n---\n` +
        `apiVersion: kvstore.dev/v1alpha1\nkind: KVCluster\nmetadata: {name: real}\nspec: ${spec}\n`,
    });
    await phases('Available', 120_000);

    const c = await connect(runner!.running.get('real-0')!);
    const puts = Array.from(
      { length: 300 },
      (_, i) => `PUT key:${String(i).padStart(3, '0')} ${'v'.repeat(60)}${i}`,
    );
    c.send(`${puts.join('\n')}\n`);
    expect(new Set(await c.lines(puts.length))).toEqual(new Set(['OK']));

    await k().kubectl(['scale', 'kvcluster/real', '-n', NS, '--replicas=4']);
    const up = await phases('Available', 120_000);
    expect(up).toContain('Rebalancing');

    await k().kubectl(['scale', 'kvcluster/real', '-n', NS, '--replicas=2']);
    const down = await phases('Available', 180_000);
    expect(down).toContain('Scaling');
    // Every admin call of the operator proved the secret: no node refused one.
    for (const n of runner!.running.values()) {
      expect(await metric(n, 'kvstore_admin_auth_failures_total')).toBe(0);
    }
    expect(Object.fromEntries(runner!.statusAtRemoval)).toEqual({
      'real-3': 'decommissioned',
      'real-2': 'decommissioned',
    });
    const reasons = await k().kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.name=real,reason=Decommissioning',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    expect(reasons).toMatch(/real-3.*real-2|real-2.*real-3/);

    expect((await c.call('PREFIX key:')).split(' ')).toHaveLength(300);
    expect(await c.call('GET key:123')).toBe(`${'v'.repeat(60)}123`);
    c.close();
  }, 600_000);
});
