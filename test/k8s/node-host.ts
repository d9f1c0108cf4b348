// The host side of the real test node: its network namespace and link to the host, its cgroup parent, and the sweep that removes every trace of it (processes, mounts, cgroups, files).

import { randomBytes } from 'node:crypto';
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, sleep } from './processes.ts';

/** The node's network: a namespace with one veth link to the host and a pod subnet routed to it. */
export interface NodeNetwork {
  /** Short random id; names the namespace, the host link and the cgroup parent. */
  readonly id: string;
  /** Network namespace (`ip netns`) every node process runs in. */
  readonly netns: string;
  /** The host end of the link (in the host's namespace); the API server listens here. */
  readonly hostIf: string;
  readonly hostIp: string;
  /** The node end (`eth0` in the namespace): the node's InternalIP. */
  readonly nodeIp: string;
  readonly podCidr: string;
  /** cgroup parent of the pods, made in every cgroup v1 hierarchy. */
  readonly cgroupRoot: string;
  /** Kernel tunables the kubelet sets, as they were before (restored on removal). */
  readonly sysctls: Record<string, string>;
}

/** The sysctls the kubelet sets on start-up (pkg/kubelet/cm setupKernelTunables). */
const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

async function ip(args: readonly string[]): Promise<void> {
  await run('ip', args);
}

/** A /24 index n for 10.250.n.0/30 (link) and 10.244.n.0/24 (pods) that no host route uses. */
async function freeIndex(): Promise<number> {
  const { stdout } = await run('ip', ['-4', 'route', 'show', 'table', 'all']);
  const addrs = (await run('ip', ['-4', '-o', 'addr'])).stdout;
  const taken = (n: number) =>
    [`10.250.${n}.`, `10.244.${n}.`].some((p) => stdout.includes(p) || addrs.includes(p));
  for (let tries = 0; tries < 200; tries++) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (!taken(n)) return n;
  }
  throw new Error('no free 10.250.n.0/30 and 10.244.n.0/24 for a test node');
}

/** The cgroup hierarchies (mount points): every v1 one, and the unified one of a hybrid host. */
function cgroupHierarchies(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => (f[2] === 'cgroup' || f[2] === 'cgroup2') && f[1] !== undefined)
    .map((f) => f[1] as string);
}

/**
 * Makes the namespace, the link (host 10.250.n.1, node 10.250.n.2), the route to the pod subnet
 * and the pods' cgroup parent. On failure removes what it made.
 */
export async function createNodeNetwork(): Promise<NodeNetwork> {
  if (!existsSync('/proc/sys/net/bridge')) await run('modprobe', ['br_netfilter']);
  const id = randomBytes(3).toString('hex');
  const n = await freeIndex();
  const sysctls: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) sysctls[k] = readFileSync(`/proc/sys/${k}`, 'utf8').trim();
  const net: NodeNetwork = {
    id,
    netns: `kvstore-node-${id}`,
    hostIf: `kvh-${id}`,
    hostIp: `10.250.${n}.1`,
    nodeIp: `10.250.${n}.2`,
    podCidr: `10.244.${n}.0/24`,
    cgroupRoot: `/kvstore-node-${id}`,
    sysctls,
  };
  try {
    await ip(['netns', 'add', net.netns]);
    await ip([
      'link',
      'add',
      net.hostIf,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      net.netns,
    ]);
    await ip(['addr', 'add', `${net.hostIp}/30`, 'dev', net.hostIf]);
    await ip(['link', 'set', net.hostIf, 'up']);
    const inNs = ['-n', net.netns];
    await ip([...inNs, 'addr', 'add', `${net.nodeIp}/30`, 'dev', 'eth0']);
    await ip([...inNs, 'link', 'set', 'eth0', 'up']);
    await ip([...inNs, 'link', 'set', 'lo', 'up']);
    await ip([...inNs, 'route', 'add', 'default', 'via', net.hostIp]);
    await ip(['route', 'add', net.podCidr, 'via', net.nodeIp]);
    // Per-namespace sysctls: the node routes for its pods, and bridged pod traffic goes through
    // iptables (ClusterIP Services from a pod to a pod on the same bridge).
    await run('ip', [
      'netns',
      'exec',
      net.netns,
      'sysctl',
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.bridge.bridge-nf-call-iptables=1',
    ]);
    for (const h of cgroupHierarchies()) {
      const dir = join(h, net.cgroupRoot);
      await mkdir(dir, { recursive: true });
      // A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (existsSync(join(h, f))) await writeFile(join(dir, f), await readFile(join(h, f)));
      }
    }
    return net;
  } catch (e) {
    await removeNodeNetwork(net);
    throw e;
  }
}

