// Builds this node's cluster parts: membership, rings, peer transport, replication, rebalancing.

import { Resolver } from 'node:dns';
import type { Registry } from 'prom-client';
import type {
  ClusterInfo,
  DecommissionState,
  RecommissionResult,
  Refusal,
  RingsView,
} from '../admin/index.ts';
import { peerHandshake } from '../auth/index.ts';
import { BackupSessions, backupRoutes } from '../backup/index.ts';
import { type Config, quorumsOverlap } from '../config/index.ts';
import { ClusterCoordinator } from '../coordinator/index.ts';
import { KvError } from '../errors/index.ts';
import {
  type AddressBook,
  Callers,
  ClockCheck,
  clusterInfo,
  type Duplicate,
  dnsSource,
  type FoundingBlock,
  holdsDataIn,
  loadIncarnation,
  lostAt,
  Membership,
  MembershipCheck,
  membershipSpreadMs,
  type PeerSource,
  parseDiscovery,
  parsePeers,
  parseSettled,
  peerAddressOf,
  ReplicationCheck,
  RingFencing,
  RingKeeper,
  readDecommissionedNotice,
  readHello,
  registerRingMetrics,
  settleSpreadMs,
  startingTopology,
  stateAddressBook,
  staticSource,
  type Topology,
  tellDecommissioned,
  untilFoundable,
} from '../membership/index.ts';
import type { Logger, StreamRoute } from '../observability/index.ts';
import { PeerPool, PeerServer } from '../peer/index.ts';
import {
  ANTI_ENTROPY_METHODS,
  AntiEntropy,
  copyTimeoutMs,
  dropAll,
  dropHints,
  expiredLaterMs,
  Hints,
  Rebalancer,
  readWaitMs,
  recentRecord,
  registerAntiEntropyMetrics,
  registerRebalanceMetrics,
  repairWithinMs,
  startCollector,
} from '../rebalance/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  METHODS,
  type MemberLoad,
  type PeerCall,
  RemoteVersions,
  Replicas,
  SCAN_REPLY_TIMEOUT_SHARE,
  ScanWork,
  scanServeLimit,
} from '../replica/index.ts';
import {
  HintStore,
  readStateDoc,
  type Storage,
  untilAborted,
  writeStateDoc,
} from '../storage/index.ts';
import { othersServing, refusalOf } from './refusal.ts';
import type { Secrets } from './secrets.ts';

export interface Cluster {
  readonly coordinator: ClusterCoordinator;
  /** The node's scan work per event-loop turn (INFO's total_scan_records). */
  readonly scanWork: ScanWork;
  readonly peerPort: number;
  /** CLUSTER's answer and GET /admin/cluster. */
  info(): ClusterInfo;
  /**
   * What the node refuses of its clients' commands now, why, and whether it is ready all the
   * same (refusalOf): /readyz, CLUSTER's `refusing`, INFO.
   */
  refusal(): Refusal | null;
  /**
   * POST /admin/decommission: resolves once the new status is on disk (or the disk refused it:
   * full; saved again every 5 s); rejects when this node cannot decommission now.
   */
  decommission(): Promise<DecommissionState>;
  /** GET /admin/decommission. */
  decommissionStatus(): DecommissionState;
  /** POST /admin/recommission: rejects with KV_ERR_INVALID_ARGUMENT when it cannot. */
  recommission(): Promise<RecommissionResult>;
  /**
   * Before the node stops: when it is decommissioned, tells every member so and waits for their
   * acknowledgements (at most `waitMs`), so none keeps it as a member down once its address is
   * gone. Never rejects.
   */
  tellLeaving(waitMs: number): Promise<void>;
  /** Each ring's members and their shares of the keys (the console's ring picture). */
  rings(): RingsView;
  /** The replicas of `key` in the settled and the target ring, in preference order. */
  owners(key: Buffer): { settled: string[]; target: string[] };
  /** Backup and restore endpoints (GET /admin/backup, POST /admin/restore/...). */
  readonly streams: Readonly<Record<string, StreamRoute>>;
  stop(): Promise<void>;
}

/**
 * `{ listed }` once the member source answered, else nothing; `{ kept }` when it keeps members
 * its source no longer lists, and `{ unnamed }` when some addresses are not named yet (see
 * HelloReply.listed, kept and unnamed).
 */
