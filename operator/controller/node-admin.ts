// HTTP client of the kvstore node admin API (decommission, cluster view) on each pod's HTTP port.

import type { CoreV1Api } from '@kubernetes/client-node';
import { z } from 'zod';
import {
  ADMIN_PATHS,
  adminCall,
  adminErrorOf,
  clusterInfoSchema,
  decommissionStateSchema,
  memberInfoSchema,
  transferSchema,
} from '../../src/admin/index.ts';

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
  /**
   * The KVCluster's cluster secret (spec.auth.clusterSecret): the nodes then refuse admin calls
   * that do not prove it. Absent or null: calls go without proof.
   */
  readonly clusterSecret?: { readonly name: string; readonly key: string } | null;
}

/** Reads a key of a Secret in `namespace`; rejects when it cannot (missing, forbidden). */
export type SecretReader = (
  namespace: string,
  ref: { readonly name: string; readonly key: string },
) => Promise<string>;

/** The base URL of a pod's HTTP port (no trailing slash). */
export function podUrl(template: string, a: PodAddress): string {
  const vars: Record<string, string> = {
    pod: a.pod,
    headless: a.headless,
    namespace: a.namespace,
    cluster: a.cluster,
    httpPort: String(a.httpPort),
    clusterDomain: a.clusterDomain,
  };
  return template
    .replace(/\{(\w+)\}/g, (m, k: string) => (Object.hasOwn(vars, k) ? vars[k]! : m))
    .replace(/\/+$/, '');
}

// The operator reads the parts of the node's answers (src/admin schema) it decides from, each
// checked by that schema's own field: the rest of an answer may change without failing it.

/** How far a node's stream came: counts, and the total, percent and ETA newer nodes add. */
const progressView = transferSchema.pick({
  scanned: true,
  sent: true,
  done: true,
  total: true,
  percent: true,
  etaSeconds: true,
  waitingFor: true,
});

/** What a decommission state tells the operator: the status and how far the hand-off came. */
const decommissionSchema = decommissionStateSchema.pick({ status: true }).extend({
  transfer: progressView.nullable(),
});
export type DecommissionView = z.output<typeof decommissionSchema>;
/** A stream's progress as the operator reads it; `kind` only in cluster views. */
const streamView = progressView.extend({ kind: transferSchema.shape.kind });
export type ProgressView = z.output<typeof progressView>;
export type TransferView = z.output<typeof streamView>;

/**
 * What a node's cluster view tells the operator: its status, moving data, members' states, and
 * what it and its members refuse (absent from nodes of older versions).
 */
const clusterSchema = clusterInfoSchema
  .pick({ status: true, refusing: true, notWritable: true })
  .extend({
    ring: clusterInfoSchema.shape.ring.pick({ moving: true }),
    members: z.array(
      memberInfoSchema.pick({
        name: true,
        state: true,
        storageStalled: true,
        clockRefusing: true,
        storageNotWritable: true,
      }),
    ),
    /** The node's own running or last stream (absent from a node of an older version). */
    transfer: streamView.nullable().optional(),
  });
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
  /** POST /admin/recommission: accepted (200), or refused with the node's reason (409). */
  recommission(a: PodAddress): Promise<PostResult>;
}

function expectOk(path: string, r: { status: number; body: unknown }): unknown {
  if (r.status !== 200) throw new Error(`node-admin: ${path} answered ${r.status}`);
  return r.body;
}

/**
 * The admin client. `readSecret` reads the cluster secret of pods whose address names one; each
 * call then carries an HMAC proof of it (the secret itself is never sent).
 */
export function createNodeAdmin(
  template: string,
  timeoutMs: number,
  readSecret: SecretReader,
): NodeAdmin {
  const send = async (a: PodAddress, path: string, method: 'GET' | 'POST') => {
    const secret = a.clusterSecret ? await readSecret(a.namespace, a.clusterSecret) : null;
    const r = await adminCall({ base: podUrl(template, a), secret, timeoutMs }, method, path);
    if (r.status === 401) {
      throw new Error(`node-admin: ${method} ${path} answered 401: the cluster secret differs`);
    }
    return r;
  };
  /** A POST answered 200/202 (accepted) or 409 (refused, with the node's reason). */
  const post = async (a: PodAddress, path: string): Promise<PostResult> => {
    const r = await send(a, path, 'POST');
    if (r.status === 202 || r.status === 200) return { accepted: true };
    if (r.status === 409) return { accepted: false, error: adminErrorOf(r.body) ?? 'refused' };
    throw new Error(`node-admin: POST ${path} answered ${r.status}`);
  };
  return {
    async cluster(a) {
      const r = await send(a, ADMIN_PATHS.cluster, 'GET');
      return clusterSchema.parse(expectOk(ADMIN_PATHS.cluster, r));
    },
    async decommissionStatus(a) {
      const r = await send(a, ADMIN_PATHS.decommission, 'GET');
      return decommissionSchema.parse(expectOk(ADMIN_PATHS.decommission, r));
    },
    decommission: (a) => post(a, ADMIN_PATHS.decommission),
    recommission: (a) => post(a, ADMIN_PATHS.recommission),
  };
}

/**
 * Reads Secret keys through the API, each kept for `ttlMs` (a rotated secret is used within
 * that). The value is used as stored: it is what the pods get in KV_CLUSTER_SECRET.
 */
export function cachedSecretReader(
  core: Pick<CoreV1Api, 'readNamespacedSecret'>,
  ttlMs = 30_000,
): SecretReader {
  const cache = new Map<string, { readonly value: string; readonly at: number }>();
  return async (namespace, ref) => {
    const id = `${namespace}/${ref.name}/${ref.key}`;
    const hit = cache.get(id);
    if (hit && Date.now() - hit.at < ttlMs) return hit.value;
    const secret = await core.readNamespacedSecret({ name: ref.name, namespace });
    const b64 = secret.data?.[ref.key];
    if (b64 === undefined) {
      throw new Error(`node-admin: Secret ${namespace}/${ref.name} has no key ${ref.key}`);
    }
    const value = Buffer.from(b64, 'base64').toString('utf8');
    cache.set(id, { value, at: Date.now() });
    return value;
  };
}
