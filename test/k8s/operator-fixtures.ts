// Fixtures of the operator tests: a stand-in for the nodes' admin API, operator processes run as
// their ServiceAccount, static PersistentVolumes for kwok pods, and polling helpers.

import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type ApiConstructor,
  type ApiType,
  KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { ControlPlane } from './control-plane-lib.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const CRD_FILE = join(ROOT, 'operator/crd/kvclusters.kvstore.dev.yaml');
export const RBAC_FILE = join(ROOT, 'operator/rbac.yaml');
export const OPERATOR_NS = 'kvstore-system';
export const OPERATOR_SA = 'kvstore-operator';
export const STORAGE_CLASS = 'kwok-static';

type DecommissionState = 'active' | 'decommissioning' | 'decommissioned';

interface StandInNode {
  status: DecommissionState;
  /** GETs of /admin/decommission answered `decommissioning` before it reports done. */
  pollsLeft: number;
  sent: number;
}

/** What a stand-in node reports besides its defaults: members down, data moving, refusals. */
interface ViewExtra {
  down?: string[];
  moving?: boolean;
  /** GET /admin/cluster's `refusing` (its clients' commands: its clock, a stalled disk). */
  refusing?: { commands: 'all' | 'writes'; reason: string; ready: boolean };
  /** GET /admin/cluster's `notWritable` (a full disk). */
  notWritable?: string;
}

/**
 * Stands in for the kvstore nodes' admin API: kwok pods are fake, no container runs, so nothing
 * would answer on their HTTP port. The operator is pointed here with --pod-url-template
 * `http://127.0.0.1:<port>/{namespace}/{pod}`; the test controls what each "node" reports.
 */
export class StandIn {
  readonly posts: string[] = [];
  /** Every node reports its ring moving (rebalancing) while true. */
  moving = false;
  /** Every node reports these members down. */
  down: string[] = [];
  /** Decommissions stay in progress while true. */
  holdDecommission = false;
  /** POST /admin/decommission answers 409 with this message when set. */
  refuse: string | null = null;
  /**
   * Per-request override of what a node reports (may look the pod up in the API); `httpPort` is
   * the port the operator called the pod at. Throwing makes the pod unreachable.
   */
  viewHook: ((ns: string, pod: string, httpPort: number) => Promise<ViewExtra>) | null = null;
  readonly #nodes = new Map<string, StandInNode>();
  #server: Server | null = null;
  port = 0;

  /** The operator's --pod-url-template: the pod's HTTP port rides along after its name. */
  get template(): string {
    return `http://127.0.0.1:${this.port}/{namespace}/{pod}:{httpPort}`;
  }

  node(ns: string, pod: string): StandInNode {
    const key = `${ns}/${pod}`;
    let n = this.#nodes.get(key);
    if (!n) {
      n = { status: 'active', pollsLeft: 2, sent: 0 };
      this.#nodes.set(key, n);
    }
    return n;
  }

  /** Forgets a node's state (a pod recreated with a fresh volume starts active). */
  reset(ns: string, pod: string): void {
    this.#nodes.delete(`${ns}/${pod}`);
  }