function listedOf(
  names: string[] | null,
  kept: string[],
  unnamed: number,
): { listed?: string[]; kept?: string[]; unnamed?: number } {
  return {
    ...(names === null ? {} : { listed: names }),
    ...(names === null || kept.length === 0 ? {} : { kept }),
    ...(unnamed > 0 ? { unnamed } : {}),
  };
}

/** --dns-servers as a list, or undefined for the system's resolver. */
function dnsServersOf(config: Config): string[] | undefined {
  return config.dnsServers ? config.dnsServers.split(',').map((s) => s.trim()) : undefined;
}

/**
 * Checks --peers, --discovery and --dns-servers as startCluster reads them; throws
 * a configuration error (KV_ERR_INVALID_ARGUMENT, KV_ERR_CONFIG) naming the flag. Called before anything is made.
 */
export function checkMembership(config: Config): void {
  if (config.peers) parsePeers(config.peers);
  if (!config.discovery) return;
  parseDiscovery(config.discovery);
  const servers = dnsServersOf(config);
  if (servers === undefined) return;
  try {
    new Resolver().setServers(servers);
  } catch (err) {
    throw new KvError(
      'KV_ERR_CONFIG',
      `--dns-servers (KV_DNS_SERVERS) '${config.dnsServers}' is not a list of ip:port`,
      { cause: err },
    );
  }
}

/**
 * How long the peer pool keeps the connection of an address nobody asks for (PeerPool
 * idleCloseMs). Every member's address is asked for at every round of probes, and every address
 * the DNS source names by asking it at every resolve, each round taking up to a peer timeout:
 * three such rounds. What it closes is an address listed once and never a member to leave (one
 * that did not answer who it is, or answered a name another address has, before it was
 * unlisted): without it, its client and connection stayed for good, one more per such address.
 */
function peerIdleCloseMs(config: Config): number {
  const rounds =
    3 * (Math.max(config.resolveIntervalMs, config.probeIntervalMs) + config.peerTimeoutMs);
  // setInterval takes at most 2^31 - 1 ms (a longer one fires every millisecond).
  return Math.min(rounds, 2 ** 31 - 1);
}

function sourceOf(
  config: Config,
  identify: (host: string, port: number) => Promise<string | null>,
  names: AddressBook,
): PeerSource | null {
  if (config.peers) return staticSource(parsePeers(config.peers));
  if (!config.discovery) return null;
  const { name } = parseDiscovery(config.discovery);
  const servers = dnsServersOf(config);
  return dnsSource({
    name,
    defaultPeerPort: config.peerPort,
    ...(servers ? { servers } : {}),
    identify,
    names,
  });
}

/** What the node's start tells the cluster's, and hears from it. */
export interface ClusterStart {
  /** A stop signal during the start: the start gives up (rejecting with its reason), cleaned up. */
  readonly signal?: AbortSignal;
  /** What a node with no saved ring waits for before making its rings (untilFoundable); null once it goes on. */
  readonly onWaiting?: (waiting: FoundingBlock | null) => void;
}

/**
 * Starts the peer port, resolves members once, and wires replication and data movement. Rejects
 * with `start.signal`'s reason when it aborts before the node routes (the peer port closed).
 */
