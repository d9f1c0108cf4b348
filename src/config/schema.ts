// The node's configuration: one zod schema, one defaults object, help text per option.

import { hostname } from 'node:os';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positive = z.coerce.number().int().positive();

/** Defaults; each can be overridden by `--kebab-name value` or `KV_UPPER_SNAKE_NAME`. */
export const DEFAULTS = {
  /** Stable identity of this node (pod or compose service name); defaults to the host name. */
  nodeName: hostname(),
  /** Address the client port listens on. Loopback by default: set 0.0.0.0 to serve others. */
  host: '127.0.0.1',
  /** Client port (seed protocol). 0 picks a free port (logged at start). */
  port: 8081,
  /** Address of the HTTP port; empty means the same as --host. */
  httpHost: '',
  /** HTTP port: /metrics, /healthz, /readyz. 0 picks a free port. */
  httpPort: 9090,
  /** Peer port for node-to-node traffic (used once clustering is enabled). */
  peerPort: 7946,
  /** LMDB directory; created when missing. Relative paths are from the working directory. */
  dataDir: './kvstore-data',
  /**
   * Writes are refused (ERR STORAGE, reads keep working) while the data directory's file system
   * has less free space than this, so LMDB and the log never hit a full disk; 0 turns it off.
   */
  minFreeDiskBytes: 64 * 1024 * 1024,
  /** Write-ahead log segment size: a restart replays at most a few segments. */
  walSegmentBytes: 4 * 1024 * 1024,
  /**
   * Start even when the write-ahead log is damaged before its last group: cut it at the damage
   * (the records after it are lost and logged). Off: such a log stops start-up with exit code 2.
   */
  walTruncateCorrupt: false as boolean,
  /** pino log level. */
  logLevel: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
  /** Longest key in bytes (LMDB's own limit is 1978). */
  maxKeyBytes: 1024,
  /** Largest value in bytes. */
  maxValueBytes: 1024 * 1024,
  /** Longest command line in bytes; longer lines are discarded with one error reply. */
  maxLineBytes: 1024 * 1024 + 4096,
  /** Most keys one RANGE/PREFIX returns: the cap without LIMIT and the largest LIMIT. */
  maxScanKeys: 10_000,
  /** Most client connections at once; further ones get ERR MAX_CLIENTS and are closed. */
  maxConnections: 10_000,
  /** Close a client connection idle this long (no command running, no bytes moving); 0: never. */
  clientIdleTimeoutMs: 0,
  /** Unanswered commands per connection before the node stops reading from it. */
  maxPipeline: 1024,
  /**
   * How long SIGTERM/SIGINT waits for in-flight commands and their replies before closing what
   * is left; the process exits within this plus about a second.
   */
  shutdownTimeoutMs: 10_000,
  /** Bytes of writes not yet durable, node-wide, before connections stop reading. */
  maxInflightWriteBytes: 64 * 1024 * 1024,
  /** Address the peer port listens on; empty means the same as --host. */
  peerHost: '',
  /** Static members `name=host:peerPort,...` (this node may be listed). Empty: no static peers. */
  peers: '',
  /** Dynamic members: `dns:<name>` of a headless Service (SRV or A records). Empty: none. */
  discovery: '',
  /** DNS servers for --discovery as `ip:port,...`; empty uses the system resolver. */
  dnsServers: '',
  /** How often DNS discovery re-resolves the member list. */
  resolveIntervalMs: 5000,
  /** Replicas per key (clamped to the member count). */
  replicationFactor: 3,
  /** Replicas that must answer a read (clamped like the replication factor). */
  readQuorum: 2,
  /** Replicas that must make a write durable before OK (clamped like the replication factor). */
  writeQuorum: 2,
  /**
   * Share of quorum reads that ask every replica (and repair the stale ones) instead of only
   * --read-quorum of them. 1 asks every replica on every read.
   */
  readRepairChance: 0.1,
  /** A read asks the replicas it has not asked yet when its quorum has not answered after this. */
  readSpeculateMs: 20,
  /** Timeout of one request to a peer. */
  peerTimeoutMs: 2000,
  /**
   * How far ahead of this node's clock a version from a peer may be; further ones are refused,
   * never adopted (CockroachDB's default). Raise it only for hosts without NTP.
   */
  maxClockOffsetMs: 500,
  /** Most inbound peer connections at once; further ones are closed at once (and counted). */
  maxPeerConnections: 512,
  /** Time a peer connection has to finish TLS, and again to authenticate, or it is closed. */
  peerHandshakeTimeoutMs: 5000,
  /**
   * Bytes of unfinished peer frames held at once over all peer connections (at least one
   * 64 MiB frame); the connection that goes over is closed.
   */
  maxPeerBufferBytes: 256 * 1024 * 1024,
  /** How often each peer is probed; a peer failing --probe-failures probes in a row is down. */
  probeIntervalMs: 1000,
  /** Consecutive failed probes before a peer is marked down. */
  probeFailures: 3,
  /** Tombstones older than this, held by every replica, are collected; hints older are dropped. */
  tombstoneGraceMs: 3_600_000,
  /** How often tombstone collection runs. */
  gcIntervalMs: 60_000,
  /** Most hints (writes kept for down replicas) stored on this node. */
  maxHints: 100_000,
  /** How often hints are offered to peers that are up again. */
  hintIntervalMs: 1000,
  /** Throttle for rebalancing and decommission streams, bytes per second. */
  rebalanceRateBytes: 32 * 1024 * 1024,
  /** Password clients must send with AUTH. Prefer KV_PASSWORD or --password-file (flags show in ps). */
  password: '',
  /** File holding the AUTH password (trailing newline ignored); wins over --password. */
  passwordFile: '',
  /** Secret every node proves on its peer connections. Prefer KV_CLUSTER_SECRET or the file. */
  clusterSecret: '',
  /** File holding the cluster secret. */
  clusterSecretFile: '',
  /** PEM certificate and key: the client port serves TLS when both are set. */
  tlsCertFile: '',
  tlsKeyFile: '',
  /** PEM certificate, key and CA: the peer port uses mutual TLS when all three are set. */
  peerTlsCertFile: '',
  peerTlsKeyFile: '',
  peerTlsCaFile: '',
};

