// The node's configuration: one zod schema; each option's default, its comment and its --help line are beside it.

import { hostname } from 'node:os';
import * as z from 'zod';
import { defaultsOf } from './flags.ts';

/**
 * The largest --max-value-bytes: a write's record goes to every replica, a hint, a stream or a
 * repair in one peer frame, at most 64 MiB (DEFAULT_MAX_FRAME_BYTES), with its key (up to LMDB's
 * 1,978 bytes), its header and the request around it in the 64 KiB left. Before, up to 512 MiB
 * was accepted: a PUT of 70 MB was stored on the node that took it and refused by every replica
 * (ERR UNAVAILABLE), its hints could never be delivered, and a join never finished streaming it.
 */
export const MAX_VALUE_BYTES = 64 * 1024 * 1024 - 64 * 1024;

const port = z.coerce.number().int().min(0).max(65535);
const positive = z.coerce.number().int().positive();
/**
 * The longest delay Node's setTimeout and setInterval take (2^31 - 1 ms, about 24.8 days): a
 * longer one fires after 1 ms (a TimeoutOverflowWarning), so an interval set past it ran every
 * millisecond. Every flag that feeds a timer is bounded by it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const timerLimit = {
  message: `at most ${MAX_TIMER_MS} ms (about 24.8 days), the longest timer Node runs`,
};
const timerMs = positive.max(MAX_TIMER_MS, timerLimit);

/**
 * Every option: its schema, `.default()` (overridden by `--kebab-name value` or
 * `KV_UPPER_SNAKE_NAME`) and `.describe()` (its line in --help). The comment says more.
 */
