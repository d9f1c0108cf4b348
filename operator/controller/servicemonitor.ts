// The prometheus-operator ServiceMonitor, only when its CRD is installed and the spec asks for it.

import type { KubernetesObject } from '@kubernetes/client-node';
import { applyOwned, type ControllerContext, deleteIfOwned } from './context.ts';
import { type Cluster, labelsOf, namesOf, ownedMeta, selectorLabels } from './names.ts';

export const SERVICE_MONITOR_API = 'monitoring.coreos.com/v1';
export const SERVICE_MONITOR_KIND = 'ServiceMonitor';

/** Scrapes the HTTP port of every pod through the headless Service. */
export function buildServiceMonitor(c: Cluster): KubernetesObject & { spec: unknown } {
  const sm = c.spec.metrics.serviceMonitor;
  const meta = ownedMeta(c, namesOf(c.name).serviceMonitor, 'metrics');
  return {
    apiVersion: SERVICE_MONITOR_API,
    kind: SERVICE_MONITOR_KIND,
    metadata: { ...meta, labels: { ...meta.labels, ...sm.labels } },
    spec: {
      // job="kvstore" (the Service's app.kubernetes.io/name), as monitoring/ rules expect.
      jobLabel: 'app.kubernetes.io/name',
      selector: {
        matchLabels: { ...selectorLabels(c.name), 'app.kubernetes.io/component': 'headless' },
      },
      namespaceSelector: { matchNames: [c.namespace] },
      endpoints: [{ port: 'http', path: '/metrics', interval: sm.interval }],
      podTargetLabels: Object.keys(labelsOf(c.name, 'node')).filter((k) => k.startsWith('app.')),
    },
  };
}

/**
 * Applies the ServiceMonitor when enabled and served; deletes ours when disabled. Returns whether
 * one is wanted but cannot be made (the CRD is missing), for status.
 */
export async function ensureServiceMonitor(ctx: ControllerContext, c: Cluster): Promise<boolean> {
  const wanted = c.spec.metrics.enabled && c.spec.metrics.serviceMonitor.enabled;
  const served = await ctx.kube.serves(SERVICE_MONITOR_API, SERVICE_MONITOR_KIND);
  if (!served) return wanted;
  if (wanted) {
    await applyOwned(ctx, c.uid, buildServiceMonitor(c));
  } else {
    const name = namesOf(c.name).serviceMonitor;
    const ref = { apiVersion: SERVICE_MONITOR_API, kind: SERVICE_MONITOR_KIND };
    await deleteIfOwned(ctx, c.uid, { ...ref, namespace: c.namespace, name });
  }
  return false;
}