export const configSchema = z
  .object({
    nodeName: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/, 'must be a DNS-style name'),
    host: z.string().min(1),
    port,
    httpHost: z.string(),
    httpPort: port,
    peerPort: port,
    dataDir: z.string().min(1),
    minFreeDiskBytes: z.coerce.number().int().min(0),
    walSegmentBytes: positive.min(64 * 1024).max(1024 * 1024 * 1024),
    walTruncateCorrupt: z.union([z.boolean(), z.stringbool()]),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    maxKeyBytes: positive.max(1900),
    maxValueBytes: positive.max(512 * 1024 * 1024),
    maxLineBytes: positive,
    maxScanKeys: positive.max(1_000_000),
    maxConnections: positive,
    clientIdleTimeoutMs: z.coerce.number().int().min(0),
    maxPipeline: positive,
    shutdownTimeoutMs: positive,
    maxInflightWriteBytes: positive,
    peerHost: z.string(),
    peers: z.string(),
    discovery: z.string().regex(/^(dns:.+)?$/, 'must be dns:<name> or empty'),
    dnsServers: z.string(),
    resolveIntervalMs: positive,
    replicationFactor: positive.max(7),
    readQuorum: positive,
    writeQuorum: positive,
    readRepairChance: z.coerce.number().min(0).max(1),
    readSpeculateMs: positive,
    peerTimeoutMs: positive,
    maxClockOffsetMs: positive.max(86_400_000),
    maxPeerConnections: positive.max(1_000_000),
    peerHandshakeTimeoutMs: positive,
    maxPeerBufferBytes: positive.min(64 * 1024 * 1024),
    probeIntervalMs: positive,
    probeFailures: positive,
    tombstoneGraceMs: positive,
    gcIntervalMs: positive,
    maxHints: z.coerce.number().int().min(0),
    hintIntervalMs: positive,
    rebalanceRateBytes: positive,
    password: z.string(),
    passwordFile: z.string(),
    clusterSecret: z.string(),
    clusterSecretFile: z.string(),
    tlsCertFile: z.string(),
    tlsKeyFile: z.string(),
    peerTlsCertFile: z.string(),
    peerTlsKeyFile: z.string(),
    peerTlsCaFile: z.string(),
  })
  .strict()
  .refine((c) => c.readQuorum <= c.replicationFactor, {
    message: 'must be at most --replication-factor',
    path: ['readQuorum'],
  })
  .refine((c) => c.writeQuorum <= c.replicationFactor, {
    message: 'must be at most --replication-factor',
    path: ['writeQuorum'],
  })
  .refine((c) => !c.tlsCertFile === !c.tlsKeyFile, {
    message: 'needs --tls-cert-file and --tls-key-file together',
    path: ['tlsKeyFile'],
  })
  .refine((c) => new Set([!c.peerTlsCertFile, !c.peerTlsKeyFile, !c.peerTlsCaFile]).size === 1, {
    message: 'needs --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file together',
    path: ['peerTlsCaFile'],
  })
  .refine((c) => !(c.peers && c.discovery), {
    message: 'use either --peers or --discovery, not both',
    path: ['discovery'],
  })
  .refine((c) => c.tombstoneGraceMs > c.peerTimeoutMs + c.maxClockOffsetMs, {
    message:
      'must be more than --peer-timeout-ms + --max-clock-offset-ms: a write still in flight could land after its key was deleted and the tombstone collected',
    path: ['tombstoneGraceMs'],
  })
  .refine((c) => c.maxLineBytes >= c.maxKeyBytes + c.maxValueBytes + 8, {
    message: 'must be at least max-key-bytes + max-value-bytes + 8 so every valid PUT fits',
    path: ['maxLineBytes'],
  });

