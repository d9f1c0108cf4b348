// Starts a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) on loopback for tests.

import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlPlaneState } from './control-plane-state.ts';
import { fakeNode, KWOK_NODE_ANNOTATION, kwokStagesDeletingOnce } from './fake-nodes.ts';
import { createNodeNetwork, type NodeNetwork, removeNodeNetwork } from './node-host.ts';
import {
  checkHostPackages,
  NODE_NAME,
  NODE_TOOLS,
  type NodeState,
  newNodeState,
  nodeSocket,
  startNode,
  stopNode,
} from './node-lib.ts';
import { makePki, NODE_CLIENTS, writeKubeconfig } from './pki.ts';
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
import { type AnyTool, buildTools, kubernetesVersion, TOOLS } from './tools.ts';

export type { ControlPlaneState } from './control-plane-state.ts';
export { freePort, type RunOptions, type RunResult, run, stopComponents } from './processes.ts';

export const SERVICE_CIDR = '10.96.0.0/16';

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
    const stagesFile = join(dir, 'kwok-stages.yaml');
    await writeFile(stagesFile, kwokStagesDeletingOnce(await readFile(kwokStages, 'utf8')));
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
        `--config=${stagesFile}`,
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