const options = {
  /** Stable identity of this node (pod or compose service name); defaults to the host name. */
  nodeName: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/, 'must be a DNS-style name')
    .default(hostname())
    .describe('stable node name (pod or service name)'),
  /** Address the client port listens on. Loopback by default: set 0.0.0.0 to serve others. */
  host: z.string().min(1).default('127.0.0.1').describe('client port listen address'),
  /** Client port (seed protocol). 0 picks a free port (logged at start). */
  port: port.default(8081).describe('client port (seed text protocol)'),
  /** Address of the HTTP port; empty means the same as --host. */
  httpHost: z.string().default('').describe('HTTP listen address (empty: same as --host)'),
  /** HTTP port: /metrics, /healthz, /readyz. 0 picks a free port. */
  httpPort: port.default(9090).describe('HTTP port for /metrics /healthz /readyz'),
  /** Peer port for node-to-node traffic (used once clustering is enabled). */
  peerPort: port.default(7946).describe('node-to-node port'),
  /** LMDB directory; created when missing. Relative paths are from the working directory. */
  dataDir: z.string().min(1).default('./kvstore-data').describe('LMDB data directory'),
  /**
   * Writes are refused (ERR STORAGE, reads keep working) while the data directory's file system
   * has less free space than this, so LMDB and the log never hit a full disk; 0 turns it off.
   */
  minFreeDiskBytes: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1024 * 1024)
    .describe('refuse writes below this much free disk space (0: off)'),
  /**
   * A write-ahead log sync or an LMDB commit outstanding longer than this is a stalled disk (I/O
   * that never completes: a dead network volume, a stuck controller): the node refuses commands
   * with ERR STORAGE_STALLED, /readyz fails, and peers stop sending it data until it answers
   * again (docs/storage.md). An event loop held this long by the disk (a read or a page fault of
   * a hung volume) is logged by the watchdog thread (lifecycle's startWatchdog). 0 turns both off.
   */
  storageStallTimeoutMs: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_TIMER_MS, timerLimit)
    .default(10_000)
    .describe('a disk operation outstanding this long is a stalled disk (0: off)'),
  /**
   * Memory for the kinds of the keys written last (storage/kinds.ts): a write to one of them that
   * wins on its version alone reads no old record. Let go when the node goes idle after writes
   * that seldom came back to its keys (a bulk load). 0: none kept.
   */
  recentKindsBytes: z.coerce
    .number()
    .int()
    .min(0)
    .max(1024 * 1024 * 1024)
    .default(16 * 1024 * 1024)
    .describe(
      'memory for the kinds of the keys written last, saving a SET its old record (0: off)',
    ),
  /** Write-ahead log segment size: a restart replays at most a few segments. */
  walSegmentBytes: positive
    .min(64 * 1024)
    .max(1024 * 1024 * 1024)
    .default(4 * 1024 * 1024)
    .describe('write-ahead log segment size in bytes'),
  /**
   * Start even when the write-ahead log is damaged before its last group: cut it at the damage
   * (the records after it are lost and logged). Off: such a log stops start-up with exit code 2.
   */
  walTruncateCorrupt: z
    .union([z.boolean(), z.stringbool()])
    .default(false)
    .describe('true: cut a damaged write-ahead log at the damage and start (loses what follows)'),
  /** pino log level. */
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('fatal|error|warn|info|debug|trace|silent'),
  /** Longest key in bytes (LMDB's own limit is 1978). */
  maxKeyBytes: positive.max(1900).default(1024).describe('longest key in bytes'),
  /** Largest value in bytes. */
  maxValueBytes: positive
    .max(MAX_VALUE_BYTES)
    .default(1024 * 1024)
    .describe('largest value in bytes (at most 64 MiB - 64 KiB: one peer frame)'),
  /**
   * Bytes of values one command may read: an MGET (read a chunk of keys at a time), or the GETs
   * of one EXEC; past it, ERR LIMIT_EXCEEDED (EXISTS reads versions only). Its request is small
   * (3,000 key names are 40 KB) while each key may hold --max-value-bytes: unbounded, one MGET
   * made a node hold 8.7 GB for a client that did not read. At least --max-value-bytes (one GET
   * always fits).
   */
  maxMultiReadBytes: positive
    .default(64 * 1024 * 1024)
    .describe('bytes of values one MGET or EXEC may read (>= --max-value-bytes)'),
  /** Longest command line in bytes; longer lines are discarded with one error reply. */
  maxLineBytes: positive.default(1024 * 1024 + 4096).describe('longest command line in bytes'),
  /** Most keys one RANGE/PREFIX returns: the cap without LIMIT and the largest LIMIT. */
  maxScanKeys: positive
    .max(1_000_000)
    .default(10_000)
    .describe('RANGE/PREFIX cap without LIMIT, and largest LIMIT'),
  /** Most client connections at once; further ones get ERR MAX_CLIENTS and are closed. */
  maxConnections: positive.default(10_000).describe('most client connections at once'),
  /**
   * Most connections to the HTTP port at once (metrics, probes, admin calls, the console,
   * backups); further ones are closed as they are accepted. Unbounded, a stranger who reaches the
   * port (Prometheus's, so reachable across a cluster) could take every file descriptor.
   */
  maxHttpConnections: positive
    .max(10_000)
    .default(256)
    .describe('most HTTP connections (metrics, admin, console) at once'),
  /** Close a client connection idle this long (no command running, no bytes moving); 0: never. */
  clientIdleTimeoutMs: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_TIMER_MS, timerLimit)
    .default(0)
    .describe('close client connections idle this long (0: never, like Redis timeout)'),
  /** Unanswered commands per connection before the node stops reading from it. */
  maxPipeline: positive
    .default(1024)
    .describe('unanswered commands per connection before reads pause'),
  /**
   * How long SIGTERM/SIGINT waits for in-flight commands and their replies before closing what
   * is left; the process exits within this plus about a second.
   */
  shutdownTimeoutMs: timerMs
    .default(10_000)
    .describe('SIGTERM drain bound: in-flight commands, then the rest is closed'),
  /** Bytes of writes not yet durable, node-wide, before connections stop reading. */
  maxInflightWriteBytes: positive
    .default(64 * 1024 * 1024)
    .describe('bytes of writes not yet durable before reads pause'),
  /**
   * Bytes of unfinished client requests (a text line or RESP request not yet whole), and of
   * complete ones waiting in a connection's backlog, held at once over all client connections;
   * a read that would take it over closes its connection with ERR LIMIT_EXCEEDED. At least
   * 64 MiB (RESP's request limit), and raised at start to the largest single request when
   * --max-value-bytes or --max-line-bytes make one larger, so one request of any allowed size
   * always fits.
   */
  maxClientBufferBytes: positive
    .min(64 * 1024 * 1024)
    .default(256 * 1024 * 1024)
    .describe('bytes of unfinished client requests held at once (>= 64 MiB, >= one request)'),
  /**
   * Bytes of replies held at once over all client connections (made and not yet written, and
   * waiting in their sockets' buffers); past it the connections holding the most are closed,
   * largest first, until the rest is under it, as Redis's maxmemory-clients does, but those not
   * seen reading before those draining (server/client-output.ts: telling them apart may keep it
   * over for up to 3 s, by up to a quarter). A connection holding at most 1 MiB +
   * --max-value-bytes (a client that reads its replies) is never closed.
   * Raised at start to what one connection may hold (16 MiB + --max-multi-read-bytes + 1 MiB).
   * 128 MiB: with a node's ~64 MiB at rest and --max-inflight-write-bytes (64 MiB), clients that
   * stop reading leave the chart's 512 MiB limit room for the rest.
   */
  maxClientOutputBytes: positive
    .min(16 * 1024 * 1024)
    .default(128 * 1024 * 1024)
    .describe(
      'bytes of replies held over all client connections before the largest are closed, those not reading first',
    ),
  /** Address the peer port listens on; empty means the same as --host. */
  peerHost: z.string().default('').describe('peer port listen address (empty: same as --host)'),
  /** Static members `name=host:peerPort,...` (this node may be listed). Empty: no static peers. */
  peers: z.string().default('').describe('static members name=host:peerPort,...'),
  /** Dynamic members: `dns:<name>` of a headless Service (SRV or A records). Empty: none. */
  discovery: z
    .string()
    .regex(/^(dns:.+)?$/, 'must be dns:<name> or empty')
    .default('')
    .describe('dns:<headless service name> (SRV or A records)'),
  /** DNS servers for --discovery as `ip:port,...`; empty uses the system resolver. */
  dnsServers: z
    .string()
    .default('')
    .describe('DNS servers ip:port,... for --discovery (empty: system)'),
  /** How often DNS discovery re-resolves the member list. */
  resolveIntervalMs: timerMs.default(5000).describe('DNS re-resolve interval'),
  /**
   * How long a member that DNS stops listing stays a member (down, in the ring, hints kept) while
   * it answers nowhere, so that a restart on a new address (a pod made again, a compose container
   * recreated) is no leave and join that moves its data away and back. A member that reported
   * itself decommissioning or decommissioned leaves at once, and one that still answers where it
   * was once a resolve made after that answer still does not list it. 0: every unlisted member
   * leaves at once. 30 s: a pod made again on its node, or rescheduled with its volume, is
   * listed again within it; a decommissioned member whose last statuses this node missed (a
   * decommission of little data, the pod deleted before a probe saw it) holds the ring and the
   * operator's health gate for at most that long. A node that never knew a holder of its settled
   * ring as a member (back on an empty directory) and finds it listed nowhere waits as long before
   * it settles a ring without it (RingKeeper).
   */
  unlistedGraceMs: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_TIMER_MS, timerLimit)
    .default(30_000)
    .describe('how long an unlisted member that answers nowhere stays a member (0: none)'),
  /** Replicas per key (clamped to the member count). */
  replicationFactor: positive.max(7).default(3).describe('replicas per key (clamped to members)'),
  /** Replicas that must answer a read (clamped like the replication factor). */
  readQuorum: positive.default(2).describe('replicas that must answer a read'),
  /** Replicas that must make a write durable before OK (clamped like the replication factor). */
  writeQuorum: positive.default(2).describe('replicas that must make a write durable before OK'),
  /**
   * Share of quorum reads that ask every replica (and repair the stale ones) instead of only
   * --read-quorum of them. 1 asks every replica on every read. 0 by default: a quorum read of two
   * or more replicas asks the other owners in turn (ReadPreference), so it finds a stale one by
   * itself; the 10% default found nothing in a steady cluster for a tenth of a GET's CPU.
   */
  readRepairChance: z.coerce
    .number()
    .min(0)
    .max(1)
    .default(0)
    .describe('share of reads that ask (and repair) every replica, 0..1'),
  /** A read asks the replicas it has not asked yet when its quorum has not answered after this. */
  readSpeculateMs: timerMs
    .default(20)
    .describe('ask the other replicas when a read quorum is this late'),
  /** Timeout of one request to a peer. */
  peerTimeoutMs: timerMs.default(2000).describe('timeout of one peer request'),
  /**
   * How far ahead of this node's clock a version from a peer may be; further ones are refused,
   * never adopted (CockroachDB's default). Raise it only for hosts without NTP.
   */
  maxClockOffsetMs: positive
    .max(86_400_000)
    .default(500)
    .describe('refuse peer versions further ahead of this clock (ms)'),
  /**
   * Most inbound peer connections at once; at it, a new one closes the oldest connection not yet
   * authenticated and takes its slot, or is closed at once when every open one is. Each
   * member opens three to each other member (small and large requests, and the probes' control
   * connection), so 4096 leaves room for 1,365 members (512 stopped at 170 once the lanes came);
   * a connection that has not authenticated holds about 9 KiB (37 MiB for 4096 at once, each
   * closed after --peer-handshake-timeout-ms).
   */
  maxPeerConnections: positive
    .max(1_000_000)
    .default(4096)
    .describe('most inbound peer connections at once'),
  /** Time a peer connection has to finish TLS, and again to authenticate, or it is closed. */
  peerHandshakeTimeoutMs: timerMs
    .default(5000)
    .describe('time a peer connection has for TLS, then to authenticate'),
  /**
   * Bytes of unfinished peer frames held at once over all peer connections (at least one
   * 64 MiB frame); a read that would go over closes the connection holding the most. Answers to
   * peers not yet taken by the kernel are bounded by it apart, the same way (output_full).
   */
  maxPeerBufferBytes: positive
    .min(64 * 1024 * 1024)
    .default(256 * 1024 * 1024)
    .describe('bytes of unfinished peer frames held at once (>= 64 MiB)'),
  /** How often each peer is probed; a peer failing --probe-failures probes in a row is down. */
  probeIntervalMs: timerMs.default(1000).describe('peer health probe interval'),
  /** Consecutive failed probes before a peer is marked down. */
  probeFailures: positive.default(3).describe('failed probes in a row before a peer is down'),
  /** Tombstones older than this, held by every replica, are collected; hints older are dropped. */
  tombstoneGraceMs: positive
    .default(3_600_000)
    .describe('age before a fully replicated tombstone is collected'),
  /** How often tombstone collection runs. */
  gcIntervalMs: timerMs.default(60_000).describe('tombstone collection interval'),
  /**
   * Anti-entropy: while the cluster is at rest, replicas compare digests of the keys they share
   * and send each other what differs, when the cluster comes to rest and then this often. 0 turns
   * it off.
   */
  antiEntropyIntervalMs: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_TIMER_MS, timerLimit)
    .default(600_000)
    .describe('interval of the anti-entropy pass between replicas at rest (0: off)'),
  /** How often the expiry sweeper turns expired keys into tombstones (reads hide them at once). */
  expirySweepIntervalMs: timerMs
    .default(1000)
    .describe('interval of the sweep that turns expired keys into tombstones'),
  /** Most keys one expiry sweep handles; a full batch is followed by the next at once. */
  expirySweepBatch: positive
    .max(1_000_000)
    .default(1000)
    .describe('most keys one expiry sweep handles'),
  /** Most hints (writes kept for down replicas) stored on this node. */
  maxHints: z.coerce
    .number()
    .int()
    .min(0)
    .default(100_000)
    .describe('most hints kept for down replicas'),
  /**
   * Most bytes of hints stored on this node (each hint's key, record and id): with large values
   * the count alone let a down replica cost ~100 GiB of disk (100,000 hints of 1 MiB), and a full
   * disk refuses every write. 256 MiB is a quarter of the chart's and the operator's default
   * 1 GiB volume (LMDB's file keeps the pages a peak of hints took); the count still binds first
   * for values up to about 2.5 KiB. Hints beyond either bound are dropped (counted as full).
   */
  maxHintBytes: z.coerce
    .number()
    .int()
    .min(0)
    .default(256 * 1024 * 1024)
    .describe('most bytes of hints kept for down replicas'),
  /** How often hints are offered to peers that are up again. */
  hintIntervalMs: timerMs.default(1000).describe('hint delivery interval'),
  /** Throttle for rebalancing and decommission streams, bytes per second. */
  rebalanceRateBytes: positive
    .default(32 * 1024 * 1024)
    .describe('rebalance/decommission throttle in bytes/s'),
  /** Password clients must send with AUTH. Prefer KV_PASSWORD or --password-file (flags show in ps). */
  password: z
    .string()
    .default('')
    .describe('AUTH password (prefer KV_PASSWORD or --password-file)'),
  /** File holding the AUTH password (trailing newline ignored); wins over --password. */
  passwordFile: z.string().default('').describe('file holding the AUTH password'),
  /** Secret every node proves on its peer connections. Prefer KV_CLUSTER_SECRET or the file. */
  clusterSecret: z
    .string()
    .default('')
    .describe('peer authentication secret (prefer KV_CLUSTER_SECRET or the file)'),
  /** File holding the cluster secret. */
  clusterSecretFile: z.string().default('').describe('file holding the cluster secret'),
  /** PEM certificate and key: the client port serves TLS when both are set. */
  tlsCertFile: z.string().default('').describe('client port TLS certificate (PEM)'),
  tlsKeyFile: z.string().default('').describe('client port TLS key (PEM)'),
  /** PEM certificate, key and CA: the peer port uses mutual TLS when all three are set. */
  peerTlsCertFile: z.string().default('').describe('peer port mutual-TLS certificate (PEM)'),
  peerTlsKeyFile: z.string().default('').describe('peer port mutual-TLS key (PEM)'),
  peerTlsCaFile: z.string().default('').describe('CA that signs every peer certificate (PEM)'),
};

