// Builds this node's cluster parts: membership, rings, peer transport, replication, rebalancing.

import type { Registry } from 'prom-client';
import type { Config } from '../config/index.ts';
import { ClusterCoordinator, Replicas } from '../coordinator/index.ts';
import { KvError } from '../errors/index.ts';
import {
  dnsSource,
  type MemberAddress,
  Membership,
  type PeerSource,
  parseDiscovery,
  parsePeers,
  staticSource,
  Topology,
} from '../membership/index.ts';
import type { Logger } from '../observability/index.ts';
import { PeerPool, PeerServer } from '../peer/index.ts';
import {
  collectTombstones,
  Hints,
  Rebalancer,
  registerRebalanceMetrics,
} from '../rebalance/index.ts';
import { createReplicaHandler, type HelloReply, METHODS, peerProof } from '../replica/index.ts';
import { HintStore, type Storage } from '../storage/index.ts';
import type { Secrets } from './secrets.ts';

const SETTLED_KEY = 'settled-ring';

export interface Cluster {
  readonly coordinator: ClusterCoordinator;
  readonly peerPort: number;
  /** CLUSTER's answer and GET /admin/cluster. */
  info(): unknown;
  /** POST /admin/decommission. */
  decommission(): unknown;
  /** GET /admin/decommission. */
  decommissionStatus(): unknown;
  stop(): Promise<void>;
}

function peerAddress(m: MemberAddress): string {
  return m.host.includes(':') ? `[${m.host}]:${m.peerPort}` : `${m.host}:${m.peerPort}`;
}

function sourceOf(
  config: Config,
  identify: (host: string, port: number) => Promise<string | null>,
): PeerSource | null {
  if (config.peers) return staticSource(parsePeers(config.peers));
  if (!config.discovery) return null;
  const { name } = parseDiscovery(config.discovery);
  const servers = config.dnsServers ? config.dnsServers.split(',').map((s) => s.trim()) : undefined;
  return dnsSource({
    name,
    defaultPeerPort: config.peerPort,
    ...(servers ? { servers } : {}),
    identify,
  });
}

