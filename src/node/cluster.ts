// Builds this node's cluster parts: membership, rings, peer transport, replication, rebalancing.

import type { Registry } from 'prom-client';
import { peerProof } from '../auth/index.ts';
import { BackupSessions, backupRoutes } from '../backup/index.ts';
import type { Config } from '../config/index.ts';
import { ClusterCoordinator } from '../coordinator/index.ts';
import { KvError } from '../errors/index.ts';
import {
  type AddressBook,
  dnsSource,
  loadIncarnation,
  type MemberAddress,
  Membership,
  newestReported,
  type PeerSource,
  parseDiscovery,
  parsePeers,
  parseSettled,
  type RingChanges,
  readHello,
  registerRingMetrics,
  stateAddressBook,
  staticSource,
  Topology,
} from '../membership/index.ts';
import type { Logger, StreamRoute } from '../observability/index.ts';
import { PeerPool, PeerServer } from '../peer/index.ts';
import {
  collectTombstones,
  Hints,
  Rebalancer,
  registerRebalanceMetrics,
} from '../rebalance/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  METHODS,
  RemoteVersions,
  Replicas,
  scanServeLimit,
} from '../replica/index.ts';
import { HintStore, type Storage } from '../storage/index.ts';
import type { Secrets } from './secrets.ts';

const SETTLED_KEY = 'settled-ring';
/** Names of peer addresses the DNS source learned (A/AAAA discovery). */
const DNS_NAMES_KEY = 'dns-names';

export interface Cluster {
  readonly coordinator: ClusterCoordinator;
  readonly peerPort: number;
  /** CLUSTER's answer and GET /admin/cluster. */
  info(): unknown;
  /** POST /admin/decommission. */
  decommission(): unknown;
  /** GET /admin/decommission. */
  decommissionStatus(): unknown;
  /** POST /admin/recommission: rejects with KV_ERR_INVALID_ARGUMENT when it cannot. */
  recommission(): Promise<unknown>;
  /** Backup and restore endpoints (GET /admin/backup, POST /admin/restore/...). */
  readonly streams: Readonly<Record<string, StreamRoute>>;
  stop(): Promise<void>;
}

function peerAddress(m: MemberAddress): string {
  return m.host.includes(':') ? `[${m.host}]:${m.peerPort}` : `${m.host}:${m.peerPort}`;
}

