// A real Kubernetes node for the test control plane: containerd (runc, CNI bridge), kubelet, kube-proxy and CoreDNS in the node's own network namespace, plus a local-path volume provisioner.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CLUSTER_DOMAIN,
  clusterObjects,
  cniConfig,
  containerdConfig,
  corefile,
  kubeletConfig,
  kubeProxyConfig,
  type NodeLayout,
} from './node-config.ts';
import { type NodeNetwork, removeNodeNetwork } from './node-host.ts';
import {
  alive,
  type Component,
  httpGet,
  killProcesses,
  type RunOptions,
  type RunResult,
  run,
  startComponent,
  waitFor,
} from './processes.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The Go-built binaries of a node (build-tools.sh). */
export const NODE_TOOLS = [
  'kubelet',
  'kube-proxy',
  'containerd',
  'containerd-shim-runc-v2',
  'ctr',
  'coredns',
  'pause',
] as const;
export type NodeTool = (typeof NODE_TOOLS)[number];

export const NODE_NAME = 'kvstore-node';
export const CLUSTER_DNS = '10.96.0.10';
/** Debian's runc (package runc). */
const RUNC = '/usr/sbin/runc';
const CNI_BIN = '/usr/lib/cni';

/** What `k8s:down` needs to remove a node another process started. */
export interface NodeState {
  readonly net: NodeNetwork;
  readonly dir: string;
  readonly network: string;
  readonly containerdSocket: string;
  readonly ctr: string;
  readonly pids: Record<string, number>;
}

/** Kubeconfigs and certificates the control plane made for the node's parts. */
export interface NodeCredentials {
  readonly ca: string;
  readonly kubeletCert: string;
  readonly kubeletKey: string;
  readonly kubelet: string;
  readonly kubeProxy: string;
  readonly coredns: string;
  readonly provisioner: string;
}

export interface NodeStartOptions {
  readonly dir: string;
  readonly logDir: string;
  readonly net: NodeNetwork;
  readonly bins: Record<NodeTool, string>;
  /** Directory with every tool linked by name (first on containerd's PATH: its shim). */
  readonly binDir: string;
  readonly credentials: NodeCredentials;
  readonly kubectl: (args: readonly string[], opts?: RunOptions) => Promise<RunResult>;
  /** Register components as they start, so the caller can stop them if start-up fails. */
  readonly onStart: (c: Component) => void;
}

/** Checks that the Debian packages a node needs are installed; the message says which are missing. */
export function checkHostPackages(): void {
  const missing: string[] = [];
  const has = (p: string) => {
    try {
      readFileSync(p);
      return true;
    } catch {
      return false;
    }
  };
  if (!has(RUNC)) missing.push('runc');
  if (!has(join(CNI_BIN, 'bridge'))) missing.push('containernetworking-plugins');
  if (!has('/usr/sbin/iptables')) missing.push('iptables');
  if (!has('/usr/sbin/conntrack')) missing.push('conntrack');
  if (missing.length) {
    throw new Error(
      `a real node needs the Debian packages: apt-get install -y ${missing.join(' ')}`,
    );
  }
}

/** A docker-archive tar (`docker save` format) with the static pause binary as /pause. */
export async function pauseImageTar(pauseBin: string, ref: string, dir: string): Promise<string> {
  const root = join(dir, 'rootfs');
  await mkdir(root, { recursive: true });
  await copyFile(pauseBin, join(root, 'pause'));
  await chmod(join(root, 'pause'), 0o755);
  const tarOpts = ['--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--sort=name'];
  await run('tar', [...tarOpts, '-C', root, '-cf', join(dir, 'layer.tar'), 'pause']);
  const layer = createHash('sha256')
    .update(readFileSync(join(dir, 'layer.tar')))
    .digest('hex');
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/pause'], User: '65535:65535' },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layer}`] },
    history: [{ created_by: 'kvstore test node: static pause binary' }],
  });
  const configId = createHash('sha256').update(config).digest('hex');
  await mkdir(join(dir, layer));
  await run('mv', [join(dir, 'layer.tar'), join(dir, layer, 'layer.tar')]);
  await writeFile(join(dir, `${configId}.json`), config);
  await writeFile(
    join(dir, 'manifest.json'),
    JSON.stringify([
      { Config: `${configId}.json`, RepoTags: [ref], Layers: [`${layer}/layer.tar`] },
    ]),
  );
  const tar = join(dir, 'pause.tar');
  await run('tar', [...tarOpts, '-C', dir, '-cf', tar, 'manifest.json', `${configId}.json`, layer]);
  return tar;
}