/** SIGKILLs every process in the node's cgroups (pods, and containers whose shim is gone). */
function killCgroupProcesses(net: NodeNetwork): number {
  let killed = 0;
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) {
        if (!pid) continue;
        try {
          process.kill(Number(pid), 'SIGKILL');
          killed++;
        } catch {
          // gone
        }
      }
    } catch {
      return;
    }
    for (const e of entries) walk(join(dir, e));
  };
  for (const h of cgroupHierarchies()) walk(join(h, net.cgroupRoot));
  return killed;
}

/** Removes a cgroup tree bottom-up (a cgroup can be removed once it has no children or tasks). */
async function removeCgroupTree(dir: string): Promise<void> {
  let children: string[];
  try {
    children = readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return;
  }
  for (const c of children) await removeCgroupTree(join(dir, c));
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (attempt >= 50) throw new Error(`cannot remove cgroup ${dir}: ${code}`);
      await sleep(100);
    }
  }
}

/** Every mount point at or below dir, deepest first (from this process's mount table). */
export function mountsUnder(dir: string): string[] {
  const decode = (s: string) =>
    s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything below dir (pod volumes, container root filesystems, shm, netns files). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) await run('umount', ['-l', m], { allowFailure: true });
  }
  const left = mountsUnder(dir);
  if (left.length) throw new Error(`still mounted under ${dir}: ${left.join(', ')}`);
}

/** Host files the kubelet and libcni write outside the node's directory. */
function removeHostFiles(dir: string, network: string): void {
  // The kubelet links each container log into /var/log/containers (a fixed path).
  const logs = '/var/log/containers';
  if (existsSync(logs)) {
    for (const f of readdirSync(logs)) {
      try {
        if (readlinkSync(join(logs, f)).startsWith(`${dir}/`))
          rmSync(join(logs, f), { force: true });
      } catch {
        // not a link
      }
    }
  }
  // libcni caches each attachment's result under /var/lib/cni/results/<network>-<id>-<if>.
  const results = '/var/lib/cni/results';
  if (existsSync(results)) {
    for (const f of readdirSync(results)) {
      if (f.startsWith(`${network}-`)) rmSync(join(results, f), { force: true });
    }
  }
}

/**
 * Removes what createNodeNetwork and the node's processes left (call after the processes are
 * stopped): pod processes, mounts under dir, cgroups, the namespace (its links, bridge and every
 * iptables rule in it), the host route, host files, and the kernel tunables as they were.
 */
export async function removeNodeNetwork(
  net: NodeNetwork,
  dir?: string,
  network?: string,
): Promise<void> {
  const errors: string[] = [];
  const attempt = async (what: string, f: () => Promise<void> | void): Promise<void> => {
    try {
      await f();
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message}`);
    }
  };
  for (let i = 0; i < 20 && killCgroupProcesses(net) > 0; i++) await sleep(100);
  if (dir) await attempt('unmount', () => unmountUnder(dir));
  for (const h of cgroupHierarchies()) {
    await attempt('cgroup', () => removeCgroupTree(join(h, net.cgroupRoot)));
  }
  await attempt('netns', async () => {
    if (existsSync(`/run/netns/${net.netns}`)) await ip(['netns', 'del', net.netns]);
  });
  // The host end of a veth goes with its peer; delete it in case the pair was half made.
  await run('ip', ['link', 'del', net.hostIf], { allowFailure: true });
  await run('ip', ['route', 'del', net.podCidr], { allowFailure: true });
  if (dir && network) await attempt('host files', () => removeHostFiles(dir, network));
  for (const [k, v] of Object.entries(net.sysctls)) {
    await attempt(`sysctl ${k}`, () => writeFileSync(`/proc/sys/${k}`, v));
  }
  if (errors.length) throw new Error(`removing test node ${net.id}: ${errors.join('; ')}`);
}