function sourceOf(
  config: Config,
  identify: (host: string, port: number) => Promise<string | null>,
  names: AddressBook,
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
    names,
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
  const incarnation = await loadIncarnation(storage);
  log.info({ incarnation: incarnation.id, new: incarnation.created }, 'data directory incarnation');
  const pool = new PeerPool({
    logger: log,
    registry,
    client: {
      timeoutMs: config.peerTimeoutMs,
      tls: secrets.peerTls?.client ?? null,
      ...(secret ? { handshake: () => ({ method: METHODS.auth, body: peerProof(secret) }) } : {}),
    },
  });
  const hello = (address: string) =>
    pool.get(address).request<unknown>(METHODS.hello, {}).then(readHello);
  const identify = (host: string, port: number) =>
    hello(peerAddress({ name: '', host, peerPort: port })).then(
      (h) => h.name,
      () => null,
    );
  const hintStore = new HintStore(storage, config.maxHints);
  const metrics = registerRebalanceMetrics(registry, () => hintStore.count);
  let rebalancer: Rebalancer | null = null;
  let topology: Topology | null = null;
  const ringMetrics = registerRingMetrics(registry, () => topology?.settledRing.epoch ?? 0);
  const selfHello = (): HelloReply => ({
    name: self,
    incarnation: incarnation.id,
    status: rebalancer?.status ?? 'active',
    ringId: topology?.target.id ?? '',
    rebalanced: rebalancer?.rebalanced ?? null,
    settled: topology?.settledRing ?? { epoch: 0, members: [], incarnations: {}, lost: [] },
    hints: hintStore.count,
  });
  // Before anything listens: a malformed --peers fails the start without a port left open.
  const source = sourceOf(
    config,
    identify,
    stateAddressBook(storage, DNS_NAMES_KEY, (err) =>
      log.warn({ err }, 'peer address names not saved'),
    ),
  );
  const versions = new RemoteVersions({ clock: storage.clock, registry, logger: log });
  const backups = new BackupSessions(storage, incarnation.id);
  const peerServer = await PeerServer.start({
    host: config.peerHost,
    port: config.peerPort,
    handler: createReplicaHandler({
      storage,
      hello: selfHello,
      incarnation: incarnation.id,
      maxScanEntries: scanServeLimit(config.maxScanKeys),
      clusterSecret: secret,
      versions,
      maxClockOffsetMs: config.maxClockOffsetMs,
      methods: backups.methods(),
    }),
    logger: log,
    registry,
    tls: secrets.peerTls?.server ?? null,
    requireAuth: secret !== null,
    handshakeTimeoutMs: config.peerHandshakeTimeoutMs,
    maxConnections: config.maxPeerConnections,
    maxBufferedBytes: config.maxPeerBufferBytes,
  });
  const membership = new Membership({
    self: { name: self, host: config.peerHost, peerPort: peerServer.port },
    source,
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
  // Reads count a settled owner only if it still has the data directory the ring recorded;
  // writes carry the peer timeout as their deadline.
  const replicas = new Replicas(
    self,
    storage,
    call,
    (name) => topology?.incarnationOf(name),
    versions,
    config.peerTimeoutMs,
  );
  const resolved = await membership.start();
  const saved = parseSettled(storage.readState<unknown>(SETTLED_KEY));
  const initial = resolved || !saved ? membership.ringMembers() : [...saved.members];
  // A node with no saved ring is new: it starts from the newest settled ring its peers report
  // (a joiner routes to the old owners until the data moved); with no peer answering, nothing
  // is settled elsewhere and its own ring is the settled one. A node with a saved ring adopts a
  // newer one its peers report in the first update below, before it serves anything.
  topology = new Topology(
    initial.length > 0 ? initial : [self],
    saved ?? newestReported(membership.members())?.ring ?? null,
    config.replicationFactor,
  );
  const topo = topology;
  const isUp = (name: string) => membership.isUp(name);
  const hints = new Hints({
    store: hintStore,
    replicas,
    isUp,
    isMember: (name) => membership.address(name) !== undefined,
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
  // Saves the settled ring as it is when the write runs: writes in order, the last one current.
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    saving = saving
      .then(() => storage.writeState(SETTLED_KEY, topo.settledRing))
      .catch((err: unknown) => log.error({ err }, 'settled ring not saved'));
    return saving;
  };
  const cleanup = () => {
    const run = () => rb.onSettled().catch((err: unknown) => log.error({ err }, 'cleanup failed'));
    void run();
    // Coordinators that settle a moment later may still send this node writes for keys it no
    // longer owns; a second pass once they have all settled removes those copies too.
    setTimeout(run, 5 * config.probeIntervalMs + config.peerTimeoutMs).unref();
  };
  let transfer = topo.transferId;
  const report = (c: RingChanges) => {
    const ring = topo.settledRing;
    if (c.adopted) {
      const { from } = c.adopted;
      log.info({ from, epoch: ring.epoch, members: ring.members }, 'settled ring adopted');
      ringMetrics.changed('adopted');
    }
    for (const r of c.replaced) {
      log.warn(
        { member: r.name, recorded: r.recorded, incarnation: r.incarnation, epoch: ring.epoch },
        'member has a new data directory: not a holder of data until rebalanced',
      );
      ringMetrics.changed('replaced');
    }
    if (c.recorded.length > 0) log.info({ members: c.recorded }, 'member incarnations recorded');
    if (c.targetChanged) {
      log.info({ ring: topo.target.id, members: topo.target.members }, 'ring changed');
    }
    if (c.settled) {
      log.info({ ring: topo.settled.id, epoch: ring.epoch }, 'ring settled');
      ringMetrics.changed('settled');
    }
  };
  // One update at a time: the rebalancer reports synchronously from inside onRingsChanged().
  let updating = false;
  let pending = false;
  const reconcile = () => {
    pending = true;
    if (updating) return;
    updating = true;
    try {
      while (pending) {
        pending = false;
        const c = topo.update(membership.members());
        report(c);
        if (c.settledChanged) void save();
        if ((c.settled || c.adopted) && !topo.moving) cleanup();
        if (topo.transferId !== transfer) {
          transfer = topo.transferId;
          rb.onRingsChanged();
        }
      }
    } finally {
      updating = false;
    }
  };
  membership.on('change', reconcile);
  rb.on('change', reconcile);
  rb.resume();
  reconcile();
  // A new node's ring is durable before it serves; a saved one is rewritten only if it changed.
  await (saved === null ? save() : saving);
  hints.start();
  const atRest = () => topo.atRest(membership.members());
  const gcOptions = {
    self,
    storage,
    topology: topo,
    replicas,
    quiet: atRest,
    graceMs: config.tombstoneGraceMs,
    metrics,
    logger: log,
  };
  // While the cluster is at rest: first drop copies of keys this node does not own (left by a
  // late hint, hand-off batch or write from a coordinator that had not seen the ring change yet),
  // then collect tombstones, which waits for every member to hold no older copy.
  let collecting = false;
  const gcTimer = setInterval(() => {
    if (collecting) return;
    if (!atRest()) {
      metrics.gcSkipped.inc();
      return;
    }
    collecting = true;
    rb.onSettled()
      .then(() => collectTombstones(gcOptions))
      .catch((err: unknown) => log.error({ err }, 'tombstone collection failed'))
      .finally(() => {
        collecting = false;
      });
  }, config.gcIntervalMs);
  gcTimer.unref();

  const info = () => ({
    node: self,
    incarnation: incarnation.id,
    status: rb.status,
    ring: {
      target: topo.target.id,
      settled: topo.settled.id,
      epoch: topo.settledRing.epoch,
      moving: topo.moving,
    },
    replicationFactor: topo.rf(topo.target),
    members: membership.members().map((m) => ({
      name: m.name,
      address: peerAddress(m),
      state: m.state,
      status: m.hello?.status ?? null,
      share: topo.target.members.includes(m.name)
        ? Number(topo.target.share(m.name).toFixed(4))
        : 0,
      incarnation: m.hello?.incarnation || null,
      recorded: topo.incarnationOf(m.name) ?? null,
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
    readRepairChance: config.readRepairChance,
    readSpeculateMs: config.readSpeculateMs,
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
    async recommission() {
      const { dropped } = await rb.recommission();
      return { status: rb.status, dropped };
    },
    streams: backupRoutes({
      self,
      sessions: backups,
      call,
      topology: topo,
      replicas,
      logger: log,
    }),
    async stop() {
      backups.close();
      clearInterval(gcTimer);
      membership.stop();
      await rb.stop();
      await hints.stop();
      await peerServer.close();
      await pool.close();
    },
  };
}
