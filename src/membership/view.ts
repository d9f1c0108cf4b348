// The node's view of the cluster as the admin API and CLUSTER show it (admin/ schema ClusterInfo).

import type { ClusterInfo, NodeStatusView, TransferView } from '../admin/index.ts';
import type { MemberView } from './manager.ts';
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
  };
}