export const configSchema = z
  .object(options)
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
  .refine((c) => c.maxMultiReadBytes >= c.maxValueBytes, {
    message: 'must be at least max-value-bytes, so one GET always fits',
    path: ['maxMultiReadBytes'],
  })
  .refine((c) => c.maxLineBytes >= c.maxKeyBytes + c.maxValueBytes + 8, {
    message: 'must be at least max-key-bytes + max-value-bytes + 8 so every valid PUT fits',
    path: ['maxLineBytes'],
  });

export type Config = z.infer<typeof configSchema>;

/**
 * Whether every read quorum meets every write quorum (R + W > RF): then a read always asks a
 * replica that took the newest acknowledged write. Without it (R = W = 1 of 3, say) a read may
 * miss an acknowledged write until hints, read repair or anti-entropy bring it. The node accepts
 * such quorums (a deliberate choice for latency or availability) and says so at start; the
 * operator asks for spec.allowStaleReads (docs/operator.md).
 */
export function quorumsOverlap(
  c: Pick<Config, 'replicationFactor' | 'readQuorum' | 'writeQuorum'>,
): boolean {
  return c.readQuorum + c.writeQuorum > c.replicationFactor;
}

/** The defaults, as --help shows them and loading starts from. */
export const DEFAULTS: Config = defaultsOf(options);
