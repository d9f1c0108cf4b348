// The node's admin HTTP API: the paths and the JSON each answers, as one zod schema per answer.

import { z } from 'zod';

/** The admin endpoints of the node's HTTP port. */
export const ADMIN_PATHS = {
  /** GET: the node's view of the cluster (the CLUSTER command answers the same). */
  cluster: '/admin/cluster',
  /** GET: decommission state; POST: start one (202, or 409 with an AdminError). */
  decommission: '/admin/decommission',
  /** POST: take a decommissioned node back (200 with a RecommissionResult, or 409). */
  recommission: '/admin/recommission',
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
});

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

/** The body of a refusal (409) or of an unauthorized call (401). */
export const adminErrorSchema = z.object({ error: z.string() });

export type NodeStatusView = z.output<typeof nodeStatusSchema>;
export type TransferView = z.output<typeof transferSchema>;
export type MemberInfo = z.output<typeof memberInfoSchema>;
export type ClusterInfo = z.output<typeof clusterInfoSchema>;
export type DecommissionState = z.output<typeof decommissionStateSchema>;
export type RecommissionResult = z.output<typeof recommissionResultSchema>;
export type AdminError = z.output<typeof adminErrorSchema>;
