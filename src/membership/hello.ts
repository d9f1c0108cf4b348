// Reads a peer's hello reply: checks its shape, so nothing downstream trusts a malformed one.

import { KvError } from '../errors/index.ts';
import type { HelloReply, NodeStatus } from '../replica/index.ts';
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
  return {
    name: h.name,
    incarnation: typeof h.incarnation === 'string' ? h.incarnation : '',
    status: h.status as NodeStatus,
    ringId: h.ringId,
    rebalanced: h.rebalanced as string | null,
    settled,
    hints:
      typeof h.hints === 'number' && Number.isSafeInteger(h.hints) && h.hints > 0 ? h.hints : 0,
  };
}