/** Starts the peer port, resolves members once, and wires replication and data movement. */
export async function startCluster(
  config: Config,
  storage: Storage,
  registry: Registry,
  log: Logger,
  secrets: Secrets,
): Promise<Cluster> {
  const self = config.nodeName;
  const secret = secrets.clusterSecret;
  const pool = new PeerPool({
    logger: log,
    registry,
    client: {
      timeoutMs: config.peerTimeoutMs,
      tls: secrets.peerTls?.client ?? null,
      ...(secret ? { handshake: () => ({ method: METHODS.auth, body: peerProof(secret) }) } : {}),
    },
  });
  const hello = (address: string) => pool.get(address).request<HelloReply>(METHODS.hello, {});
  const identify = (host: string, port: number) =>
    hello(peerAddress({ name: '', host, peerPort: port })).then(
      (h) => h.name,
      () => null,
    );
  const hintStore = new HintStore(storage, config.maxHints);
  const metrics = registerRebalanceMetrics(registry, () => hintStore.count);
  let rebalancer: Rebalancer | null = null;
  let topology: Topology | null = null;
  const selfHello = (): HelloReply => ({
    name: self,
    status: rebalancer?.status ?? 'active',
    ringId: topology?.target.id ?? '',
    rebalanced: rebalancer?.rebalanced ?? null,
    settled: topology?.settled.members ?? [],
  });
  const peerServer = await PeerServer.start({
    host: config.peerHost,
    port: config.peerPort,
    handler: createReplicaHandler({
      storage,
      hello: selfHello,
      maxScanEntries: config.maxScanKeys + 64,
      clusterSecret: secret,
    }),
    logger: log,
    registry,
    tls: secrets.peerTls?.server ?? null,
  });
  const membership = new Membership({
    self: { name: self, host: config.peerHost, peerPort: peerServer.port },
    source: sourceOf(config, identify),
    probe: (m) => hello(peerAddress(m)),
    selfHello,
    resolveIntervalMs: config.resolveIntervalMs,
    probeIntervalMs: config.probeIntervalMs,
    probeFailures: config.probeFailures,
    logger: log,
    registry,
  });
  const call = (name: string, method: string, body: unknown) => {
    const m = membership.address(name);
    if (!m)
      return Promise.reject(
        new KvError('KV_ERR_PEER_UNAVAILABLE', `replication: ${name} is not a member`),
      );
    return pool.get(peerAddress(m)).request(method, body);
  };
  const replicas = new Replicas(self, storage, call);
  const resolved = await membership.start();
  const savedSettled = storage.readState<string[]>(SETTLED_KEY) ?? null;
  const initial = resolved || !savedSettled ? membership.ringMembers() : savedSettled;
  // A node with no saved ring is new: it adopts the settled ring its peers report (a joiner
  // routes to the old owners until the data moved); with no peer answering, nothing is settled
  // elsewhere and its own ring is the settled one.
  const reported = membership.members().find((m) => !m.self && (m.hello?.settled.length ?? 0) > 0);
  const settledAtStart = savedSettled ?? reported?.hello?.settled ?? null;
  topology = new Topology(
    initial.length > 0 ? initial : [self],
    settledAtStart,
    config.replicationFactor,
  );
  const topo = topology;
  const isUp = (name: string) => membership.isUp(name);
  const hints = new Hints({
    store: hintStore,
    replicas,
    isUp,
    isMember: (name) => membership.address(name) !== undefined,
    ttlMs: config.tombstoneGraceMs,
    intervalMs: config.hintIntervalMs,
    metrics,
    logger: log,
  });
  const rb = new Rebalancer({
    self,
    storage,
    topology: topo,
    replicas,
    rateBytes: config.rebalanceRateBytes,
    metrics,
    logger: log,
  });
  rebalancer = rb;
  const reconcile = () => {
    const names = membership.ringMembers();
    if (names.length > 0 && topo.setMembers(names)) {
      log.info({ ring: topo.target.id, members: topo.target.members }, 'ring changed');
      rb.onTargetChanged();
    }
    if (topo.trySettle(membership.members())) {
      log.info({ ring: topo.settled.id }, 'ring settled');
      void storage.writeState(SETTLED_KEY, topo.settled.members);
      const cleanup = () =>
        rb.onSettled().catch((err: unknown) => log.error({ err }, 'cleanup failed'));
      void cleanup();
      // Coordinators that settle a moment later may still send this node writes for keys it no
      // longer owns; a second pass once they have all settled removes those copies too.
      const again = setTimeout(cleanup, 5 * config.probeIntervalMs + config.peerTimeoutMs);
      again.unref();
    }
  };
  membership.on('change', reconcile);
  rb.on('change', reconcile);
  if (!savedSettled) await storage.writeState(SETTLED_KEY, topo.settled.members);
  rb.resume();
  reconcile();
  hints.start();
  const gcOptions = {
    self,
    storage,
    topology: topo,
    replicas,
    isUp,
    handingOff: () => membership.members().some((m) => m.hello?.status === 'decommissioning'),
    graceMs: config.tombstoneGraceMs,
    metrics,
    logger: log,
  };
  const gcTimer = setInterval(() => {
    collectTombstones(gcOptions).catch((err: unknown) =>
      log.error({ err }, 'tombstone collection failed'),
    );
  }, config.gcIntervalMs);
  gcTimer.unref();

  const info = () => ({
    node: self,
    status: rb.status,
    ring: { target: topo.target.id, settled: topo.settled.id, moving: topo.moving },
    replicationFactor: topo.rf(topo.target),
    members: membership.members().map((m) => ({
      name: m.name,
      address: peerAddress(m),
      state: m.state,
      status: m.hello?.status ?? null,
      share: topo.target.members.includes(m.name)
        ? Number(topo.target.share(m.name).toFixed(4))
        : 0,
      ringId: m.hello?.ringId ?? null,
      rebalanced: m.hello?.rebalanced ?? null,
    })),
    transfer: rb.progress,
    hints: hintStore.count,
  });
  const coordinator = new ClusterCoordinator({
    storage,
    topology: topo,
    replicas,
    isUp,
    hint: (target, key, raw) => hints.add(target, key, raw),
    info,
    readQuorum: config.readQuorum,
    writeQuorum: config.writeQuorum,
    maxScanKeys: config.maxScanKeys,
    registry,
  });
  return {
    coordinator,
    peerPort: peerServer.port,
    info,
    decommission() {
      rb.decommission();
      return { status: rb.status, transfer: rb.progress };
    },
    decommissionStatus: () => ({ status: rb.status, transfer: rb.progress }),
    async stop() {
      clearInterval(gcTimer);
      membership.stop();
      await rb.stop();
      await hints.stop();
      await peerServer.close();
      await pool.close();
    },
  };
}