  async start(port = 0): Promise<void> {
    this.#server = createServer((req, res) => {
      const [, ns = '', at = '', ...rest] = (req.url ?? '').split('?')[0]!.split('/');
      const [pod = '', httpPort = '0'] = at.split(':');
      const hook = this.viewHook ? this.viewHook(ns, pod, Number(httpPort)) : Promise.resolve({});
      void hook.then(
        (extra) => {
          const { status, body } = this.#answer(
            req.method ?? 'GET',
            `/${rest.join('/')}`,
            ns,
            pod,
            extra,
          );
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        },
        (err: unknown) => res.writeHead(500).end(JSON.stringify({ error: String(err) })),
      );
    });
    await new Promise<void>((r) => this.#server!.listen(port, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  #answer(
    method: string,
    path: string,
    ns: string,
    pod: string,
    extra: ViewExtra,
  ): { status: number; body: unknown } {
    const n = this.node(ns, pod);
    const transfer =
      n.status === 'active'
        ? null
        : { done: n.status === 'decommissioned', sent: n.sent, scanned: n.sent };
    if (method === 'POST' && path === '/admin/decommission') {
      if (this.refuse) return { status: 409, body: { error: this.refuse } };
      this.posts.push(pod);
      if (n.status === 'active') n.status = 'decommissioning';
      return { status: 202, body: { status: n.status, transfer } };
    }
    if (method === 'POST' && path === '/admin/recommission') {
      if (n.status === 'active') {
        return { status: 409, body: { error: 'rebalance: this node is not decommissioned' } };
      }
      this.posts.push(`recommission ${pod}`);
      Object.assign(n, { status: 'active', pollsLeft: 2, sent: 0 });
      return { status: 200, body: { status: 'active', dropped: 0 } };
    }
    if (path === '/admin/decommission') {
      if (n.status === 'decommissioning' && !this.holdDecommission && --n.pollsLeft <= 0)
        n.status = 'decommissioned';
      if (n.status === 'decommissioning') n.sent += 10;
      return { status: 200, body: { status: n.status, transfer } };
    }
    if (path === '/admin/cluster') {
      const down = [...this.down, ...(extra.down ?? [])];
      const members = [
        { name: pod, state: 'up' },
        ...down.map((name) => ({ name, state: 'down' })),
      ];
      const moving = this.moving || extra.moving === true;
      const refusals = {
        ...(extra.refusing ? { refusing: extra.refusing } : {}),
        ...(extra.notWritable ? { notWritable: extra.notWritable } : {}),
      };
      const body = { node: pod, status: n.status, ring: { moving }, members, ...refusals };
      return { status: 200, body };
    }
    return { status: 404, body: { error: 'not found' } };
  }

  close(): Promise<void> {
    return new Promise((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }
}

/** A running `kvstore-operator` process with its JSON log lines. */
export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly httpPort: number;
  metrics(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const live = new Set<ChildProcess>();

/** Starts `bin/kvstore-operator.js` with `kubeconfig` (the ServiceAccount's) and extra flags. */
export async function startOperator(kubeconfig: string, args: string[]): Promise<OperatorProcess> {
  const child = spawn(
    NODE,
    [
      join(ROOT, 'bin/kvstore-operator.js'),
      '--http-host',
      '127.0.0.1',
      '--http-port',
      '0',
      ...args,
    ],
    {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | string>((r) =>
    child.on('exit', (code, sig) => r(code ?? sig ?? -1)),
  );
  void exited.then(() => live.delete(child));
  const port = await new Promise<number>((resolvePort, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'operator listening') resolvePort(entry.httpPort as number);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`operator exited (${code}): ${stderr}`)));
  });
  return {
    child,
    logs,
    httpPort: port,
    metrics: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Kills every operator process still running (afterAll, even when a test failed). */
export async function stopOperators(): Promise<void> {
  await Promise.all(
    [...live].map(
      (c) =>
        new Promise<void>((r) => {
          c.once('exit', () => r());
          c.kill('SIGKILL');
        }),
    ),
  );
}

/** A kubeconfig that authenticates as a ServiceAccount (default the operator's; token from TokenRequest). */
export async function serviceAccountKubeconfig(
  cp: ControlPlane,
  sa = OPERATOR_SA,
  ns = OPERATOR_NS,
): Promise<string> {
  const token = (await cp.kubectl(['create', 'token', sa, '-n', ns, '--duration=2h'])).trim();
  const ca = (
    await cp.kubectl([
      'config',
      'view',
      '--raw',
      '-o',
      'jsonpath={.clusters[0].cluster.certificate-authority-data}',
    ])
  ).trim();
  const path = join(cp.dir, sa === OPERATOR_SA ? 'operator-sa.kubeconfig' : `${sa}.kubeconfig`);
  const text = `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "${cp.server}", certificate-authority-data: ${ca}}
users:
- name: ${sa}
  user: {token: ${token}}
contexts:
- name: sa
  context: {cluster: test, user: ${sa}}
current-context: sa
`;
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

/** What every operator test installs first: the KVCluster CRD (Established), RBAC, namespace `ns`. */
export async function installOperatorBasics(cp: ControlPlane, ns: string): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '-f', CRD_FILE]);
  // Polled, not `kubectl wait --for=condition=Established`: that fails at once ("accessor
  // error: <nil> is of the type <nil>") when it reads the CRD before it has any conditions.
  await waitUntil('CRD Established', async () => {
    const crd = await getJson(cp, ['crd', 'kvclusters.kvstore.dev']);
    const conds = (crd?.status?.conditions ?? []) as Json[];
    return conds.some((c) => c.type === 'Established' && c.status === 'True');
  });
  await cp.kubectl(['apply', '-f', RBAC_FILE]);
  await cp.kubectl(['create', 'namespace', ns]);
}

