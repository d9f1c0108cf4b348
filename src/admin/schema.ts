// The node's admin HTTP API: the paths and the JSON each answers, as one zod schema per answer.

import * as z from 'zod';

/** The admin endpoints of the node's HTTP port. */
export const ADMIN_PATHS = {
  /** GET: the node's view of the cluster (the CLUSTER command answers the same). */
  cluster: '/admin/cluster',
  /** GET: decommission state; POST: start one (202, or 409 with an AdminError). */
  decommission: '/admin/decommission',
  /** POST: take a decommissioned node back (200 with a RecommissionResult, or 409). */
  recommission: '/admin/recommission',
  /** GET: everything the web console shows (a ConsoleView). */
  console: '/admin/console',
  /** GET `?key=`: the key's replicas in the settled and the target ring (an OwnersView). */
  owners: '/admin/owners',
} as const;

// Unknown keys are dropped, not refused: a newer node may add a field without failing an older
// kvctl or operator. A field added later must be optional here for the same reason.

/** Lifecycle of a node as it reports itself. */
export const nodeStatusSchema = z.enum(['active', 'decommissioning', 'decommissioned']);

/** Progress of this node's outbound stream (rebalance or decommission hand-off). */
export const transferSchema = z.object({
  kind: z.enum(['rebalance', 'decommission']),
  /** The transfer or ring the stream moves data toward. */
  ringId: z.string(),
  /** Local records read so far. */
  scanned: z.number().int().nonnegative(),
  /** Records acknowledged by their new owners. */
  sent: z.number().int().nonnegative(),
  bytes: z.number().nonnegative(),
  done: z.boolean(),
  /** ISO 8601 time the stream started. */
  startedAt: z.string(),
  /**
   * Local records the stream examines in all: those stored when it started plus those written
   * since (an estimate while writes arrive; equal to `scanned` once done). The fields below are
   * absent from nodes of older versions.
   */
  total: z.number().int().nonnegative().optional(),
  /** scanned / total, 0-100 with one decimal; 100 only once done. */
  percent: z.number().min(0).max(100).optional(),
  /** Records examined per second since this process (re)started the stream. */
  rate: z.number().nonnegative().optional(),
  /** Bytes sent per second since this process (re)started the stream. */
  bytesRate: z.number().nonnegative().optional(),
  /** Seconds left at the current rate; null until a rate is known, 0 once done. */
  etaSeconds: z.number().nonnegative().nullable().optional(),
  /**
   * Members whose storage refuses the stream's batches (a full disk), with why: the stream waits
   * for them (docs/cluster.md, "Data movement and a full disk"). Absent when none, and from
   * older versions.
   */
  waitingFor: z.record(z.string().max(256), z.string().max(1024)).optional(),
});

/** Where a member is in its life (see membership's clusterInfo). */
export const memberPhaseSchema = z.enum(['normal', 'joining', 'leaving', 'decommissioned']);

/** One member as this node sees it. */
export const memberInfoSchema = z.object({
  name: z.string(),
  /** `host:port` of its peer port. */
  address: z.string(),
  state: z.enum(['up', 'down', 'unknown']),
  /** What it reported in its last hello; null before one arrived. */
  status: nodeStatusSchema.nullable(),
  /** Its share of the target ring (0 when not in it), 4 decimals. */
  share: z.number().min(0).max(1),
  /** The data-directory incarnation it reported; null when unknown. */
  incarnation: z.string().nullable(),
  /** The incarnation the settled ring recorded for it; null when none. */
  recorded: z.string().nullable(),
  /** Id of the ring it routes by; null before a hello. */
  ringId: z.string().nullable(),
  /** The transfer it finished streaming; null when none. */
  rebalanced: z.string().nullable(),
  // For status views (kvctl status, the console); absent from nodes of older versions.
  phase: memberPhaseSchema.optional(),
  /** Live keys it reported in its last hello; null before one arrived. */
  keys: z.number().int().nonnegative().nullable().optional(),
  /** Size of its LMDB data file as it reported it; null before a hello. */
  bytes: z.number().int().nonnegative().nullable().optional(),
  /** Hints the members hold for it (as they reported them). */
  hintsHeldFor: z.number().int().nonnegative().optional(),
  /** ISO 8601 time it last answered this node's probes; null: never. */
  lastContact: z.string().nullable().optional(),
  /** Its running or last outbound stream, as it reported it. */
  transfer: transferSchema.nullable().optional(),
  /**
   * Its disk stalled, as it reported in its last hello: down for data (see
   * --storage-stall-timeout-ms) while it stays a member. Absent from older versions.
   */
  storageStalled: z.boolean().optional(),
  /**
   * It refuses writes for its clock, as its last hello said (this node's own: its refusal now).
   * Absent from older versions.
   */
  clockRefusing: z.boolean().optional(),
  /**
   * Its storage refuses writes (a full disk, LMDB or the log failing), as its last hello said (this
   * node's own: now): it serves reads and coordinates writes, but stores none, so it counts for
   * no write quorum (docs/storage.md, "When the disk is full"). Absent from older versions.
   */
  storageNotWritable: z.boolean().optional(),
});

