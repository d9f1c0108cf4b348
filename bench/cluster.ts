// Starts a 3-node kvstore cluster (RF=3, W=2, R=2) on loopback addresses 127.a.b.1-3 for the bench.

import { type Server, scrapeMetrics, startKvstore, stopServer } from './procs.ts';
import { respCall } from './respload.ts';

/** The same ports on every member; each member has its own loopback address. */
const PORTS = [8081, 9090, 7946] as const;
export const CLUSTER_ARGS = [
  '--replication-factor',
  '3',
  '--write-quorum',
  '2',
  '--read-quorum',
  '2',
] as const;

interface ClusterInfo {
  readonly ring: { readonly moving: boolean };
  readonly members: readonly { readonly name: string; readonly state: string }[];
}

/** A random 127.x.y.0/24 block, so a test run on the same machine does not share addresses. */
export function loopbackBlock(): string {
  const octet = () => 1 + Math.floor(Math.random() * 250);
  return `127.${octet()}.${octet()}`;
}

/**
 * How many members `node` sees up, from its CLUSTER JSON (0 while it does not answer, or while
 * its ring is not settled yet: members started together settle their first ring as a join when
 * they did not all answer each other's first probes).
 */
async function membersUp(node: Server): Promise<number> {
  try {
    const reply = await respCall(node.host, node.port, ['CLUSTER']);
    if (typeof reply !== 'string') return 0;
    const info = JSON.parse(reply) as ClusterInfo;
    if (info.ring.moving) return 0;
    return info.members.filter((m) => m.state === 'up').length;
  } catch {
    return 0;
  }
}

/** What else each member runs with: the entry module (default src/main.ts) and extra flags. */
export interface ClusterOptions {
  readonly script?: string;
  readonly args?: readonly string[];
  /** Each member's inspector listens on its own address at this port (bench/profile.ts). */
  readonly inspectPort?: number;
  /** Flags for node itself (e.g. `--trace-gc`), before the script. */
  readonly nodeArgs?: readonly string[];
  /** Client, HTTP and peer ports of every member (default 8081, 9090, 7946). */
  readonly ports?: readonly [number, number, number];
}

/**
 * How long startCluster waits for the members to see each other up (and their first pass): a
 * hang, not a slow start, fails it (members started together on 2 cores beside other work took
 * 14-18 s at load 30-40).
 */
export const CLUSTER_START_MS = 120_000;

/**
 * Starts `n` members that list each other with --peers; resolves once each sees all n up and
 * routes by a settled ring.
 */
export async function startCluster(
  root: string,
  n = 3,
  timeoutMs = CLUSTER_START_MS,
  opts: ClusterOptions = {},
): Promise<Server[]> {
  const block = loopbackBlock();
  const hosts = Array.from({ length: n }, (_, i) => `${block}.${i + 1}`);
  const ports = opts.ports ?? PORTS;
  const peers = hosts.map((h, i) => `kvstore-${i}=${h}:${ports[2]}`).join(',');
  const started = await Promise.allSettled(
    hosts.map((host, i) =>
      startKvstore(root, {
        name: `kvstore-${i}`,
        host,
        ports,
        args: ['--peers', peers, ...CLUSTER_ARGS, ...(opts.args ?? [])],
        nodeArgs: [
          ...(opts.nodeArgs ?? []),
          ...(opts.inspectPort === undefined ? [] : [`--inspect=${host}:${opts.inspectPort}`]),
        ],
        ...(opts.script === undefined ? {} : { script: opts.script }),
      }),
    ),
  );
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(nodes.map(stopServer));
    throw failed.reason;
  }
  const deadline = Date.now() + timeoutMs;
  const antiEntropy = !(opts.args ?? []).some(
    (a, i, all) => a === '--anti-entropy-interval-ms' && all[i + 1] === '0',
  );
  for (const node of nodes) {
    for (;;) {
      const up = await membersUp(node);
      // The pass every member makes when the cluster first comes to rest (of an empty store, so
      // at once) is over: the load that follows is not measured beside it.
      if (up === n && (!antiEntropy || (await passesCompleted(node, ports[1])) > 0)) break;
      if (Date.now() > deadline) {
        await Promise.all(nodes.map(stopServer));
        throw new Error(
          `bench: cluster member ${node.name} sees ${up}/${n} members up${up === n ? ', no anti-entropy pass completed' : ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return nodes;
}

/** Anti-entropy passes `node` has completed (0 while its metrics do not answer). */
async function passesCompleted(node: Server, httpPort: number): Promise<number> {
  try {
    const m = await scrapeMetrics(node.host, httpPort);
    return m.get('kvstore_anti_entropy_passes_total{result="completed"}') ?? 0;
  } catch {
    return 0;
  }
}
