// The headless Service (peer discovery, stable pod DNS) and the client Service of a KVCluster.

import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import { applyOwned, type ControllerContext } from './context.ts';
import { type Cluster, namesOf, ownedMeta, selectorLabels } from './names.ts';

function ports(c: Cluster, which: readonly ('client' | 'http' | 'peer')[]): V1ServicePort[] {
  return which.map((name) => ({
    name,
    port: c.spec.ports[name],
    targetPort: name,
    protocol: 'TCP',
  }));
}

/**
 * Headless: one A record per pod, ready or not (`publishNotReadyAddresses`), because nodes find
 * their peers through it before they are ready; also the StatefulSet's serviceName.
 */
export function buildHeadlessService(c: Cluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(c, namesOf(c.name).headless, 'headless'),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(c.name),
      ports: ports(c, ['client', 'http', 'peer']),
    },
  };
}

/** The address clients use: ready pods only, client and HTTP ports. */
export function buildClientService(c: Cluster): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(c, namesOf(c.name).client, 'client'),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(c.name),
      ports: ports(c, ['client', 'http']),
    },
  };
}

/** Applies both Services. */
export async function ensureServices(ctx: ControllerContext, c: Cluster): Promise<void> {
  await applyOwned(ctx, c.uid, buildHeadlessService(c));
  await applyOwned(ctx, c.uid, buildClientService(c));
}
