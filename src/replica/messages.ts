// The peer methods nodes call on each other, with their request and reply shapes.

/** A key and its record in encodeRecord format, as sent between nodes. */
export type WireEntry = [key: Buffer, raw: Buffer];

/** Lifecycle of a node as it reports itself. */
export type NodeStatus = 'active' | 'decommissioning' | 'decommissioned';

/** `hello`: who a node is and how far its view of the ring has come. */
export interface HelloReply {
  readonly name: string;
  readonly status: NodeStatus;
  /** Id of the ring this node routes to (its target ring). */
  readonly ringId: string;
  /** Id of the target ring whose outbound transfer this node finished, or null. */
  readonly rebalanced: string | null;
  /** Members of the ring this node knows holds the data (a new node adopts it). */
  readonly settled: readonly string[];
}

/** `get`: the record stored at a key (tombstones included). */
export interface GetRequest {
  readonly k: Buffer;
}
export interface GetReply {
  readonly r: Buffer | null;
}

/** `apply`: last-write-wins writes, durable before the reply. */
export interface ApplyRequest {
  readonly e: WireEntry[];
}
export interface ApplyReply {
  /** Entries that were newer than what the replica had. */
  readonly n: number;
}

/** `scan`: records in key order within bounds, tombstones included. */
export interface ScanRequest {
  readonly s: Buffer;
  /** End bound, or null for the end of the keyspace. */
  readonly e: Buffer | null;
  /** End inclusive. */
  readonly ie: boolean;
  /** Start exclusive. */
  readonly xs: boolean;
  /** Most entries to return. */
  readonly l: number;
}
export interface ScanReply {
  readonly e: WireEntry[];
  /** True when entries remain after the last one returned. */
  readonly more: boolean;
}

export const METHODS = {
  hello: 'hello',
  get: 'get',
  apply: 'apply',
  scan: 'scan',
  /** First request of every connection when a cluster secret is set: a PeerProof. */
  auth: 'auth',
} as const;
