// node: assembles one kvstore node from its configuration and stops it cleanly.

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import { ADMIN_PATHS, type AdminError } from '../admin/index.ts';
import { AdminGuard, adminChallenge } from '../auth/index.ts';
import type { Config } from '../config/index.ts';
import { createConsole, type NodeConsole } from '../console/index.ts';
import { KvError } from '../errors/index.ts';
import { EXIT_STORAGE_FAILED, noteStage, startWatchdog } from '../lifecycle/index.ts';
import {
  type FoundingBlock,
  NOTICE_WAIT_MS,
  registerFoundingMetrics,
} from '../membership/index.ts';
import { checkBindable } from '../net/index.ts';
import {
  type AdminRoute,
  createLogger,
  createRegistry,
  type HttpEndpoint,
  type Logger,
  type Readiness,
  type StaticPage,
  type StreamRoute,
  startHttp,
} from '../observability/index.ts';
import { lateLandingMs } from '../rebalance/index.ts';
import { KvServer } from '../server/index.ts';
import { ExpirySweeper, lockDataDir, type OpenPhase, Storage } from '../storage/index.ts';
import { type Cluster, checkMembership, startCluster } from './cluster.ts';
import { exposures } from './exposure.ts';
import { collectGarbage, HEAP_TRIM_DEFAULTS, startHeapTrimmer } from './heap-trim.ts';
import { loadSecrets } from './secrets.ts';

/** A running node. */
/**
 * See storage's diskWorkOut: main.ts exits without waiting for a hung disk (its own read of the
 * data directory counted with countDiskOp).
 */
export { countDiskOp, diskWorkOut } from '../storage/index.ts';

export interface KvNode {
  readonly port: number;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly logger: Logger;
  /**
   * Stops accepting, finishes in-flight commands, flushes and closes storage, within
   * --shutdown-timeout-ms plus about half a second whatever clients and peers do. Idempotent.
   */
  stop(): Promise<void>;
}

/** Settings for tests only, not configuration: main.ts reads them from KV_TEST_* variables. */
export interface NodeInternals {
  /** How long an admin nonce is accepted (default ADMIN_NONCE_TTL_MS, 5 minutes). */
  readonly adminNonceTtlMs?: number;
}

/**
 * Opens storage, starts the HTTP port, the cluster's parts, then the client port. `signal` (a
 * stop signal) ends a start that has not finished: it rejects with the signal's reason, having
 * closed what it opened (a node with no saved ring may wait for its members without bound).
 */
