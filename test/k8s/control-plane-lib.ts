// Starts a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) on loopback for tests.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNodeNetwork, type NodeNetwork, removeNodeNetwork } from './node-host.ts';
import {
  checkHostPackages,
  NODE_NAME,
  NODE_TOOLS,
  type NodeState,
  type NodeTool,
  newNodeState,
  nodeSocket,
  startNode,
  stopNode,
} from './node-lib.ts';
import {
  type Component,
  freePort,
  type HttpsProbe,
  httpGet,
  httpsGet,
  type RunOptions,
  type RunResult,
  run,
  signalGroup,
  startComponent,
  stopComponents,
  waitFor,
} from './processes.ts';

export { freePort, type RunOptions, type RunResult, run, stopComponents } from './processes.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..');
const BUILD_SCRIPT = join(HERE, 'build-tools.sh');

/** The tools build-tools.sh builds, each a binary in the version-keyed cache. */
export const TOOLS = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'etcd',
  'kwok',
  'helm',
] as const;
export type Tool = (typeof TOOLS)[number];
/** Prometheus with the Kubernetes service discovery (Debian's has none), for the real-node test. */
export const PROMETHEUS = 'prometheus';
export type AnyTool = Tool | NodeTool | typeof PROMETHEUS;

/** Annotation kwok is told to manage nodes by; the fake nodes carry it. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Label on every fake node (`type: kwok`), for nodeSelectors. */
export const KWOK_NODE_LABEL = { key: 'type', value: 'kwok' } as const;
export const SERVICE_CIDR = '10.96.0.0/16';

/** Client certificates of the real node's parts (and of the API server towards the kubelet). */
const NODE_CLIENTS = {
  'kubelet-client': `/O=system:nodes/CN=system:node:${NODE_NAME}`,
  'kube-proxy': '/CN=system:kube-proxy',
  coredns: '/CN=system:coredns',
  'local-path-provisioner': '/CN=kvstore-test:local-path-provisioner',
  'apiserver-kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
};

/** The cache root: KVSTORE_K8S_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s. */
export function cacheDir(): string {
  return (
    process.env.KVSTORE_K8S_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kvstore-k8s')
  );
}

/** The module version a wrapper go.mod requires (e.g. kubernetesVersion() === 'v1.37.2'). */
export function wrapperVersion(wrapper: string, module: string): string {
  const gomod = readFileSync(join(HERE, 'go', wrapper, 'go.mod'), 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const m = new RegExp(`(?:^|\\s)${escaped}\\s+(v\\d[^\\s]*)`, 'm').exec(gomod);
  if (!m?.[1]) throw new Error(`no ${module} version in test/k8s/go/${wrapper}/go.mod`);
  return m[1];
}

export function kubernetesVersion(): string {
  return wrapperVersion('kubernetes', 'k8s.io/kubernetes');
}

export function helmVersion(): string {
  return wrapperVersion('helm', 'helm.sh/helm/v4');
}

/** Builds (or finds in the cache) the tools; returns each binary's path and kwok's stage file. */
export async function buildTools<T extends AnyTool = Tool>(
  tools: readonly T[] = TOOLS as readonly AnyTool[] as readonly T[],
  progress: NodeJS.WritableStream = process.stderr,
): Promise<{ bins: Record<T, string>; kwokStages: string }> {
  const { stdout } = await run('bash', [BUILD_SCRIPT, ...tools], {
    timeoutMs: 3 * 60 * 60_000,
    stderrTo: progress,
  });
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) found.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const bins = {} as Record<T, string>;
  for (const t of tools) {
    const p = found.get(t);
    if (!p) throw new Error(`build-tools.sh did not report ${t}`);
    bins[t] = p;
  }
  return { bins, kwokStages: found.get('kwok-stages') ?? '' };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run(
    'openssl',
    args.map((a) => (a.startsWith('@') ? join(cwd, a.slice(1)) : a)),
  );
}

interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly caKey: string;
  readonly saKey: string;
  readonly saPub: string;
}