function inNetns(net: NodeNetwork, bin: string, args: readonly string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${net.netns}`, '--', bin, ...args]];
}

/** containerd's socket in a node directory. */
export function nodeSocket(dir: string): string {
  return join(dir, 'containerd.sock');
}

/** The state of a node about to start in dir; startNode records each process in its pids. */
export function newNodeState(net: NodeNetwork, dir: string, ctr: string): NodeState {
  return {
    net,
    dir,
    network: `kvstore-${net.id}`,
    containerdSocket: nodeSocket(dir),
    ctr,
    pids: {},
  };
}

/**
 * Starts the node: containerd, the pause image, the cluster objects, CoreDNS, kubelet,
 * kube-proxy and the provisioner. Resolves when the node is Ready, CoreDNS is ready and
 * kube-proxy is healthy. The caller stops it with stopNode(state), also when this rejects.
 */
export async function startNode(o: NodeStartOptions, state: NodeState): Promise<void> {
  checkHostPackages();
  const { net, dir, bins } = o;
  const l: NodeLayout = {
    name: NODE_NAME,
    dir,
    nodeIp: net.nodeIp,
    podCidr: net.podCidr,
    network: state.network,
    cgroupRoot: net.cgroupRoot,
    containerdSocket: state.containerdSocket,
    pauseImage: `kvstore.test/pause:${versionOf(bins.pause)}`,
    clusterDns: CLUSTER_DNS,
    kubeletPort: 10250,
  };
  for (const d of ['cni/net.d', 'cni/ipam', 'pod-logs', 'kubelet', 'volumes', 'pause-image']) {
    await mkdir(join(dir, d), { recursive: true });
  }
  const file = async (name: string, text: string) => {
    await writeFile(join(dir, name), text);
    return join(dir, name);
  };
  const pids = state.pids;
  const start = (name: string, bin: string, args: readonly string[], env?: NodeJS.ProcessEnv) => {
    const [cmd, argv] = inNetns(net, bin, args);
    const c = startComponent(name, cmd, argv, o.logDir, env);
    pids[name] = c.pid;
    o.onStart(c);
    return c;
  };
  const path = `${o.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  const ctr = (args: readonly string[], opts?: RunOptions) =>
    run(bins.ctr, ['--address', l.containerdSocket, '--namespace', 'k8s.io', ...args], opts);

  await file('cni/net.d/10-kvstore.conflist', cniConfig(l));
  const containerd = start(
    'containerd',
    bins.containerd,
    ['--config', await file('containerd.toml', containerdConfig(l, RUNC))],
    { ...process.env, PATH: path },
  );
  await waitFor('containerd', containerd, 60_000, async () => {
    const r = await ctr(['version'], { allowFailure: true, timeoutMs: 5_000 });
    return r.code === 0;
  });
  const tar = await pauseImageTar(bins.pause, l.pauseImage, join(dir, 'pause-image'));
  await ctr(['images', 'import', tar]);

  await o.kubectl(['apply', '-f', '-'], { input: clusterObjects(l) });
  const coredns = start('coredns', bins.coredns, [
    '-conf',
    await file('Corefile', corefile(l, o.credentials.coredns)),
  ]);
  const kubelet = start(
    'kubelet',
    bins.kubelet,
    [
      `--config=${await file(
        'kubelet.yaml',
        kubeletConfig(l, {
          ca: o.credentials.ca,
          cert: o.credentials.kubeletCert,
          key: o.credentials.kubeletKey,
          resolvConf: await file('resolv.conf', `search ${CLUSTER_DOMAIN}\noptions ndots:5\n`),
        }),
      )}`,
      `--kubeconfig=${o.credentials.kubelet}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--hostname-override=${l.name}`,
      `--node-ip=${l.nodeIp}`,
      '--v=1',
    ],
    { ...process.env, PATH: path },
  );
  const proxy = start(
    'kube-proxy',
    bins['kube-proxy'],
    [
      `--config=${await file('kube-proxy.yaml', kubeProxyConfig(l, o.credentials.kubeProxy))}`,
      '--v=1',
    ],
    { ...process.env, PATH: path },
  );
  const provisioner = startComponent(
    'local-path-provisioner',
    process.execPath,
    [
      join(HERE, 'local-path-provisioner.ts'),
      o.credentials.provisioner,
      join(dir, 'volumes'),
      l.name,
    ],
    o.logDir,
  );
  pids['local-path-provisioner'] = provisioner.pid;
  o.onStart(provisioner);

  await waitFor('the node to be Ready', kubelet, 120_000, async () => {
    const r = await o.kubectl(['wait', '--for=condition=Ready', '--timeout=5s', `node/${l.name}`], {
      allowFailure: true,
    });
    return r.code === 0;
  });
  await waitFor('CoreDNS /ready', coredns, 60_000, async () => {
    return (await httpGet(`http://${l.nodeIp}:8181/ready`)).status === 200;
  });
  await waitFor('kube-proxy /healthz', proxy, 60_000, async () => {
    return (await httpGet(`http://${l.nodeIp}:10256/healthz`)).status === 200;
  });
}

/** The version a cached tool's directory is named by (`<tool>-<version>/<tool>`). */
function versionOf(bin: string): string {
  const d = dirname(bin).split('/').pop() ?? '';
  return d.slice(d.indexOf('-v') + 1);
}

/** Shims of this node's containerd (they outlive containerd when killed). */
function shimPids(socket: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('containerd-shim-runc-v2') && cmd.includes(socket)) pids.push(Number(p));
    } catch {
      // exited
    }
  }
  return pids;
}

/**
 * Stops a node (possibly started by another process) and removes everything it made:
 * its processes and containers, mounts, cgroups, network namespace and host files.
 */
export async function stopNode(state: NodeState): Promise<void> {
  const { containerd, ...others } = state.pids;
  // The kubelet first, so nothing restarts the containers being removed.
  await killProcesses(Object.values(others));
  if (containerd !== undefined && alive(containerd)) {
    const ctr = (args: readonly string[]) =>
      run(state.ctr, ['--address', state.containerdSocket, '--namespace', 'k8s.io', ...args], {
        allowFailure: true,
        timeoutMs: 20_000,
      });
    // Delete every task through containerd, so each shim cleans up and exits.
    const tasks = (await ctr(['tasks', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    await Promise.all(
      tasks.map(async (t) => {
        await ctr(['tasks', 'kill', '--all', '--signal', 'SIGKILL', t]);
        await ctr(['tasks', 'delete', '--force', t]);
      }),
    );
  }
  if (containerd !== undefined) await killProcesses([containerd]);
  await killProcesses(shimPids(state.containerdSocket), 1_000);
  await removeNodeNetwork(state.net, state.dir, state.network);
}