/**
 * What this node refuses of its clients' commands now, and why: `all` (every command but PING,
 * QUIT and CLUSTER) or `writes`. `ready` says whether /readyz still answers 200 (`degraded:
 * <reason>`): it answers 503 (`not ready: <reason>`) while another member may take the clients
 * instead. See docs/observability.md, "Readiness".
 */
export const refusalSchema = z.object({
  commands: z.enum(['all', 'writes']),
  reason: z.string(),
  ready: z.boolean(),
});

/** GET /admin/cluster and the CLUSTER command. */
export const clusterInfoSchema = z.object({
  node: z.string(),
  incarnation: z.string(),
  status: nodeStatusSchema,
  ring: z.object({
    target: z.string(),
    settled: z.string(),
    epoch: z.number().int().nonnegative(),
    /** Data is moving (the settled ring is not the target, or an owner is lost). */
    moving: z.boolean(),
  }),
  replicationFactor: z.number().int().nonnegative(),
  members: z.array(memberInfoSchema),
  transfer: transferSchema.nullable(),
  /** Hints this node holds (writes not delivered yet). */
  hints: z.number().int().nonnegative(),
  /**
   * Members that have listed other members than this node for longer than a join takes, with
   * the names they list ({} when none; absent from nodes of older versions). See
   * docs/cluster.md, "Same member list everywhere".
   */
  memberListsDiffer: z.record(z.string(), z.array(z.string())).optional(),
  /**
   * Members that reported themselves decommissioned and that this node has still listed for
   * longer than a leave takes ([] when none; absent from nodes of older versions). See
   * docs/cluster.md, "Decommission".
   */
  decommissionedListed: z.array(z.string()).optional(),
  /** What this node refuses now (null: nothing); absent from nodes of older versions. */
  refusing: refusalSchema.nullable().optional(),
  /**
   * Why this node's storage refuses writes now (`disk full ...`), null while it takes them. Not a
   * refusal of its clients' commands (`refusing`): it still coordinates writes, which the other
   * replicas store, and stays ready (`degraded`). Absent from nodes of older versions.
   */
  notWritable: z.string().nullable().optional(),
});

/** GET and POST /admin/decommission (202 on a started POST). */
export const decommissionStateSchema = z.object({
  status: nodeStatusSchema,
  transfer: transferSchema.nullable(),
});

/** POST /admin/recommission (200): the node's status and the stale records it dropped. */
export const recommissionResultSchema = z.object({
  status: nodeStatusSchema,
  dropped: z.number().int().nonnegative(),
});

/**
 * GET /admin/owners?key=: the replicas of a key, in preference order. The key is the exact bytes
 * of the query's value (`%ff` is the byte 0xff); `key` shows them as UTF-8 (U+FFFD where they
 * are not), `keyHex` exactly.
 */
export const ownersViewSchema = z.object({
  key: z.string(),
  /** The key's bytes in hex (absent from nodes of older versions). */
  keyHex: z.string().optional(),
  settled: z.array(z.string()),
  target: z.array(z.string()),
});

/** Each ring's members and their shares of the keys. */
export const ringsViewSchema = z.object({
  replicationFactor: z.number().int().nonnegative(),
  moving: z.boolean(),
  settled: z.object({ id: z.string(), shares: z.record(z.string(), z.number()) }),
  target: z.object({ id: z.string(), shares: z.record(z.string(), z.number()) }),
});

/** GET /admin/console: the node's facts, its cluster view, the rings and recent traffic. */
export const consoleViewSchema = z.object({
  time: z.string(),
  facts: z.object({
    name: z.string(),
    version: z.string(),
    node: z.string(),
    startedAt: z.string(),
    uptimeSeconds: z.number(),
    dataDir: z.string(),
    dataDirBytes: z.number(),
    /** `kvstore_storage_*` and `kvstore_wal_*` series by name (with labels). */
    storage: z.record(z.string(), z.number()),
    /** The config in force; passwords and secrets are `(set)` or `(not set)`. */
    config: z.record(z.string(), z.unknown()),
  }),
  cluster: clusterInfoSchema,
  rings: ringsViewSchema,
  /** One entry per 5 s interval, oldest first: rates, p50/p99 seconds, errors by code. */
  traffic: z.array(
    z.object({
      t: z.number(),
      rate: z.record(z.string(), z.number()),
      p50: z.record(z.string(), z.number()),
      p99: z.record(z.string(), z.number()),
      errors: z.record(z.string(), z.number()),
    }),
  ),
});

/** The body of a refusal (409) or of an unauthorized call (401). */
export const adminErrorSchema = z.object({ error: z.string() });

export type NodeStatusView = z.output<typeof nodeStatusSchema>;
export type TransferView = z.output<typeof transferSchema>;
export type MemberInfo = z.output<typeof memberInfoSchema>;
export type ClusterInfo = z.output<typeof clusterInfoSchema>;
export type DecommissionState = z.output<typeof decommissionStateSchema>;
export type RecommissionResult = z.output<typeof recommissionResultSchema>;
export type AdminError = z.output<typeof adminErrorSchema>;
export type MemberPhase = z.output<typeof memberPhaseSchema>;
export type OwnersView = z.output<typeof ownersViewSchema>;
export type RingsView = z.output<typeof ringsViewSchema>;
export type ConsoleView = z.output<typeof consoleViewSchema>;
export type Refusal = z.output<typeof refusalSchema>;