export async function startNode(
  config: Config,
  logger?: Logger,
  internals: NodeInternals = {},
  signal?: AbortSignal,
  onStorageFailed: (why: string) => void = () => {},
): Promise<KvNode> {
  const log = logger ?? createLogger(config.logLevel, { node: config.nodeName });
  const dataDir = resolve(config.dataDir);
  // Every file the configuration names is read, and every member setting parsed, before the
  // data directory is made: a bad configuration leaves nothing behind (no directory, no identity).
  const secrets = loadSecrets(config);
  for (const { option, host, risk } of exposures(config, secrets)) {
    log.warn({ option, host, risk }, 'port open beyond loopback without authentication');
  }
  checkMembership(config);
  // A port taken (another process, or two options naming one port) fails here, before the data
  // directory and its identity exist, not once storage opened and the cluster started.
  await checkBindable([
    { option: '--port', host: config.host, port: config.port },
    { option: '--http-port', host: config.httpHost, port: config.httpPort },
    { option: '--peer-port', host: config.peerHost, port: config.peerPort },
  ]);
  noteStage('starting: making and locking the data directory');
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    throw new KvError('KV_ERR_CONFIG', `config: cannot create --data-dir ${dataDir}`, {
      cause: err,
    });
  }
  const registry = createRegistry();
  const lock = lockDataDir(dataDir);
  let storage: Storage | undefined;
  /** The storage open's phase while it runs (openStorage), then null. */
  let opening: string | null = 'opening the store';
  let cluster: Cluster | undefined;
  let ready = false;
  let stopping = false;
  let server: KvServer | undefined;
  let http: HttpEndpoint | undefined;
  let web: NodeConsole | undefined;
  // What a node with no saved ring waits for before it makes its rings (startCluster).
  let waiting: FoundingBlock | null = null;
  registerFoundingMetrics(registry, () => waiting);
  // The HTTP port is up from here on (alive, not ready, metrics), so that a node opening its
  // storage (a long replay or tree check, a disk that does not answer) or waiting for its members
  // says why, and a liveness probe does not kill it for that. Admin routes, backup streams and
  // the console's pages are added once the node routes; until then GET /admin/cluster (kvctl
  // status) answers 503 with what the node waits for.
  const starting = () =>
    opening !== null
      ? `opening its storage: ${opening}`
      : (waiting?.reason ?? 'joining its cluster');
  const routes: Record<string, AdminRoute> = {
    [`GET ${ADMIN_PATHS.cluster}`]: () => ({
      status: 503,
      body: { error: `node starting: ${starting()}` },
    }),
  };
  const streams: Record<string, StreamRoute> = {};
  const pages: Record<string, StaticPage> = {};
  try {
    http = await startHttp({
      host: config.httpHost,
      port: config.httpPort,
      maxConnections: config.maxHttpConnections,
      registry,
      readiness: (): Readiness => {
        if (opening !== null) return { ready: false, reason: `opening its storage: ${opening}` };
        if (waiting !== null)
          return { ready: false, reason: `waiting for its members: ${waiting.reason}` };
        if (!ready || cluster === undefined)
          return { ready: false, reason: stopping ? 'shutting down' : 'joining its cluster' };
        // What it refuses of its clients' commands (refusalOf): not ready while another member
        // may take them, so Services route clients there.
        const refusal = cluster.refusal();
        if (refusal !== null) return { ready: refusal.ready, reason: refusal.reason };
        const failure = storage?.writeFailure() ?? null;
        return {
          ready: true,
          reason: failure === null ? null : `storage not writable: ${failure}`,
        };
      },
      logger: log,
      routes,
      streams,
      pages,
      ...(secrets.clusterSecret
        ? { authorize: adminAuth(secrets.clusterSecret, registry, internals.adminNonceTtlMs) }
        : {}),
    });
    log.info({ httpPort: http.port }, 'http listening: alive, not ready until started');
    storage = await openStorage(config, dataDir, registry, log, signal, onStorageFailed, (p) => {
      opening = p;
    });
    opening = null;
    cluster = await startCluster(config, storage, registry, log, secrets, {
      ...(signal ? { signal } : {}),
      onWaiting: (w) => {
        waiting = w;
      },
    });
    server = await KvServer.start({
      host: config.host,
      port: config.port,
      limits: config,
      maxLineBytes: config.maxLineBytes,
      maxPipeline: config.maxPipeline,
      maxConnections: config.maxConnections,
      maxInflightWriteBytes: config.maxInflightWriteBytes,
      maxClientBufferBytes: config.maxClientBufferBytes,
      maxClientOutputBytes: config.maxClientOutputBytes,
      collectGarbage,
      maxMultiReadBytes: config.maxMultiReadBytes,
      coordinator: cluster.coordinator,
      scans: cluster.scanWork,
      registry,
      logger: log,
      password: secrets.password,
      tls: secrets.clientTls,
      idleTimeoutMs: config.clientIdleTimeoutMs,
    });
    web = createConsole({
      name: config.nodeName,
      dataDir,
      config,
      maxKeyBytes: config.maxKeyBytes,
      registry,
      cluster,
    });
    Object.assign(routes, adminRoutes(cluster), web.routes);
    Object.assign(streams, cluster.streams);
    Object.assign(pages, web.pages);
  } catch (err) {
    // A stop in the storage open was logged there, with its phase.
    if (signal?.aborted && err === signal.reason && storage !== undefined) {
      log.info({}, 'stopped while starting');
    }
    web?.stop();
    await server?.shutdown(0);
    await cluster?.stop();
    await http?.close();
    await storage?.close();
    lock.release();
    throw err;
  }
  ready = true;
  const idleStore = storage;
  const trimmer = startHeapTrimmer({
    ...HEAP_TRIM_DEFAULTS,
    // Start-up's garbage and grown young generation go before the node listens (8 MiB of an
    // empty node's RSS), not at the first idle interval, which a busy machine delays.
    atStart: true,
    onIdle: () => idleStore.idle().bytes,
    logger: log,
    registry,
  });
  const sweeper = new ExpirySweeper({
    storage,
    intervalMs: config.expirySweepIntervalMs,
    batch: config.expirySweepBatch,
    registry,
    logger: log,
  });
  sweeper.start();
  const srv = server;
  const page = web;
  const httpEnd = http;
  const clu = cluster;
  log.info(
    {
      host: config.host,
      port: srv.port,
      httpPort: httpEnd.port,
      peerPort: clu.peerPort,
      dataDir,
      keys: storage.stats().liveKeys,
    },
    'node listening',
  );
  noteStage('serving');
  let stopped: Promise<void> | null = null;
  return {
    port: srv.port,
    httpPort: httpEnd.port,
    peerPort: clu.peerPort,
    logger: log,
    stop() {
      stopped ??= (async () => {
        ready = false;
        stopping = true;
        noteStage('stopping');
        trimmer.stop();
        page.stop();
        log.info({ connections: srv.connectionCount }, 'node stopping');
        const deadline = performance.now() + config.shutdownTimeoutMs;
        // While clients drain (peers are still served: the members told probe this node back),
        // within the same bound.
        const told = clu.tellLeaving(Math.min(NOTICE_WAIT_MS, config.shutdownTimeoutMs));
        await srv.shutdown(config.shutdownTimeoutMs);
        await sweeper.stop();
        await told;
        // Peers had their chance while clients drained (commands in flight need them): what is
        // left of the cluster's stop gets the rest of the time, at least PEER_STOP_MIN_MS.
        const left = Math.max(PEER_STOP_MIN_MS, deadline - performance.now());
        if (!(await within(clu.stop(), left)))
          log.warn({ ms: Math.round(left) }, 'cluster stop timed out');
        await storage.close();
        lock.release();
        await httpEnd.close();
        log.info({}, 'node stopped');
      })();
      return stopped;
    },
  };
}