/**
 * kwok runs no volume provisioner: a no-provisioner StorageClass and pre-made PersistentVolumes
 * that kube-controller-manager's binder matches to the StatefulSet's claims.
 */
export async function createStaticVolumes(cp: ControlPlane, count: number): Promise<void> {
  const pv = (i: number) => `apiVersion: v1
kind: PersistentVolume
metadata: {name: kwok-pv-${i}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ${STORAGE_CLASS}
  hostPath: {path: /tmp/kwok-pv-${i}}
---
`;
  const sc = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: ${STORAGE_CLASS}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
`;
  await cp.kubectl(['apply', '-f', '-'], {
    input: sc + Array.from({ length: count }, (_, i) => pv(i)).join(''),
  });
}

/** Polls `check` until it returns a value that is not undefined/false; the last error in the message. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** kubectl's JSON output: shapes vary by kind and the assertions check them. */
// biome-ignore lint/suspicious/noExplicitAny: untyped apiserver JSON, narrowed by each assertion
export type Json = any;

/** `kubectl get -o json` parsed; null when the object does not exist. */
export async function getJson<T = Json>(cp: ControlPlane, args: string[]): Promise<T | null> {
  const r = await cp.kubectlResult(['get', ...args, '-o', 'json'], { allowFailure: true });
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return null;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as T;
}

/** A KVCluster as the tests read it. */
/** status.backup and status.restore: a kvctl run, with what its summary reported. */
export interface BackupRun {
  phase: string;
  pod: string;
  path?: string;
  keys?: number;
  error?: string;
}

export interface KVC extends KubernetesObject {
  spec: Json;
  status?: {
    phase?: string;
    readyReplicas?: number;
    replicas?: number;
    observedGeneration?: number;
    members?: { name: string; ready: boolean; state: string; refusing?: string[] }[];
    conditions?: { type: string; status: string; reason: string; message: string }[];
    decommission?: { member: string; state: string };
    rebalancing?: boolean;
    selector?: string;
    backup?: BackupRun;
    restore?: BackupRun;
    progress?: string;
  };
}

/** A typed API client with the control plane's admin kubeconfig. */
export function adminApi<T extends ApiType>(cp: ControlPlane, api: ApiConstructor<T>): T {
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfig);
  return kc.makeApiClient(api);
}

/** A minimal prometheus-operator ServiceMonitor CRD (schema left open). */
export const SERVICE_MONITOR_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`;

// `node test/k8s/operator-fixtures.ts stand-in [port]`: serve the stand-in admin API for a local
// operator run against the kwok control plane (docs/operator.md).
if (import.meta.main && process.argv[2] === 'stand-in') {
  const s = new StandIn();
  await s.start(Number(process.argv[3] ?? 0));
  process.stdout.write(`--pod-url-template '${s.template}'\n`);
}
