// Starts a cluster of real kvstore processes, each on its own loopback address (127.a.b.i).

import { createLogger } from '../../src/observability/index.ts';
import { PeerClient } from '../../src/peer/index.ts';
import { defer } from './defer.ts';
import type { TestDnsServer } from './dns-server.ts';
import { LineClient } from './line-client.ts';
import { loopbackBlock } from './loopback.ts';

export { loopbackBlock } from './loopback.ts';

import { type NodeProcess, type SpawnedNode, spawnNodeProcess, tempDir } from './node-process.ts';

export interface ClusterNode {
  readonly name: string;
  readonly host: string;
  readonly dataDir: string;
  proc: NodeProcess;
  /** The node's --password, which connect() sends with AUTH; undefined when none. */
  readonly password?: string;
}

/**
 * Probing fast enough for tests to see a returning node quickly. A killed node is found at once
 * anyway (its port refuses); peer timeouts stay at their default so a loaded machine is not
 * mistaken for a dead node.
 */
export const FAST_PROBES = ['--probe-interval-ms', '200', '--probe-failures', '3'];

/**
 * Anti-entropy off: for tests that show what one other mechanism (hints, read repair, the write
 * path, a refusal) does alone, which a pass at rest would otherwise mend behind their back.
 */
export const NO_ANTI_ENTROPY = ['--anti-entropy-interval-ms', '0'];

/**
 * Tombstones collected soon after a delete: a grace just above the peer timeout (2 s) and the
 * clock offset bound (0.5 s), a pass every 200 ms.
 */
export const FAST_GC = ['--tombstone-grace-ms', '2600', '--gc-interval-ms', '200'];

/**
 * Starts one member at `host` with the seed's fixed ports (each member has its own address).
 * `command` prefixes the node's command line (see startNodeProcess).
 */
export async function startMember(
  name: string,
  host: string,
  args: string[],
  dataDir: string = tempDir(),
  command?: readonly string[],
): Promise<ClusterNode> {
  return spawnMember(name, host, args, dataDir, command).started;
}

/** A member spawned (startMember without waiting): `started` resolves once it listens. */
export interface SpawnedMember {
  readonly spawned: SpawnedNode;
  readonly started: Promise<ClusterNode>;
}

/** startMember that does not wait for the node to listen (it may wait for its members first). */
export function spawnMember(
  name: string,
  host: string,
  args: string[],
  dataDir: string = tempDir(),
  command?: readonly string[],
): SpawnedMember {
  const spawned = spawnNodeProcess({
    dataDir,
    ...(command ? { command } : {}),
    args: [
      '--node-name',
      name,
      '--host',
      host,
      '--port',
      '8081',
      '--http-port',
      '9090',
      '--peer-port',
      '7946',
      ...FAST_PROBES,
      ...args,
    ],
  });
  const at = args.indexOf('--password');
  const started = spawned.listening.then(
    (proc): ClusterNode =>
      at === -1
        ? { name, host, dataDir, proc }
        : { name, host, dataDir, proc, password: args[at + 1]! },
  );
  started.catch(() => {}); // a caller that never waits for it is told by spawned.exited
  return { spawned, started };
}

/**
 * A member that finds the others through the records of `service` on the test DNS server at
 * 127.0.0.1:`dnsPort` (re-resolved every 300 ms).
 */
export function startDnsMember(
  dnsPort: number,
  service: string,
  name: string,
  host: string,
  extra: string[] = [],
): Promise<ClusterNode> {
  return spawnDnsMember(dnsPort, service, name, host, extra).started;
}

/** A member's flags to find its peers under `service` on the test DNS server, resolving every 300 ms. */
export function dnsDiscoveryArgs(dnsPort: number, service: string): string[] {
  return [
    ...['--discovery', `dns:${service}`, '--dns-servers', `127.0.0.1:${dnsPort}`],
    ...['--resolve-interval-ms', '300'],
  ];
}

/**
 * n members `kvstore-0..n-1` on a new loopback block, found through the A records of `service` on
 * the test DNS server `zone`, each named by a PTR record (no node asks an address who it is,
 * which would connect it to itself too); resolves once formed (waitFormed).
 */
export async function startNamedDnsCluster(
  zone: TestDnsServer,
  service: string,
  n: number,
  extra: string[] = [],
): Promise<{ hosts: string[]; nodes: ClusterNode[] }> {
  const block = loopbackBlock();
  const hosts = Array.from({ length: n }, (_, i) => `${block}.${i + 1}`);
  zone.setA(service, hosts);
  for (const [i, h] of hosts.entries()) zone.setPtr(h, `kvstore-${i}.${service}`);
  const nodes = await Promise.all(
    hosts.map((h, i) => startDnsMember(zone.port, service, `kvstore-${i}`, h, extra)),
  );
  await waitFormed(nodes);
  return { hosts, nodes };
}

/** startDnsMember that does not wait for the node to listen. */
export function spawnDnsMember(
  dnsPort: number,
  service: string,
  name: string,
  host: string,
  extra: string[] = [],
  dataDir: string = tempDir(),
): SpawnedMember {
  return spawnMember(name, host, [...dnsDiscoveryArgs(dnsPort, service), ...extra], dataDir);
}

