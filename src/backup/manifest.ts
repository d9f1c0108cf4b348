// MANIFEST.json: written last into a backup directory, so a backup without one is incomplete.

import * as z from 'zod';

/** Names of a backup directory's files. */
export const MANIFEST_FILE = 'MANIFEST.json';
export const RECORDS_FILE = 'records.kvb';

const count = z.number().int().nonnegative();

export const ManifestSchema = z.object({
  kind: z.literal('kvstore-backup'),
  format: z.literal(1),
  /** `cluster`: every member's records merged, one record per key; `node`: one member's. */
  scope: z.enum(['cluster', 'node']),
  /** The node kvctl asked (it read every member's snapshot). */
  via: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** The cluster when the backup started: settled-ring epoch, members, replication factor. */
  cluster: z.object({
    epoch: count,
    members: z.array(z.string()).min(1),
    replicationFactor: z.number().int().positive(),
  }),
  /** Each member's snapshot: when it was taken (member's clock) and its data directory. */
  snapshots: z.array(z.object({ member: z.string(), at: z.string(), incarnation: z.string() })),
  records: count,
  liveKeys: count,
  tombstones: count,
  files: z
    .array(
      z.object({
        name: z.literal(RECORDS_FILE),
        bytes: count,
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      }),
    )
    .length(1),
});

export type Manifest = z.infer<typeof ManifestSchema>;
