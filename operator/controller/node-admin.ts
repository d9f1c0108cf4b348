// HTTP client of the kvstore node admin API (decommission, cluster view) on each pod's HTTP port.

import { z } from 'zod';

/**
 * How the operator reaches a pod's HTTP port. Placeholders: {pod}, {headless}, {namespace},
 * {cluster}, {httpPort}, {clusterDomain}. In a cluster the default resolves through the headless
 * Service. Outside one (an operator run locally, or the tests, whose kwok pods run no container)
 * set --pod-url-template / KVSTORE_OPERATOR_POD_URL_TEMPLATE, e.g.
 * `http://127.0.0.1:18080/{namespace}/{pod}` for a stand-in that serves the admin endpoints.
 */
export const DEFAULT_POD_URL_TEMPLATE =
  'http://{pod}.{headless}.{namespace}.svc.{clusterDomain}:{httpPort}';

export interface PodAddress {
  readonly pod: string;
  readonly headless: string;
  readonly namespace: string;
  readonly cluster: string;
  readonly httpPort: number;
  readonly clusterDomain: string;
}

/** The base URL of a pod's HTTP port (no trailing slash). */
export function podUrl(template: string, a: PodAddress): string {
  const vars: Record<string, string> = { ...a, httpPort: String(a.httpPort) };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m).replace(/\/+$/, '');
}

const transferSchema = z
  .object({
    scanned: z.number().optional(),
    sent: z.number().optional(),
    done: z.boolean().optional(),
  })
  .loose()
  .nullable()
  .optional();

const decommissionSchema = z.object({
  status: z.enum(['active', 'decommissioning', 'decommissioned']),
  transfer: transferSchema,
});
export type DecommissionView = z.output<typeof decommissionSchema>;

const clusterSchema = z
  .object({
    node: z.string().optional(),
    status: z.string().optional(),
    ring: z.object({ moving: z.boolean() }).loose(),
    members: z.array(z.object({ name: z.string(), state: z.string() }).loose()),
  })
  .loose();
export type ClusterView = z.output<typeof clusterSchema>;

export type PostResult =
  | { readonly accepted: true }
  | { readonly accepted: false; readonly error: string };

export interface NodeAdmin {
  /** GET /admin/cluster. Rejects when the pod does not answer. */
  cluster(a: PodAddress): Promise<ClusterView>;
  /** GET /admin/decommission. */
  decommissionStatus(a: PodAddress): Promise<DecommissionView>;
  /** POST /admin/decommission: accepted (202), or refused with the node's reason (409). */
  decommission(a: PodAddress): Promise<PostResult>;
}

async function call(
  url: string,
  method: string,
  timeoutMs: number,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body };
}

function expectOk(path: string, r: { status: number; body: unknown }): unknown {
  if (r.status !== 200) throw new Error(`node-admin: ${path} answered ${r.status}`);
  return r.body;
}

export function createNodeAdmin(template: string, timeoutMs: number): NodeAdmin {
  const url = (a: PodAddress, path: string) => `${podUrl(template, a)}${path}`;
  return {
    async cluster(a) {
      const r = await call(url(a, '/admin/cluster'), 'GET', timeoutMs);
      return clusterSchema.parse(expectOk('/admin/cluster', r));
    },
    async decommissionStatus(a) {
      const r = await call(url(a, '/admin/decommission'), 'GET', timeoutMs);
      return decommissionSchema.parse(expectOk('/admin/decommission', r));
    },
    async decommission(a) {
      const r = await call(url(a, '/admin/decommission'), 'POST', timeoutMs);
      if (r.status === 202 || r.status === 200) return { accepted: true };
      const error = (r.body as { error?: unknown } | null)?.error;
      if (r.status === 409) return { accepted: false, error: String(error ?? 'refused') };
      throw new Error(`node-admin: POST /admin/decommission answered ${r.status}`);
    },
  };
}
