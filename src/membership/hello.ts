// Reads a peer's hello reply: checks its shape, so nothing downstream trusts a malformed one.

import { type TransferView, transferSchema } from '../admin/index.ts';
import { KvError } from '../errors/index.ts';
import type { HelloReply, MemberLoad, NodeStatus, ReplicationSettings } from '../replica/index.ts';
import { parseSettled } from './settled.ts';

const STATUSES: readonly NodeStatus[] = ['active', 'decommissioning', 'decommissioned'];

/**
 * A hello reply as this version understands it. A peer of an older version (no incarnation, the
 * settled ring as a bare member list) reads as incarnation '' (unknown: never recorded, never
 * compared) and a settled ring of epoch 0. Throws KV_ERR_PEER_PROTOCOL for anything else
 * malformed.
 */
export function readHello(raw: unknown): HelloReply {
  const h = (raw ?? {}) as Partial<Record<keyof HelloReply, unknown>>;
  const settled = parseSettled(h.settled) ?? { epoch: 0, members: [], incarnations: {}, lost: [] };
  if (
    typeof h.name !== 'string' ||
    !STATUSES.includes(h.status as NodeStatus) ||
    typeof h.ringId !== 'string' ||
    (h.rebalanced !== null && typeof h.rebalanced !== 'string')
  ) {
    throw new KvError('KV_ERR_PEER_PROTOCOL', 'membership: malformed hello reply');
  }
  const load = readLoad(h.load);
  return {
    name: h.name,
    incarnation: typeof h.incarnation === 'string' ? h.incarnation : '',
    status: h.status as NodeStatus,
    ringId: h.ringId,
    rebalanced: h.rebalanced as string | null,
    settled,
    hints:
      typeof h.hints === 'number' && Number.isSafeInteger(h.hints) && h.hints > 0 ? h.hints : 0,
    ...(load ? { load } : {}),
    ...(typeof h.clock === 'number' && Number.isSafeInteger(h.clock) && h.clock > 0
      ? { clock: h.clock }
      : {}),
    ...readReplication(h.replication),
    ...readListed(h.listed),
    ...readKept(h.kept),
    ...(typeof h.unnamed === 'number' && Number.isSafeInteger(h.unnamed) && h.unnamed > 0
      ? { unnamed: h.unnamed }
      : {}),
    ...(h.storageStalled === true ? { storageStalled: true as const } : {}),
    ...(h.clockRefusing === true ? { clockRefusing: true as const } : {}),
    ...(h.clockSuspect === true ? { clockSuspect: true as const } : {}),
    ...(h.storageNotWritable === true ? { storageNotWritable: true as const } : {}),
    ...(typeof h.started === 'number' && Number.isSafeInteger(h.started) && h.started > 0
      ? { started: h.started }
      : {}),
  };
}

/** Names a hello may list: more is not a real cluster's answer. */
const MAX_LISTED = 4096;

/** `{ listed }` (sorted, each name once) when the hello's member list is well-formed, else nothing. */
function readListed(raw: unknown): { listed?: readonly string[] } {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_LISTED) return {};
  if (!raw.every((n) => typeof n === 'string' && n.length > 0)) return {};
  return { listed: [...new Set(raw as string[])].sort() };
}

/** `{ kept }` (sorted, each name once) when the hello names members it keeps unlisted. */
function readKept(raw: unknown): { kept?: readonly string[] } {
  const { listed } = readListed(raw);
  return listed === undefined ? {} : { kept: listed };
}

/** `{ replication }` when the hello's settings are well-formed, else nothing. */
function readReplication(raw: unknown): { replication?: ReplicationSettings } {
  if (typeof raw !== 'object' || raw === null) return {};
  const { rf, w, r } = raw as Partial<Record<keyof ReplicationSettings, unknown>>;
  const n = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  return n(rf) && n(w) && n(r) ? { replication: { rf, w, r } } : {};
}

const count = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/** Members a hello may name hints for: more is not a real cluster's answer. */
const MAX_HINT_TARGETS = 1024;

/** A hello's load figures, or undefined when absent or malformed (they only inform status views). */
export function readLoad(raw: unknown): MemberLoad | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const l = raw as Partial<Record<keyof MemberLoad, unknown>>;
  if (!count(l.keys) || !count(l.tombstones) || !count(l.bytes)) return undefined;
  if (typeof l.hintsFor !== 'object' || l.hintsFor === null) return undefined;
  const entries = Object.entries(l.hintsFor);
  if (entries.length > MAX_HINT_TARGETS || !entries.every(([, n]) => count(n))) return undefined;
  // fromEntries: a member named `__proto__` stays an own property.
  const hintsFor = Object.fromEntries(entries) as Record<string, number>;
  const transfer = l.transfer === null ? null : readTransfer(l.transfer);
  if (transfer === undefined) return undefined;
  return { keys: l.keys, tombstones: l.tombstones, bytes: l.bytes, hintsFor, transfer };
}

function readTransfer(raw: unknown): TransferView | undefined {
  const t = transferSchema.safeParse(raw);
  return t.success ? t.data : undefined;
}
