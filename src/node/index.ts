// node: assembles one kvstore node from its configuration and stops it cleanly.

import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/index.ts';
import {
  createLogger,
  createRegistry,
  type HttpEndpoint,
  type Logger,
  startHttp,
} from '../observability/index.ts';
import { ADMIN_AUTH_SCHEME, checkAdminAuthorization } from '../replica/index.ts';
import { KvServer } from '../server/index.ts';
import { Storage } from '../storage/index.ts';
import { startCluster } from './cluster.ts';
import { HEAP_TRIM_DEFAULTS, startHeapTrimmer } from './heap-trim.ts';
import { loadSecrets } from './secrets.ts';

/** A running node. */
export interface KvNode {
  readonly port: number;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly logger: Logger;
  /** Stops accepting, finishes in-flight commands, flushes and closes storage. Idempotent. */
  stop(): Promise<void>;
}

/** Opens storage, then starts the client port and the HTTP port. */
export async function startNode(config: Config, logger?: Logger): Promise<KvNode> {
  const log = logger ?? createLogger(config.logLevel, { node: config.nodeName });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const registry = createRegistry();
  const secrets = loadSecrets(config);
  const storage = Storage.open({
    path: dataDir,
    nodeName: config.nodeName,
    registry,
    maxClockOffsetMs: config.maxClockOffsetMs,
  });
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  let ready = false;
  let server: KvServer | undefined;
  let http: HttpEndpoint | undefined;
  try {
    cluster = await startCluster(config, storage, registry, log, secrets);
    server = await KvServer.start({
      host: config.host,
      port: config.port,
      limits: config,
      maxLineBytes: config.maxLineBytes,
      maxPipeline: config.maxPipeline,
      maxConnections: config.maxConnections,
      maxInflightWriteBytes: config.maxInflightWriteBytes,
      coordinator: cluster.coordinator,
      registry,
      logger: log,
      password: secrets.password,
      tls: secrets.clientTls,
    });
    http = await startHttp({
      host: config.httpHost,
      port: config.httpPort,
      registry,
      ready: () => ready,
      logger: log,
      routes: adminRoutes(cluster),
      ...(secrets.clusterSecret ? { authorize: adminAuth(secrets.clusterSecret, registry) } : {}),
    });
  } catch (err) {
    await server?.shutdown(0);
    await cluster?.stop();
    await storage.close();
    throw err;
  }
  ready = true;
  const trimmer = startHeapTrimmer({ ...HEAP_TRIM_DEFAULTS, logger: log, registry });
  const srv = server;
  const web = http;
  const clu = cluster;
  log.info(
    {
      host: config.host,
      port: srv.port,
      httpPort: web.port,
      dataDir,
      keys: storage.stats().liveKeys,
    },
    'node listening',
  );
  let stopping: Promise<void> | null = null;
  return {
    port: srv.port,
    httpPort: web.port,
    peerPort: clu.peerPort,
    logger: log,
    stop() {
      stopping ??= (async () => {
        ready = false;
        trimmer.stop();
        log.info({ connections: srv.connectionCount }, 'node stopping');
        await srv.shutdown(config.shutdownTimeoutMs);
        await clu.stop();
        await storage.close();
        await web.close();
        log.info({}, 'node stopped');
      })();
      return stopping;
    },
  };
}

/** Admin calls must prove the cluster secret (checkAdminAuthorization); failures are counted. */
function adminAuth(secret: string, registry: Registry) {
  const failures = new Counter({
    name: 'kvstore_admin_auth_failures_total',
    help: 'Admin HTTP calls refused because they did not prove the cluster secret.',
    registers: [registry],
  });
  return {
    scheme: ADMIN_AUTH_SCHEME,
    check: (method: string, path: string, header: string | undefined) => {
      const ok = checkAdminAuthorization(secret, header, method, path);
      if (!ok) failures.inc();
      return ok;
    },
  };
}

function adminRoutes(cluster: {
  info(): unknown;
  decommission(): unknown;
  decommissionStatus(): unknown;
}) {
  return {
    'GET /admin/cluster': () => ({ status: 200, body: cluster.info() }),
    'GET /admin/decommission': () => ({ status: 200, body: cluster.decommissionStatus() }),
    'POST /admin/decommission': () => {
      try {
        return { status: 202, body: cluster.decommission() };
      } catch (err) {
        return { status: 409, body: { error: err instanceof Error ? err.message : String(err) } };
      }
    },
  };
}
