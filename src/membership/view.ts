// The node's view of the cluster as the admin API and CLUSTER show it (admin/ schema ClusterInfo).

import type {
  ClusterInfo,
  MemberPhase,
  NodeStatusView,
  Refusal,
  TransferView,
} from '../admin/index.ts';
import type { MemberView } from './manager.ts';
import { own } from './settled.ts';
import { peerAddressOf } from './sources.ts';
import type { Topology } from './topology.ts';

export interface ClusterViewParts {
  readonly self: string;
  readonly incarnation: string;
  readonly status: NodeStatusView;
  readonly topology: Topology;
  readonly members: readonly MemberView[];
  /** This node's outbound stream, or null. */
  readonly transfer: TransferView | null;
  /** Hints this node holds. */
  readonly hints: number;
  /** Members whose list has differed from this node's for too long (MembershipCheck.differing). */
  readonly memberListsDiffer?: Readonly<Record<string, readonly string[]>>;
  /** Decommissioned members this node still lists (MembershipCheck.decommissionedListed). */
  readonly decommissionedListed?: readonly string[];
  /** What this node refuses of its clients' commands now, or null (node/refusal.ts). */
  readonly refusing?: Refusal | null;
  /** Why this node's storage refuses writes now (Storage.writeFailure), or null. */
  readonly notWritable?: string | null;
}

/** GET /admin/cluster and CLUSTER: the rings, and every member with what it last reported. */
export function clusterInfo(p: ClusterViewParts): ClusterInfo {
  const topo = p.topology;
  return {
    node: p.self,
    incarnation: p.incarnation,
    status: p.status,
    ring: {
      target: topo.target.id,
      settled: topo.settled.id,
      epoch: topo.settledRing.epoch,
      moving: topo.moving,
    },
    replicationFactor: topo.rf(topo.target),
    members: p.members.map((m) => ({
      ...memberFigures(m, p),
      name: m.name,
      address: peerAddressOf(m),
      state: m.state,
      status: m.hello?.status ?? null,
      share: topo.target.members.includes(m.name)
        ? Number(topo.target.share(m.name).toFixed(4))
        : 0,
      incarnation: m.hello?.incarnation || null,
      recorded: topo.incarnationOf(m.name) ?? null,
      ringId: m.hello?.ringId ?? null,
      rebalanced: m.hello?.rebalanced ?? null,
    })),
    transfer: p.transfer,
    hints: p.hints,
    memberListsDiffer: Object.fromEntries(
      Object.entries(p.memberListsDiffer ?? {}).map(([n, l]) => [n, [...l]]),
    ),
    decommissionedListed: [...(p.decommissionedListed ?? [])],
    refusing: p.refusing ?? null,
    notWritable: p.notWritable ?? null,
  };
}

/**
 * Where a member is in its life: joining (in the target ring, not yet in the settled one),
 * leaving (the reverse, or decommissioning), decommissioned, or normal.
 */
function phaseOf(name: string, status: string | null, topo: Topology): MemberPhase {
  if (status === 'decommissioned') return 'decommissioned';
  if (status === 'decommissioning') return 'leaving';
  const inTarget = topo.target.members.includes(name);
  const inSettled = topo.settled.members.includes(name);
  if (inTarget && !inSettled) return 'joining';
  if (!inTarget && inSettled) return 'leaving';
  return 'normal';
}

/** What status views show of a member: its phase, figures from its last hello, last contact. */
function memberFigures(m: MemberView, p: ClusterViewParts) {
  const load = m.hello?.load;
  return {
    phase: phaseOf(m.name, m.hello?.status ?? null, p.topology),
    keys: load?.keys ?? null,
    bytes: load?.bytes ?? null,
    hintsHeldFor: p.members.reduce(
      (n, o) => n + (own(o.hello?.load?.hintsFor ?? {}, m.name) ?? 0),
      0,
    ),
    lastContact: m.lastContact === null ? null : new Date(m.lastContact).toISOString(),
    transfer: load?.transfer ?? null,
    storageStalled: m.hello?.storageStalled === true,
    clockRefusing: m.hello?.clockRefusing === true,
    storageNotWritable: m.hello?.storageNotWritable === true,
  };
}