/**
 * Starts the watchdog thread if it is armed and not running (lifecycle/watchdog.ts); one the
 * system refuses (a pids limit reached) is logged, and the node goes on without it.
 */
function watchdogStarted(log: Logger): void {
  const err = startWatchdog();
  if (err !== null) {
    // Without it, an event loop a disk holds is not reported, nor a stop signal it holds ended.
    log.warn({ err }, 'watchdog thread not started');
  }
}

/**
 * Opens the store, logging its long phases as they start (the tree check after an unclean stop,
 * the log's replay) and what its log held: a torn tail (warn), damage cut off by
 * --wal-truncate-corrupt (error), or why it cannot open (fatal; KV_ERR_CORRUPT exits with 2).
 * `signal` ends the open wherever it is (Storage.openAsync): it rejects with the signal's reason,
 * logged as 'stopped while starting' with the phase it stopped in.
 */
async function openStorage(
  config: Config,
  dataDir: string,
  registry: Registry,
  log: Logger,
  signal = new AbortController().signal,
  onFailed: (why: string) => void = () => {},
  told: (phase: string) => void = () => {},
): Promise<Storage> {
  let storage: Storage;
  let phase = 'opening the store';
  noteStage(`starting: ${phase}`);
  const onPhase = (p: OpenPhase) => {
    phase = p.phase;
    noteStage(`starting: ${phase}`);
    told(phase);
    const { phase: _, ...fields } = p;
    if (p.phase === 'reading the write-ahead log' && p.bytes > 0)
      log.info(fields, 'storage: reading the write-ahead log');
    if (p.phase === 'checking the LMDB trees') log.info(fields, 'storage: checking the LMDB trees');
    if (p.phase === 'replaying the write-ahead log' && p.records > 0)
      log.info(fields, 'storage: replaying the write-ahead log');
  };
  try {
    storage = await Storage.openAsync(
      {
        path: dataDir,
        nodeName: config.nodeName,
        registry,
        maxClockOffsetMs: config.maxClockOffsetMs,
        minFreeBytes: config.minFreeDiskBytes,
        walSegmentBytes: config.walSegmentBytes,
        recentKindsBytes: config.recentKindsBytes,
        lateLandingMs: lateLandingMs(
          config.peerTimeoutMs,
          config.tombstoneGraceMs,
          config.maxClockOffsetMs,
        ),
        walTruncateCorrupt: config.walTruncateCorrupt,
        stallTimeoutMs: config.storageStallTimeoutMs,
        onStall: (what, outstandingMs) => {
          const ms = Math.round(outstandingMs);
          if (what === null) log.info({ outstandingMs: ms }, 'storage: disk answers again');
          else {
            // A disk that stalls may hold the event loop next (a read of a page not in memory).
            watchdogStarted(log);
            log.error(
              { what, outstandingMs: ms, timeoutMs: config.storageStallTimeoutMs },
              'storage: disk stalled: refusing commands, not ready',
            );
          }
        },
        // A store on a new directory holds only what it wrote, in the page cache, until memory
        // pressure takes it: from its first write on, a read may fault in a page of the disk on
        // the event loop, as on a restart (main.ts starts the watchdog there).
        onFirstWrite: () => watchdogStarted(log),
        onWritable: (failure) => {
          if (failure === null) log.info({}, 'storage: writes accepted again');
          else log.error({ failure }, 'storage: refusing writes');
        },
        onFatal: (failure) => {
          log.fatal(
            { failure, exitCode: EXIT_STORAGE_FAILED },
            'storage: LMDB failed for good: exiting without a drain (a restart replays the log)',
          );
          onFailed(failure);
        },
      },
      signal,
      onPhase,
    );
  } catch (err) {
    if (signal.aborted && err === signal.reason) {
      log.info({ phase }, 'stopped while starting');
      throw err;
    }
    const code = err instanceof KvError ? err.code : undefined;
    log.fatal({ err, code, dataDir }, 'storage: cannot open the data directory');
    throw err;
  }
  const { torn, truncated, replayed } = storage.recovery;
  if (torn) {
    const { segment, offset, records } = torn;
    log.warn({ segment, offset, records }, 'storage: torn write-ahead log tail dropped');
  }
  if (truncated) {
    const { segment, offset, reason, droppedRecords, droppedSegments } = truncated;
    log.error(
      { segment, offset, reason, droppedRecords, droppedSegments },
      'storage: damaged write-ahead log cut (--wal-truncate-corrupt)',
    );
  }
  log.info({ replayed }, 'storage: opened');
  noteStage('starting: joining the cluster');
  return storage;
}