/** A CA, the apiserver serving cert, the service-account key pair and client certs (EC P-256). */
async function makePki(
  dir: string,
  clients: Record<string, string>,
  /** More names of the API server (the node mode's listen address). */
  apiserverSans: readonly string[] = [],
  /** Serving certificates to sign: name -> [subject, subjectAltNames]. */
  servers: Record<string, [string, readonly string[]]> = {},
): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const makeCa = (name: string, cn: string) =>
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        `@${name}.key`,
        '-out',
        `@${name}.crt`,
        '-days',
        '3650',
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
  await makeCa('ca', 'kvstore-test-ca');
  // A separate CA for the aggregation layer's request-header client, as kubeadm does.
  await makeCa('front-proxy-ca', 'kvstore-test-front-proxy-ca');
  const sign = async (name: string, subject: string, ext: string, ca = 'ca'): Promise<void> => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(
      ['req', '-new', ...ec, '-keyout', `@${name}.key`, '-out', `@${name}.csr`, '-subj', subject],
      dir,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `@${name}.csr`,
        '-CA',
        `@${ca}.crt`,
        '-CAkey',
        `@${ca}.key`,
        '-CAcreateserial',
        '-days',
        '3650',
        '-extfile',
        `@${name}.ext`,
        '-out',
        `@${name}.crt`,
      ],
      dir,
    );
  };
  const sans = [
    'IP:127.0.0.1',
    'IP:10.96.0.1',
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    ...apiserverSans,
  ];
  const common =
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  await sign(
    'apiserver',
    '/CN=kube-apiserver',
    `${common}extendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(',')}\n`,
  );
  for (const [name, subject] of Object.entries(clients)) {
    await sign(name, subject, `${common}extendedKeyUsage=clientAuth\n`);
  }
  for (const [name, [subject, names]] of Object.entries(servers)) {
    await sign(
      name,
      subject,
      `${common}extendedKeyUsage=serverAuth\nsubjectAltName=${names.join(',')}\n`,
    );
  }
  await sign(
    'front-proxy-client',
    '/CN=front-proxy-client',
    `${common}extendedKeyUsage=clientAuth\n`,
    'front-proxy-ca',
  );
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', '@sa.key'],
    dir,
  );
  await openssl(['pkey', '-in', '@sa.key', '-pubout', '-out', '@sa.pub'], dir);
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

/** A kubeconfig with the CA and the client cert/key embedded. */
async function writeKubeconfig(
  path: string,
  server: string,
  pki: Pki,
  client: string,
  user: string,
): Promise<void> {
  const b64 = async (f: string) => (await readFile(join(pki.dir, f))).toString('base64');
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: kvstore-test
  cluster:
    server: ${server}
    certificate-authority-data: ${await b64('ca.crt')}
users:
- name: ${user}
  user:
    client-certificate-data: ${await b64(`${client}.crt`)}
    client-key-data: ${await b64(`${client}.key`)}
contexts:
- name: ${user}@kvstore-test
  context:
    cluster: kvstore-test
    user: ${user}
current-context: ${user}@kvstore-test
`,
    { mode: 0o600 },
  );
}

export interface StartOptions {
  /** Number of kwok fake nodes `kwok-node-0..n-1` (default 1). */
  readonly nodes?: number;
  /** Taint fake nodes with kwok.x-k8s.io/node=fake:NoSchedule (default false). */
  readonly taintNodes?: boolean;
  /**
   * Leave the processes running when this Node process exits (for `k8s:up`); otherwise they
   * are killed on exit even if stop() was never called.
   */
  readonly persistent?: boolean;
  /** Where build progress goes (default process.stderr). */
  readonly progress?: NodeJS.WritableStream;
  /**
   * Start a real node too (node-lib.ts: kubelet, containerd, CNI, CoreDNS, kube-proxy in a
   * network namespace). The API server then listens on the host end of the node's link, which
   * pods reach, with the `kubernetes` Service's endpoints kept by the lease reconciler; no fake
   * nodes unless `nodes` says so.
   */
  readonly node?: boolean;
}

/** What a state file holds; enough for another process to use or stop the control plane. */
export interface ControlPlaneState {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly server: string;
  readonly binDir: string;
  readonly version: string;
  readonly pids: Record<string, number>;
  readonly env: Record<string, string>;
  /** The real node, when started with `node: true`. */
  readonly node?: NodeState;
}

export interface ControlPlane extends ControlPlaneState {
  /** Runs the built kubectl against this control plane (admin); resolves with stdout. */
  kubectl(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Runs the built helm against this control plane (admin); resolves with stdout. */
  helm(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Runs the built kubectl, resolving with code/stdout/stderr even when it fails. */
  kubectlResult(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Kills every process (SIGTERM, then SIGKILL) and removes the state directory. */
  stop(): Promise<void>;
}

/** The admin environment for tools: KUBECONFIG, PATH with the built binaries, helm dirs. */
function toolEnv(dir: string, kubeconfig: string, binDir: string): Record<string, string> {
  return {
    KUBECONFIG: kubeconfig,
    PATH: `${binDir}:${process.env.PATH ?? ''}`,
    HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
    HELM_DATA_HOME: join(dir, 'helm', 'data'),
  };
}

function fakeNode(name: string, taint: boolean): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    ${KWOK_NODE_ANNOTATION}: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    ${KWOK_NODE_LABEL.key}: ${KWOK_NODE_LABEL.value}
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: ${name}
    node-role.kubernetes.io/agent: ""
spec:
${taint ? `  taints:\n  - key: ${KWOK_NODE_ANNOTATION}\n    value: fake\n    effect: NoSchedule\n` : '  {}\n'}status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
---
`;
}