export type Config = z.infer<typeof configSchema>;

/** One line of --help per option. */
export const HELP: Record<keyof Config, string> = {
  nodeName: 'stable node name (pod or service name)',
  host: 'client port listen address',
  port: 'client port (seed text protocol)',
  httpHost: 'HTTP listen address (empty: same as --host)',
  httpPort: 'HTTP port for /metrics /healthz /readyz',
  peerPort: 'node-to-node port',
  dataDir: 'LMDB data directory',
  minFreeDiskBytes: 'refuse writes below this much free disk space (0: off)',
  walSegmentBytes: 'write-ahead log segment size in bytes',
  walTruncateCorrupt:
    'true: cut a damaged write-ahead log at the damage and start (loses what follows)',
  logLevel: 'fatal|error|warn|info|debug|trace|silent',
  maxKeyBytes: 'longest key in bytes',
  maxValueBytes: 'largest value in bytes',
  maxLineBytes: 'longest command line in bytes',
  maxScanKeys: 'RANGE/PREFIX cap without LIMIT, and largest LIMIT',
  maxConnections: 'most client connections at once',
  clientIdleTimeoutMs: 'close client connections idle this long (0: never, like Redis timeout)',
  maxPipeline: 'unanswered commands per connection before reads pause',
  shutdownTimeoutMs: 'SIGTERM drain bound: in-flight commands, then the rest is closed',
  maxInflightWriteBytes: 'bytes of writes not yet durable before reads pause',
  peerHost: 'peer port listen address (empty: same as --host)',
  peers: 'static members name=host:peerPort,...',
  discovery: 'dns:<headless service name> (SRV or A records)',
  dnsServers: 'DNS servers ip:port,... for --discovery (empty: system)',
  resolveIntervalMs: 'DNS re-resolve interval',
  replicationFactor: 'replicas per key (clamped to members)',
  readQuorum: 'replicas that must answer a read',
  writeQuorum: 'replicas that must make a write durable before OK',
  readRepairChance: 'share of reads that ask (and repair) every replica, 0..1',
  readSpeculateMs: 'ask the other replicas when a read quorum is this late',
  peerTimeoutMs: 'timeout of one peer request',
  maxClockOffsetMs: 'refuse peer versions further ahead of this clock (ms)',
  maxPeerConnections: 'most inbound peer connections at once',
  peerHandshakeTimeoutMs: 'time a peer connection has for TLS, then to authenticate',
  maxPeerBufferBytes: 'bytes of unfinished peer frames held at once (>= 64 MiB)',
  probeIntervalMs: 'peer health probe interval',
  probeFailures: 'failed probes in a row before a peer is down',
  tombstoneGraceMs: 'age before a fully replicated tombstone is collected',
  gcIntervalMs: 'tombstone collection interval',
  maxHints: 'most hints kept for down replicas',
  hintIntervalMs: 'hint delivery interval',
  rebalanceRateBytes: 'rebalance/decommission throttle in bytes/s',
  password: 'AUTH password (prefer KV_PASSWORD or --password-file)',
  passwordFile: 'file holding the AUTH password',
  clusterSecret: 'peer authentication secret (prefer KV_CLUSTER_SECRET or the file)',
  clusterSecretFile: 'file holding the cluster secret',
  tlsCertFile: 'client port TLS certificate (PEM)',
  tlsKeyFile: 'client port TLS key (PEM)',
  peerTlsCertFile: 'peer port mutual-TLS certificate (PEM)',
  peerTlsKeyFile: 'peer port mutual-TLS key (PEM)',
  peerTlsCaFile: 'CA that signs every peer certificate (PEM)',
};