/** Time the cluster's stop (peer connections, streams, hints) gets after the clients drained. */
const PEER_STOP_MIN_MS = 500;

/** Waits for `work` at most `ms`: true when it settled in time (its failure counts as settled). */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = work.then(
    () => true as const,
    () => true as const,
  );
  const inTime = await Promise.race([done, late]);
  clearTimeout(timer);
  return inTime;
}

/**
 * Admin calls must prove the cluster secret with a nonce this node issued (AdminGuard): refusals
 * are counted, those with a wrong or missing proof apart from those with a stale nonce or a used
 * counter (a replay, or a caller that renews its nonce).
 */
function adminAuth(secret: string, registry: Registry, ttlMs?: number) {
  const failures = new Counter({
    name: 'kvstore_admin_auth_failures_total',
    help: 'Admin HTTP calls refused because they did not prove the cluster secret.',
    registers: [registry],
  });
  const stale = new Counter({
    name: 'kvstore_admin_auth_stale_total',
    help: 'Admin HTTP calls that proved the cluster secret with a nonce that is too old, not from this node process, or whose counter was used (replays): refused, a new nonce offered.',
    registers: [registry],
  });
  const guard = new AdminGuard(secret, ttlMs === undefined ? {} : { ttlMs });
  return {
    check: (method: string, target: string, header: string | undefined) => {
      const r = guard.check(method, target, header);
      if (!r.ok) (r.stale ? stale : failures).inc();
      return r;
    },
    nonce: () => guard.issue(),
    challenge: (isStale: boolean) => adminChallenge(guard.issue(), isStale),
    bodyRefused: () => failures.inc(),
  };
}

/** The admin API (admin/ schema): each route answers the body its schema describes. */
function adminRoutes(cluster: Cluster): Record<string, AdminRoute> {
  const { cluster: clusterPath, decommission, recommission } = ADMIN_PATHS;
  const refused = (err: unknown) => {
    if (err instanceof KvError && err.code === 'KV_ERR_INVALID_ARGUMENT') {
      const body: AdminError = { error: err.message };
      return { status: 409, body };
    }
    throw err;
  };
  return {
    [`GET ${clusterPath}`]: () => ({ status: 200, body: cluster.info() }),
    [`GET ${decommission}`]: () => ({ status: 200, body: cluster.decommissionStatus() }),
    [`POST ${decommission}`]: () =>
      cluster.decommission().then(
        (body) => ({ status: 202, body }),
        (err: unknown) => {
          const body: AdminError = { error: err instanceof Error ? err.message : String(err) };
          return { status: 409, body };
        },
      ),
    [`POST ${recommission}`]: () =>
      cluster.recommission().then((body) => ({ status: 200, body }), refused),
  };
}