/**
 * Builds the tools if needed (cached by version) and starts etcd, kube-apiserver (RBAC),
 * kube-controller-manager, kube-scheduler and kwok with fake nodes, all on 127.0.0.1 ports
 * chosen by the OS, with every file under one temp dir. Resolves when /readyz is ok, the nodes
 * are Ready and the default ServiceAccount exists. On failure everything started is stopped.
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const tools: readonly AnyTool[] = opts.node ? [...TOOLS, ...NODE_TOOLS] : TOOLS;
  // Without a node the node tools are not built, and not used.
  const { bins, kwokStages } = (await buildTools(tools, opts.progress)) as {
    bins: Record<AnyTool, string>;
    kwokStages: string;
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bins, kwokStages, opts);
    } catch (e) {
      // Another process may take a port between freePort() and the bind; try new ports.
      if (attempt < 3 && /address already in use/i.test((e as Error).message)) continue;
      throw e;
    }
  }
}

async function startOnce(
  bins: Record<AnyTool, string>,
  kwokStages: string,
  opts: StartOptions,
): Promise<ControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'kvstore-k8s-'));
  const components: Component[] = [];
  const nodeComponents: Component[] = [];
  const killOnExit = () => {
    for (const c of [...nodeComponents, ...components]) signalGroup(c.pid, 'SIGKILL');
  };
  if (!opts.persistent) process.on('exit', killOnExit);
  let net: NodeNetwork | undefined;
  let node: NodeState | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    try {
      if (node) await stopNode(node);
      else if (net) await removeNodeNetwork(net, join(dir, 'node'));
    } finally {
      await stopComponents(Object.fromEntries(components.map((c) => [c.name, c.pid])));
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  try {
    const binDir = join(dir, 'bin');
    const logDir = join(dir, 'logs');
    await mkdir(binDir);
    await mkdir(logDir);
    for (const [t, path] of Object.entries(bins)) await symlink(path, join(binDir, t));
    if (opts.node) {
      checkHostPackages();
      net = await createNodeNetwork();
    }
    // Without a node, loopback only; with one, the host end of its link (pods reach it).
    const address = net?.hostIp ?? '127.0.0.1';
    const pki = await makePki(
      join(dir, 'pki'),
      {
        admin: '/O=system:masters/CN=kubernetes-admin',
        'controller-manager': '/CN=system:kube-controller-manager',
        scheduler: '/CN=system:kube-scheduler',
        kwok: '/O=system:masters/CN=kwok-controller',
        ...(net ? NODE_CLIENTS : {}),
      },
      net ? [`IP:${net.hostIp}`] : [],
      net ? { kubelet: [`/CN=${NODE_NAME}`, [`IP:${net.nodeIp}`, `DNS:${NODE_NAME}`]] } : {},
    );
    const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort] = await Promise.all(
      Array.from({ length: 5 }, freePort),
    );
    const server = `https://${address}:${apiPort}`;
    const kubeconfig = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(kubeconfig, server, pki, 'admin', 'kubernetes-admin');
    const kcmConfig = join(dir, 'controller-manager.kubeconfig');
    await writeKubeconfig(kcmConfig, server, pki, 'controller-manager', 'kube-controller-manager');
    const schedConfig = join(dir, 'scheduler.kubeconfig');
    await writeKubeconfig(schedConfig, server, pki, 'scheduler', 'kube-scheduler');
    const kwokConfig = join(dir, 'kwok.kubeconfig');
    await writeKubeconfig(kwokConfig, server, pki, 'kwok', 'kwok');

    // etcd: one member, plain HTTP on loopback, no fsync (test data only).
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = startComponent(
      'etcd',
      bins.etcd,
      [
        '--name=etcd0',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=etcd0=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      logDir,
    );
    components.push(etcd);
    await waitFor('etcd /health', etcd, 30_000, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"true"');
    });

    const apiserver = startComponent(
      'kube-apiserver',
      bins['kube-apiserver'],
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${address}`,
        `--advertise-address=${address}`,
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver')}`,
        `--tls-cert-file=${join(pki.dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki.dir, 'apiserver.key')}`,
        `--client-ca-file=${pki.ca}`,
        `--requestheader-client-ca-file=${join(pki.dir, 'front-proxy-ca.crt')}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${join(pki.dir, 'front-proxy-client.crt')}`,
        `--proxy-client-key-file=${join(pki.dir, 'front-proxy-client.key')}`,
        '--authorization-mode=Node,RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // The endpoints of `default/kubernetes` would have to be a non-loopback address.
        ...(net
          ? [
              `--kubelet-client-certificate=${join(pki.dir, 'apiserver-kubelet-client.crt')}`,
              `--kubelet-client-key=${join(pki.dir, 'apiserver-kubelet-client.key')}`,
              `--kubelet-certificate-authority=${pki.ca}`,
              '--kubelet-preferred-address-types=InternalIP',
            ]
          : ['--endpoint-reconciler-type=none']),
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(apiserver);
    const adminTls: HttpsProbe = {
      ca: await readFile(pki.ca),
      cert: await readFile(join(pki.dir, 'admin.crt')),
      key: await readFile(join(pki.dir, 'admin.key')),
    };
    await waitFor('kube-apiserver /readyz', apiserver, 120_000, async () => {
      const r = await httpsGet(`${server}/readyz`, adminTls);
      return r.status === 200 && r.body.trim() === 'ok';
    });

    const kcm = startComponent(
      'kube-controller-manager',
      bins['kube-controller-manager'],
      [
        `--kubeconfig=${kcmConfig}`,
        `--authentication-kubeconfig=${kcmConfig}`,
        `--authorization-kubeconfig=${kcmConfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'controller-manager')}`,
        '--controllers=*',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.ca}`,
        `--cluster-signing-cert-file=${pki.ca}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(kcm);
    const scheduler = startComponent(
      'kube-scheduler',
      bins['kube-scheduler'],
      [
        `--kubeconfig=${schedConfig}`,
        `--authentication-kubeconfig=${schedConfig}`,
        `--authorization-kubeconfig=${schedConfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${schedPort}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(scheduler);
    const kwok = startComponent(
      'kwok',
      bins.kwok,
      [
        `--kubeconfig=${kwokConfig}`,
        `--config=${kwokStages}`,
        '--manage-all-nodes=false',
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        '--node-ip=127.0.0.1',
      ],
      logDir,
    );
    components.push(kwok);

    await waitFor('kube-controller-manager /healthz', kcm, 60_000, async () => {
      const r = await httpsGet(`https://127.0.0.1:${kcmPort}/healthz`, {});
      return r.status === 200;
    });
    await waitFor('kube-scheduler /healthz', scheduler, 60_000, async () => {
      const r = await httpsGet(`https://127.0.0.1:${schedPort}/healthz`, {});
      return r.status === 200;
    });

    const nodeDir = join(dir, 'node');
    const env: Record<string, string> = {
      ...toolEnv(dir, kubeconfig, binDir),
      // `ctr images import` (and any ctr command) talks to the node's containerd.
      ...(net ? { CONTAINERD_ADDRESS: nodeSocket(nodeDir), CONTAINERD_NAMESPACE: 'k8s.io' } : {}),
    };
    const toolOpts = (o: RunOptions | undefined): RunOptions => ({
      ...o,
      env: { ...process.env, ...env, ...o?.env },
    });
    const kubectlResult = (args: readonly string[], o?: RunOptions) =>
      run(bins.kubectl, ['--kubeconfig', kubeconfig, ...args], toolOpts(o));
    const kubectl = async (args: readonly string[], o?: RunOptions) =>
      (await kubectlResult(args, o)).stdout;
    const helm = async (args: readonly string[], o?: RunOptions) =>
      (await run(bins.helm, ['--kubeconfig', kubeconfig, ...args], toolOpts(o))).stdout;

    const nodes = Array.from({ length: opts.nodes ?? (net ? 0 : 1) }, (_, i) => `kwok-node-${i}`);
    if (nodes.length) {
      await kubectl(['apply', '-f', '-'], {
        input: nodes.map((n) => fakeNode(n, opts.taintNodes ?? false)).join(''),
      });
    }
    await waitFor('kwok to make the fake nodes Ready', kwok, 60_000, async () => {
      if (!nodes.length) return true;
      const r = await kubectlResult(
        ['wait', '--for=condition=Ready', '--timeout=5s', ...nodes.map((n) => `node/${n}`)],
        { allowFailure: true },
      );
      return r.code === 0;
    });
    // Pods can only be created once the controller-manager has made the default ServiceAccount.
    await waitFor('the default ServiceAccount', kcm, 60_000, async () => {
      const r = await kubectlResult(['get', 'serviceaccount', 'default', '-n', 'default'], {
        allowFailure: true,
      });
      return r.code === 0;
    });

    if (net) {
      const kc = async (client: string) => {
        const path = join(dir, `${client}.kubeconfig`);
        await writeKubeconfig(path, server, pki, client, client);
        return path;
      };
      node = newNodeState(net, nodeDir, bins.ctr);
      await startNode(
        {
          dir: nodeDir,
          logDir,
          net,
          bins,
          binDir,
          credentials: {
            ca: pki.ca,
            kubeletCert: join(pki.dir, 'kubelet.crt'),
            kubeletKey: join(pki.dir, 'kubelet.key'),
            kubelet: await kc('kubelet-client'),
            kubeProxy: await kc('kube-proxy'),
            coredns: await kc('coredns'),
            provisioner: await kc('local-path-provisioner'),
          },
          kubectl: kubectlResult,
          onStart: (c) => nodeComponents.push(c),
        },
        node,
      );
    }

    const pids: Record<string, number> = {};
    for (const c of components) pids[c.name] = c.pid;
    return {
      node,
      dir,
      kubeconfig,
      server,
      binDir,
      version: kubernetesVersion(),
      pids,
      env,
      kubectl,
      kubectlResult,
      helm,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Where `k8s:up` records the running control plane; one per clone (cache dirs are shared). */
export function stateFile(): string {
  const id = createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12);
  return process.env.KVSTORE_K8S_STATE ?? join(cacheDir(), `control-plane-${id}.json`);
}

export function stateOf(cp: ControlPlaneState): ControlPlaneState {
  const { dir, kubeconfig, server, binDir, version, pids, env, node } = cp;
  return { dir, kubeconfig, server, binDir, version, pids, env, node };
}

/** Stops a control plane recorded in a state file (possibly started by another process). */
export async function stopFromState(state: ControlPlaneState): Promise<void> {
  try {
    if (state.node) await stopNode(state.node);
  } finally {
    await stopComponents(state.pids);
  }
  await rm(state.dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Whether the apiserver of a recorded control plane answers /readyz. */
export async function isReady(state: ControlPlaneState): Promise<boolean> {
  const r = await run(
    join(state.binDir, 'kubectl'),
    ['--kubeconfig', state.kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    { allowFailure: true, timeoutMs: 10_000 },
  ).catch(() => undefined);
  return r?.code === 0 && r.stdout.trim() === 'ok';
}
