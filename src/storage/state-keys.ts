// The small JSON documents a node keeps in its data directory: every key, and the schema it is read with.

import { isIP } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import * as z from 'zod';
import { nodeStatusSchema } from '../admin/index.ts';

/** A node name: what `--node-name` accepts (letters, digits, `.`, `_`, `-`; alphanumeric ends). */
export const NODE_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

const memberName = z.string().min(1);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** Where an outbound stream (rebalance or decommission hand-off) resumes after a restart. */
const streamCursorSchema = z
  .object({
    /** The transfer or ring the stream moves data toward; a cursor of another one is not used. */
    ringId: z.string(),
    /** Base64 of the last key acknowledged by every target; null before the first batch. */
    after: z.string().nullable(),
    done: z.boolean(),
    /** Counts so far, so a resumed stream reports its whole progress (absent: written by 1.x). */
    scanned: count.optional(),
    sent: count.optional(),
    bytes: count.optional(),
    total: count.optional(),
  })
  .nullable();

/**
 * Every state document and its schema. Readers get a document only when it matches (see
 * readStateDoc); writers can only write what it describes (writeStateDoc).
 */
export const STATE_DOCS = {
  /**
   * The settled ring (membership/settled.ts normalizes it): `{ epoch, members, incarnations,
   * lost, handedOff, takenBack }`, or the bare member list versions before epochs saved.
   */
  'settled-ring': z.union([
    z.array(z.string()).readonly(),
    z.object({
      epoch: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
      members: z.array(memberName).readonly(),
      incarnations: z.record(z.string(), z.string()).readonly(),
      /** Absent in rings saved before members could be lost. */
      lost: z.array(memberName).readonly().optional(),
      /**
       * Lost members recorded for their hand-off, and the ring they handed off to; absent when
       * none, and in rings saved before 2026-12-07.
       */
      handedOff: z.record(z.string(), z.string()).readonly().optional(),
      /** Lost members whose hand-off was taken back; absent when none, and in older rings. */
      takenBack: z.array(memberName).readonly().optional(),
    }),
  ]),
  /**
   * Names the DNS source learned for A/AAAA addresses: `{ address: node name }`. An entry that
   * is not an IP address and a node name is left out on read (the others still count).
   */
  'dns-names': z
    .record(z.string(), z.unknown())
    .transform((doc) =>
      Object.fromEntries(
        Object.entries(doc).filter(
          (e): e is [string, string] =>
            isIP(e[0]) !== 0 && typeof e[1] === 'string' && NODE_NAME.test(e[1]),
        ),
      ),
    ),
  /** This node's lifecycle (rebalance/manager.ts). */
  status: nodeStatusSchema,
  /** The data directory's incarnation: 16 hex digits, made once. */
  incarnation: z.string().regex(/^[0-9a-f]{16}$/),
  /** Resume cursor of the rebalance stream; null: start from the first key. */
  'stream:rebalance': streamCursorSchema,
  /** Resume cursor of the decommission hand-off; null: start from the first key. */
  'stream:decommission': streamCursorSchema,
  /** The restore this member takes part in (backup/sessions.ts); null when none. */
  restore: z.string().nullable(),
  /**
   * When (wall ms) this node last dropped its records, taken out of the ring while away
   * (RingKeeper): hints of records older than that, but for recent ones, are dropped undelivered
   * (Hints droppedBefore), also after a restart. Written before the records are dropped.
   */
  'taken-out': z.object({ droppedAt: count }),
} as const;

export type StateKey = keyof typeof STATE_DOCS;
export type StateDoc<K extends StateKey> = z.output<(typeof STATE_DOCS)[K]>;
export type StreamCursor = NonNullable<StateDoc<'stream:rebalance'>>;

/** Where the documents live (Storage implements it). */
export interface StateStore {
  /** The stored JSON document, as stored (unchecked); undefined when absent. */
  readState(name: string): unknown;
  /** Stores a JSON document atomically; resolves once durable. */
  writeState(name: string, value: unknown): Promise<void>;
}

/**
 * The document at `key`, checked by its schema: undefined when absent or when it does not match
 * (a reader then starts as it would without one, as after a lost file).
 */
export function readStateDoc<K extends StateKey>(
  store: StateStore,
  key: K,
): StateDoc<K> | undefined {
  const raw = store.readState(key);
  if (raw === undefined) return undefined;
  const parsed = STATE_DOCS[key].safeParse(raw);
  // The cast only restores what indexing STATE_DOCS by a generic key loses: K's schema parsed it.
  return parsed.success ? (parsed.data as StateDoc<K>) : undefined;
}

/** Stores the document at `key`; resolves once durable. */
export function writeStateDoc<K extends StateKey>(
  store: StateStore,
  key: K,
  value: StateDoc<K>,
): Promise<void> {
  return store.writeState(key, value);
}

/**
 * Whether a raw document is exactly what its key's schema describes, nothing left out on read
 * (`kvctl verify`); null when `name` is no key of STATE_DOCS.
 */
export function validStateDoc(name: string, raw: unknown): boolean | null {
  if (!Object.hasOwn(STATE_DOCS, name)) return null;
  const parsed = STATE_DOCS[name as StateKey].safeParse(raw);
  return parsed.success && isDeepStrictEqual(parsed.data, raw);
}