/**
 * n members `kvstore-0..n-1` that list each other with --peers; `dataDirs[i]` (when given) is
 * member i's data directory, else a new temporary one. Resolves once every member sees the
 * others up and routes by one settled ring of them all: members started together found it
 * together only if they answered each other's first probes, else they settle it as a join.
 */
export async function startStaticCluster(
  n: number,
  args: string[] = [],
  dataDirs: readonly string[] = [],
): Promise<ClusterNode[]> {
  const block = loopbackBlock();
  const hosts = Array.from({ length: n }, (_, i) => `${block}.${i + 1}`);
  const peers = hosts.map((h, i) => `kvstore-${i}=${h}:7946`).join(',');
  const nodes = await Promise.all(
    hosts.map((h, i) =>
      startMember(`kvstore-${i}`, h, ['--peers', peers, ...args], dataDirs[i] ?? tempDir()),
    ),
  );
  await waitFormed(nodes);
  return nodes;
}

/**
 * Waits until a cluster started together is formed, not just up: every member up everywhere
 * (waitAllUp, within `upTimeoutMs`), then every node routing by one settled ring of them all,
 * data not moving (waitSettled). A node that founded a ring of itself before it heard the others
 * holds the settled ring alone for a while, and every write then needs its acknowledgement.
 */
export async function waitFormed(
  nodes: readonly ClusterNode[],
  upTimeoutMs?: number,
): Promise<void> {
  await waitAllUp(nodes, upTimeoutMs);
  await waitSettled(
    nodes,
    nodes.map((n) => n.name),
  );
}

/** Waits until every node sees every other node up (the failure detector has probed them). */
export async function waitAllUp(nodes: readonly ClusterNode[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes) {
    for (;;) {
      const info = await clusterInfo(n);
      const up = info.members.filter((m) => m.state === 'up').length;
      if (up === nodes.length) break;
      if (Date.now() > deadline) throw new Error(`${n.name} sees ${up}/${nodes.length} members up`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The --peers list naming every node of a static cluster. */
export function peersOf(nodes: readonly ClusterNode[]): string {
  return nodes.map((n) => `${n.name}=${n.host}:7946`).join(',');
}

export async function restart(
  node: ClusterNode,
  args: string[],
  command?: readonly string[],
): Promise<void> {
  node.proc = (await startMember(node.name, node.host, args, node.dataDir, command)).proc;
}

/** A text-protocol client of `node`, authenticated when the node has a password. */
export async function connect(node: ClusterNode): Promise<LineClient> {
  const c = await LineClient.connect(node.proc.port, node.host);
  if (node.password !== undefined) await c.call(`AUTH ${node.password}`);
  return c;
}

/** A text-protocol client of `node` (see connect), closed when the test ends. */
export async function openClient(node: ClusterNode): Promise<LineClient> {
  const c = await connect(node);
  defer(() => c.close());
  return c;
}

/** A peer-port client of `node`, as another member would use it; closed when the test ends. */
export function peerClientOf(node: ClusterNode): PeerClient {
  const p = new PeerClient({
    address: `${node.host}:7946`,
    logger: createLogger('silent', {}),
    timeoutMs: 5000,
  });
  defer(() => p.close());
  return p;
}

/** The node's CLUSTER answer. */
export async function clusterInfo(node: ClusterNode): Promise<ClusterInfo> {
  const c = await connect(node);
  try {
    return JSON.parse(await c.call('CLUSTER')) as ClusterInfo;
  } finally {
    c.close();
  }
}

/** Waits until every node routes by one settled ring of exactly `names`, data not moving. */
export async function waitSettled(
  nodes: readonly ClusterNode[],
  names: string[],
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes) {
    for (;;) {
      const info = await clusterInfo(n);
      const ring = info.members.filter((m) => m.share > 0).map((m) => m.name);
      if (!info.ring.moving && JSON.stringify(ring) === JSON.stringify(names)) break;
      if (Date.now() > deadline) throw new Error(`${n.name} not settled: ${JSON.stringify(info)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface ClusterInfo {
  node: string;
  /** This node's data-directory incarnation. */
  incarnation: string;
  status: string;
  ring: { target: string; settled: string; epoch: number; moving: boolean };
  members: {
    name: string;
    state: string;
    status: string | null;
    share: number;
    /** The incarnation the member reported in its last hello. */
    incarnation: string | null;
    /** Id of the ring it routes by (its last hello); null before one. */
    ringId: string | null;
    /** When its last hello came (ISO time), or null. */
    lastContact?: string | null;
    /** Its last hello said it refuses writes for its clock. */
    clockRefusing?: boolean;
  }[];
  transfer: { done: boolean; sent: number } | null;
  hints: number;
  /** Members whose member list has differed from this node's for longer than a join takes. */
  memberListsDiffer?: Record<string, string[]>;
  decommissionedListed?: string[];
}

/** One sample of the node's /metrics. */
export async function metric(node: ClusterNode, series: string): Promise<number> {
  const res = await fetch(`http://${node.host}:${node.proc.httpPort}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}