export async function startCluster(
  config: Config,
  storage: Storage,
  registry: Registry,
  log: Logger,
  secrets: Secrets,
  start: ClusterStart = {},
): Promise<Cluster> {
  const self = config.nodeName;
  const secret = secrets.clusterSecret;
  if (!quorumsOverlap(config)) {
    const { replicationFactor, readQuorum, writeQuorum } = config;
    log.warn(
      { replicationFactor, readQuorum, writeQuorum },
      'read and write quorums do not overlap (--read-quorum + --write-quorum <= --replication-factor): a read may miss an acknowledged write',
    );
  }
  const incarnation = await untilAborted(loadIncarnation(storage), start.signal);
  log.info({ incarnation: incarnation.id, new: incarnation.created }, 'data directory incarnation');
  // Reads every stored hint: long with many of them on a slow disk, so a stop signal ends it.
  const hintStore = await HintStore.open(
    storage,
    config.maxHints,
    config.maxHintBytes,
    start.signal ?? new AbortController().signal,
  );
  const pool = new PeerPool({
    logger: log,
    registry,
    idleCloseMs: peerIdleCloseMs(config),
    client: {
      timeoutMs: config.peerTimeoutMs,
      // An answer arriving past its timeout is waited for this long at most: a read repair made
      // of it, after the fetches of the newest record (every owner of both rings while data
      // moves, in turn) and its copy, lands before a tombstone written after the read is collected.
      maxWaitMs: readWaitMs(
        config.peerTimeoutMs,
        config.tombstoneGraceMs - config.maxClockOffsetMs,
        2 * config.replicationFactor,
        // A record's header, node name, expiry and base version: under 300 bytes.
        config.maxKeyBytes + config.maxValueBytes + 512,
      ),
      tls: secrets.peerTls?.client ?? null,
      ...(secret ? { handshake: peerHandshake(secret) } : {}),
    },
  });
  // On the control lane: a probe must not wait behind the replica data queued to the member.
  // Each says who asks and whether it serves: a node whose DNS failed since it started knows the
  // members that serve from their probes alone (Callers); and this node's settled epoch and
  // probe interval: a member of its ring that keeps probing it tells it the ring is still
  // current (RingFencing.asked).
  const hello = (address: string) =>
    pool
      .get(address, 'control')
      .request<unknown>(METHODS.hello, { name: self, serving: serving(), ...probeOf() })
      .then(readHello);
  const identify = (host: string, port: number) =>
    hello(peerAddressOf({ host, peerPort: port })).then(
      (h) => h.name,
      () => null,
    );
  const metrics = registerRebalanceMetrics(registry, hintStore);
  const saved = parseSettled(readStateDoc(storage, 'settled-ring') ?? null);
  // Said in hellos until the rebalancer runs: a member started again after its hand-off is
  // 'decommissioned' from its first answer, not 'active' (its peers would put it back in the
  // target ring and forget its hand-off).
  const savedStatus = readStateDoc(storage, 'status') ?? 'active';
  /**
   * A member that held data in its saved ring takes none and serves none until its first ring
   * update, which may find the ring settled without it while it was away (RingKeeper's removed):
   * its records are then dropped first, and a copy taken meanwhile would be dropped with them.
   */
  let deciding = saved !== null && saved.epoch > 0 && saved.members.includes(self);
  let rings: RingKeeper | null = null;
  const refusing = (): KvError | null =>
    rings?.dropping
      ? new KvError(
          'KV_ERR_UNAVAILABLE',
          'replica: this node is dropping the records of a ring it was taken out of while away',
        )
      : deciding
        ? new KvError('KV_ERR_UNAVAILABLE', 'replica: this node is starting')
        : null;
  let rebalancer: Rebalancer | null = null;
  let topology: Topology | null = null;
  // Records newer than this are under no collected tombstone (RingFencing, Hints, dropHints).
  const freshWithin = config.tombstoneGraceMs - config.maxClockOffsetMs;
  // What a read (or an anti-entropy range) got lands within this of when it began, or not at all.
  const repairWithin = repairWithinMs(
    config.peerTimeoutMs,
    config.tombstoneGraceMs,
    config.maxClockOffsetMs,
  );
  if (repairWithin <= 0) {
    log.warn(
      {
        tombstoneGraceMs: config.tombstoneGraceMs,
        peerTimeoutMs: config.peerTimeoutMs,
        maxClockOffsetMs: config.maxClockOffsetMs,
      },
      'no read repair nor anti-entropy write-back, and expiry changes of existing keys refused: --tombstone-grace-ms is under --peer-timeout-ms plus three --max-clock-offset-ms, which leaves no time in which a value read can be written back safely',
    );
  }
  // Set below: asking the members for their hellos is how a ring fence's refusal is acted on.
  let learnRings: () => Promise<unknown> = () => Promise.resolve();
  // Data between a member taken out of the ring and the others, refused both ways until it learns.
  const fencing = new RingFencing({
    self,
    settled: () => topology?.settledRing,
    learn: () => learnRings(),
    // A refusal says a member (this node too) that handed off was decommissioned, not taken out.
    decommissioned: (name) =>
      name === self
        ? (rebalancer?.status ?? savedStatus) === 'decommissioned'
        : topology?.sawDecommissioned(name) === true,
    // What it writes now is taken: no tombstone it could outlive was collected (RingFencing).
    freshWithinMs: freshWithin,
    // Reads it would answer alone wait until a member said lately that its ring is current.
    probes: {
      intervalMs: config.probeIntervalMs,
      failures: config.probeFailures,
      timeoutMs: config.peerTimeoutMs,
    },
    logger: log,
  });
  const probeOf = () => {
    const r = topology?.settledRing;
    return r === undefined ? {} : { epoch: r.epoch, probeMs: config.probeIntervalMs };
  };
  // Set once the node routes; writes placed under other rings are passed on by it (reroute).
  let coordinator: ClusterCoordinator | null = null;
  // Set once made: hellos answered before the member source answered carry no member list.
  let listed: () => string[] | null = () => null;
  let kept: () => string[] = () => [];
  let unnamed: () => number = () => 0;
  // Set once made (ClockCheck): whether this node refuses writes for its clock, in every hello.
  let clockRefusing = () => false;
  let clockSuspect = () => clock.ownDoubt();
  // Down for data: its disk stalled, or it drops the records of a ring it was taken out of.
  const downForData = () => storage.stalled() !== null || rings?.dropping === true;
  // Whether this node would take clients, as its probes tell the members they reach: not while
  // its disk stalled, it drops records or decides whether it must (refusing), or its clock refuses.
  const serving = () => storage.stalled() === null && refusing() === null && !clockRefusing();
  // The members that probed this node lately, counted while they would be up (Callers).
  const callers = new Callers(
    self,
    config.probeFailures * config.probeIntervalMs + config.peerTimeoutMs,
  );
  // What every hello carries, for members to check they agree (ReplicationCheck).
  const replication = {
    rf: config.replicationFactor,
    w: config.writeQuorum,
    r: config.readQuorum,
  };
  const ringMetrics = registerRingMetrics(
    registry,
    () => topology?.settledRing.epoch ?? 0,
    () => rings?.heldMs() ?? 0,
  );
  // In every hello: members tell a restart of this node from a probe that went unanswered.
  const started = Date.now();
  const selfHello = (): HelloReply => ({
    name: self,
    incarnation: incarnation.id,
    status: rebalancer?.status ?? savedStatus,
    ringId: topology?.target.id ?? '',
    rebalanced: rebalancer?.rebalanced ?? null,
    settled: topology?.settledRing ?? { epoch: 0, members: [], incarnations: {}, lost: [] },
    hints: hintStore.count,
    load: selfLoad(),
    clock: Date.now(),
    replication,
    ...listedOf(listed(), kept(), unnamed()),
    // Down for data also while it drops the records of a ring it was taken out of.
    ...(downForData() ? { storageStalled: true as const } : {}),
    // Members that refuse writes for their clocks stay ready while no other member takes them.
    ...(clockRefusing() ? { clockRefusing: true as const } : {}),
    // Its clock in doubt by its own account: peers take no word of it about theirs.
    ...(clockSuspect() ? { clockSuspect: true as const } : {}),
    // Stores no replica of a write (a full disk): for status views, and the operator's gate.
    ...(storage.writeFailure() !== null ? { storageNotWritable: true as const } : {}),
    started,
  });
  const selfLoad = (): MemberLoad => {
    const { liveKeys, tombstones, sizeBytes } = storage.stats();
    return {
      keys: liveKeys,
      tombstones,
      bytes: sizeBytes,
      hintsFor: hintStore.countsByTarget(),
      transfer: rebalancer?.progress ?? null,
    };
  };
  // Before anything listens: a malformed --peers fails the start without a port left open.
  const addressBook = stateAddressBook(storage, (err) =>
    log.warn({ err }, 'peer address names not saved'),
  );
  const source = sourceOf(config, identify, addressBook);
  const versions = new RemoteVersions({ clock: storage.clock, registry, logger: log });
  // One bound for the node's scans: its own (reads and merges) and those its peers ask of it.
  const scanWork = new ScanWork({ registry });
  const backups = new BackupSessions(storage, incarnation.id);
  // Served from the start, answering once the node routes (it needs the rings and replicas).
  let antiEntropy: AntiEntropy | null = null;
  let antiEntropyServed: Record<string, (body: unknown) => unknown> | null = null;
  // Set once made (below): what `synced` answers say this node holds, queued hints included.
  let hintsMade: Hints | null = null;
  // A member telling it finished its decommission: probed at once, once the members are known.
  let probeMember: ((name: string) => Promise<string | null>) | null = null;
  const noticeMethods = {
    [METHODS.decommissioned]: async (body: unknown) => {
      const name = readDecommissionedNotice(body);
      const status = (await probeMember?.(name)) ?? null;
      log.info({ member: name, status }, 'a member says it is decommissioned: probed it');
      return { s: status };
    },
  };
  const antiEntropyMethods = Object.fromEntries(
    Object.values(ANTI_ENTROPY_METHODS).map((m) => [
      m,
      (body: unknown) => {
        if (antiEntropyServed === null)
          throw new KvError('KV_ERR_UNAVAILABLE', 'anti-entropy: this node is starting');
        return antiEntropyServed[m]!(body);
      },
    ]),
  );
  const peerServer = await PeerServer.start({
    host: config.peerHost,
    port: config.peerPort,
    handler: createReplicaHandler({
      storage,
      hintsHeld: () => hintsMade?.held ?? hintStore.count,
      hello: (asker) => {
        callers.heard(asker);
        if (asker.name !== undefined && asker.epoch !== undefined && asker.probeMs !== undefined)
          fencing.asked(asker.name, asker.epoch, asker.probeMs);
        return selfHello();
      },
      incarnation: incarnation.id,
      lostAt: () => {
        const r = topology?.settledRing;
        return r === undefined ? null : lostAt(r, self, rebalancer?.status === 'decommissioned');
      },
      maxScanEntries: scanServeLimit(config.maxScanKeys),
      scanReplyMs: config.peerTimeoutMs * SCAN_REPLY_TIMEOUT_SHARE,
      scanWork,
      clusterSecret: secret,
      versions,
      maxClockOffsetMs: config.maxClockOffsetMs,
      methods: { ...backups.methods(), ...antiEntropyMethods, ...noticeMethods },
      handedOff: () => rebalancer?.status === 'decommissioned',
      refusing,
      fence: (f, oldest) => fencing.check(f, oldest),
      reroute: {
        rings: () => (coordinator === null ? undefined : topology?.placementId),
        write: (entries, deadline) => coordinator!.reroute(entries, deadline),
      },
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
    // A member that answers gets its data connection made before anything needs it, and tells
    // this node its ring is current as of when it asked (RingFencing.answered). Only the member
    // probed, answering as itself, tells: this node's own answer at its listed address tells
    // nothing, nor does another node's at a member's old address (Membership refuses that answer
    // and adopts no ring from it, so a member cut off from its ring was told it was current).
    probe: (m) => {
      const address = peerAddressOf(m);
      const sent = performance.now();
      return hello(address).then((h) => {
        pool.warm(address);
        if (h.name === m.name && h.name !== self) fencing.answered(sent);
        return h;
      });
    },
    selfHello,
    resolveIntervalMs: config.resolveIntervalMs,
    probeIntervalMs: config.probeIntervalMs,
    probeFailures: config.probeFailures,
    unlistedGraceMs: config.unlistedGraceMs,
    // Before the storage opens there is no settled ring yet: every member counts.
    holdsData: (name, last) => {
      const r = topology?.settledRing;
      return r === undefined || holdsDataIn(r, name, last ?? undefined);
    },
    logger: log,
    registry,
  });
  // The kept members listed too, and named apart: older versions compare `listed` as it is.
  listed = () => membership.names();
  kept = () => membership.unlisted();
  unnamed = () => membership.unnamed();
  probeMember = (name) => membership.probeMember(name);
  const tellLeft = (why: string, waitMs?: number) =>
    tellDecommissioned({
      members: membership.members(),
      send: (m) =>
        pool.get(peerAddressOf(m), 'control').request(METHODS.decommissioned, { n: self }),
      why,
      ...(waitMs === undefined ? {} : { waitMs }),
      logger: log,
    });
  learnRings = () => membership.probeNow();
  // Two processes under one name: the one not at the address listed for the name must not serve.
  const duplicateError = (d: Duplicate) =>
    new KvError(
      'KV_ERR_CONFIG',
      `membership: another node named '${self}' answers at ${d.address}, the address listed for that name (its data directory ${d.incarnation}, this node's ${incarnation.id}): give every node its own --node-name`,
    );
  const checkIdentity = () => {
    const d = membership.duplicate();
    if (d !== null) {
      throw new KvError('KV_ERR_UNAVAILABLE', duplicateError(d).message);
    }
  };
  // Every data request to a peer goes through here: the replica reads and writes of commands,
  // hint delivery, rebalance and decommission streams, anti-entropy, read repair, tombstone
  // collection's questions, backups. While another process answers under this node's name, none
  // is sent (the ones already sent finish): its data is not the listed node's (probes and hellos
  // go on, so it notices when the other one is gone). Each carries this node's ring fence
  // (RingFencing), and a refusal for it makes this node ask the members for their rings; none is
  // sent while this node drops the records of a ring it was taken out of (what it read of them
  // before must not leave now that its fence no longer says it holds them).
  const call: PeerCall = (name, method, body, opts) => {
    try {
      checkIdentity();
      if (rings?.dropping) throw refusing();
    } catch (err) {
      return Promise.reject(err);
    }
    const m = membership.address(name);
    if (!m)
      return Promise.reject(
        new KvError('KV_ERR_PEER_UNAVAILABLE', `replication: ${name} is not a member`),
      );
    // A member whose disk stalled is not sent data (a write gets a hint at once, a read asks
    // another owner): it would only queue behind its hung disk until the peer timeout.
    if (!membership.isUpForData(name))
      return Promise.reject(
        new KvError('KV_ERR_PEER_UNAVAILABLE', `replication: ${name} is down for data`),
      );
    return pool
      .request(peerAddressOf(m), method, fencing.stamp(name, body), opts)
      .catch((err: unknown) => {
        fencing.failed(err);
        throw err;
      });
  };
  // Reads count a settled owner only if it still has the data directory the ring recorded, and
  // say whether it is out of the target ring (Topology.readTerms); a write's copy gets the peer
  // timeout plus time for its bytes, short of freshWithin, as its timeout and deadline.
  const replicas = new Replicas(
    self,
    storage,
    call,
    (name) => topology?.readTerms(name) ?? {},
    versions,
    (bytes) => copyTimeoutMs(config.peerTimeoutMs, freshWithin, bytes),
    scanWork,
    // Waited for behind other frames to the member, or while answers arrive, never longer.
    freshWithin - 1,
  );
  const clock = new ClockCheck({
    offsets: () => membership.clockOffsets(),
    maxOffsetMs: config.maxClockOffsetMs,
    peers: () => {
      const names = membership.names();
      return names === null ? null : Math.max(0, names.length - 1);
    },
    // Not members(): that makes this node's hello, which asks this check whether it refuses.
    answered: () => membership.answering(),
    leadMs: (wallMs) => storage.clock.leadMs(wallMs),
    logger: log,
    registry,
  });
  clockRefusing = () => clock.refusal() !== null;
  clockSuspect = () => clock.ownDoubt();
  const settings = new ReplicationCheck({
    self,
    settings: replication,
    members: () => membership.members(),
    logger: log,
    registry,
  });
  const lists = new MembershipCheck({
    members: () => membership.members(),
    names: () => membership.names(),
    unlisted: () => membership.unlisted(),
    unnamed: () => membership.unnamed(),
    paused: () => membership.pausedMs(),
    boundMs: membershipSpreadMs(
      config.resolveIntervalMs,
      config.probeIntervalMs,
      config.peerTimeoutMs,
    ),
    logger: log,
    registry,
  });
  membership.on('probed', () => {
    clock.update();
    settings.update();
    lists.update();
  });
  // Before the node routes: what a refused or stopped start leaves open is closed.
  const giveUp = async (err: unknown): Promise<never> => {
    membership.stop();
    await peerServer.close();
    await pool.close();
    throw err;
  };
  // The first resolve may wait for a DNS server that does not answer (up to its timeout): a
  // stop signal does not.
  const resolved = await untilAborted(membership.start(), start.signal).catch(giveUp);
  const found = membership.duplicate();
  if (found !== null) await giveUp(duplicateError(found));
  membership.on('duplicate', (d) => {
    if (d === null) log.info({}, 'no other node answers under this name any more');
    else
      log.error(
        { err: duplicateError(d) },
        'another node answers under this name: refusing commands and moving no data',
      );
  });
  if (saved === null) {
    await untilFoundable({
      members: () => membership.members(),
      unnamed: () => membership.unnamed(),
      sourceListed: () => membership.sourceListed(),
      intervalMs: Math.min(config.resolveIntervalMs, config.probeIntervalMs),
      logger: log,
      ...(start.signal ? { signal: start.signal } : {}),
      ...(start.onWaiting ? { onWaiting: start.onWaiting } : {}),
    }).catch(giveUp);
  }
  const topo = startingTopology({
    self,
    // A first answer that listed no member (NXDOMAIN, no records) tells as little as a failure.
    resolved: resolved && membership.sourceListed(),
    saved,
    members: membership.members(),
    replicationFactor: config.replicationFactor,
  });
  topology = topo;
  // Down for data (a member down, or whose disk stalled): scans skip it, hints wait for it.
  const isUp = (name: string) => membership.isUpForData(name);
  // When this node last dropped its records, taken out of the ring while away (0: never): its
  // hints of older records go with them, also those made meanwhile (a read repair sent before it
  // heard, failing after). On disk, so that a restart before their delivery drops them too.
  let droppedAt = readStateDoc(storage, 'taken-out')?.droppedAt ?? 0;
  const dropTakenOut = async (): Promise<number> => {
    droppedAt = Date.now();
    // Before any record goes: one that fails (a full disk) fails the drop, which is tried again.
    await writeStateDoc(storage, 'taken-out', { droppedAt });
    const n = await dropAll(storage);
    // Hints of recent records stay: a write it acknowledged alone while cut off, only there.
    const hinted = await dropHints(hintStore, (h) => recentRecord(h.raw, freshWithin));
    if (hinted > 0) log.warn({ hints: hinted }, 'hints of a ring left while away dropped');
    return n;
  };
  const hints = new Hints({
    droppedBefore: () => droppedAt,
    freshWithinMs: freshWithin,
    store: hintStore,
    replicas,
    timeoutMs: config.peerTimeoutMs,
    isUp,
    isMember: (name) => membership.address(name) !== undefined,
    intervalMs: config.hintIntervalMs,
    metrics,
    logger: log,
  });
  hintsMade = hints;
  const rb = new Rebalancer({
    self,
    storage,
    topology: topo,
    replicas,
    rateBytes: config.rebalanceRateBytes,
    timeoutMs: config.peerTimeoutMs,
    metrics,
    logger: log,
  });
  rebalancer = rb;
  // Members that place keys by another replication factor may count on copies this node would drop.
  const dropUnowned = () => (settings.keepAll() ? Promise.resolve(0) : rb.onSettled());
  const keeper = new RingKeeper({
    topology: topo,
    members: () => membership.members(),
    save: (ring) => writeStateDoc(storage, 'settled-ring', ring),
    metrics: ringMetrics,
    logger: log,
    onTransfer: () => rb.onRingsChanged(),
    cleanup: () => dropUnowned(),
    cleanupDelayMs: settleSpreadMs(config.probeIntervalMs, config.peerTimeoutMs),
    holdsData: () => {
      const s = storage.stats();
      return s.liveKeys + s.tombstones > 0;
    },
    listed: () => membership.sourceListed(),
    unnamed: () => membership.unnamed(),
    unlistedGraceMs: config.unlistedGraceMs,
    removed: { self, active: () => rb.status === 'active', drop: dropTakenOut },
  });
  rings = keeper;
  const update = () => keeper.update();
  membership.on('change', update);
  // Every other member opens three connections here (small, large, control): past the cap the
  // newest are closed at once, and members flap. Said once per member count that needs more.
  let warnedAt = 0;
  membership.on('change', () => {
    // The names alone (members() would build every member's view, this node's hello included).
    const members = membership.names()?.length ?? 0;
    const needed = 3 * (members - 1);
    if (needed <= config.maxPeerConnections || members === warnedAt) return;
    warnedAt = members;
    log.warn(
      { members, needed, max: config.maxPeerConnections },
      'the members need more peer connections than --max-peer-connections allows: raise it',
    );
  });
  // A member that left (or moved) is never called at that address again: close its connections.
  membership.on('gone', (address) => void pool.remove(address));
  rb.on('change', update);
  // The hand-off done: the others hear it now, not at their next probe of this node.
  let status = rb.status;
  rb.on('change', () => {
    if (rb.status === 'decommissioned' && status !== 'decommissioned')
      void tellLeft('hand-off done');
    status = rb.status;
  });
  rb.resume();
  update();
  // A new node's ring is durable before it serves; a saved one is rewritten only if it changed.
  await (saved === null ? keeper.save() : keeper.saved);
  deciding = false;
  hints.start();
  const quiet = () => topo.atRest(membership.members());
  antiEntropy = new AntiEntropy({
    self,
    storage,
    topology: topo,
    replicas,
    call,
    versions,
    quiet,
    interruptions: () => membership.interruptions(),
    intervalMs: config.antiEntropyIntervalMs,
    timeoutMs: config.peerTimeoutMs,
    repairWithinMs: repairWithin,
    metrics: registerAntiEntropyMetrics(registry),
    logger: log,
  });
  antiEntropyServed = antiEntropy.methods();
  antiEntropy.start();
  const stopCollector = startCollector({
    self,
    storage,
    topology: topo,
    replicas,
    quiet,
    graceMs: config.tombstoneGraceMs,
    expiredAfterMs: expiredLaterMs(
      config.peerTimeoutMs,
      config.tombstoneGraceMs,
      config.maxClockOffsetMs,
      config.maxKeyBytes + config.maxValueBytes + 512,
    ),
    hintsHeld: () => hints.held,
    intervalMs: config.gcIntervalMs,
    dropUnowned: () => dropUnowned(),
    metrics,
    logger: log,
  });

  const refusal = () =>
    refusalOf({
      stalled: () => storage.stalled()?.message ?? null,
      dropping: () => refusing()?.message ?? null,
      duplicate: () => {
        const d = membership.duplicate();
        return d === null ? null : duplicateError(d).message;
      },
      clock: () => clock.refusal(),
      others: () => othersServing(membership, callers),
    });
  const info = () =>
    clusterInfo({
      self,
      incarnation: incarnation.id,
      status: rb.status,
      topology: topo,
      members: membership.members(),
      transfer: rb.progress,
      hints: hintStore.count,
      memberListsDiffer: lists.differing(),
      decommissionedListed: lists.decommissionedListed(),
      refusing: refusal(),
      notWritable: storage.writeFailure(),
    });
  coordinator = new ClusterCoordinator({
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
    repairWithinMs: repairWithin,
    maxScanKeys: config.maxScanKeys,
    maxValueBytes: config.maxValueBytes,
    maxMultiReadBytes: config.maxMultiReadBytes,
    registry,
    checkClock: () => clock.checkOncePerJob(),
    refusing: refusal,
    alone: { may: () => fencing.mayAnswerAlone(), until: () => fencing.untilHeard() },
    ringHold: () => keeper.holdNote(),
    checkIdentity: () => {
      checkIdentity();
      // This node's disk stalled: a clear refusal now rather than a write that hangs (its peers
      // serve the keys; /readyz fails, so Services stop sending clients here).
      const stalled = storage.stalled() ?? refusing();
      if (stalled !== null) throw stalled;
    },
  });
  return {
    coordinator,
    scanWork,
    peerPort: peerServer.port,
    info,
    refusal,
    async decommission() {
      await rb.decommission();
      return { status: rb.status, transfer: rb.progress };
    },
    decommissionStatus: () => ({ status: rb.status, transfer: rb.progress }),
    tellLeaving: (waitMs) =>
      rb.status === 'decommissioned' ? tellLeft('stopping', waitMs) : Promise.resolve(),
    rings: () => {
      const shares = (r: typeof topo.target) =>
        Object.fromEntries(r.members.map((n) => [n, Number(r.share(n).toFixed(4))]));
      return {
        replicationFactor: topo.rf(topo.target),
        moving: topo.moving,
        settled: { id: topo.settled.id, shares: shares(topo.settled) },
        target: { id: topo.target.id, shares: shares(topo.target) },
      };
    },
    owners: (key) => ({
      settled: topo.settled.owners(key, topo.rf(topo.settled)),
      target: topo.target.owners(key, topo.rf(topo.target)),
    }),
    async recommission() {
      const { dropped } = await rb.recommission();
      return { status: rb.status, dropped };
    },
    streams: backupRoutes({
      self,
      sessions: backups,
      // Pages of records: on the members' large lanes, behind no client's small requests.
      call: (member, method, body) => call(member, method, body, { bulk: true }),
      topology: topo,
      replicas,
      logger: log,
    }),
    async stop() {
      backups.close();
      stopCollector();
      await antiEntropy?.stop();
      rings.stop();
      membership.stop();
      await addressBook.close(); // before the store closes: a resolve still out saves nothing
      await rb.stop();
      await hints.stop();
      await peerServer.close();
      await pool.close();
    },
  };
}
