// Operator options: one zod schema, defaults, --flags and KVSTORE_OPERATOR_* environment variables.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { envNameWith, flagName, parseOptions } from '../src/config/index.ts';
import { DEFAULT_POD_URL_TEMPLATE } from './controller/index.ts';
import type { BackoffOptions } from './runtime/index.ts';

const bool = z.union([z.boolean(), z.stringbool()]);
const ms = z.coerce.number().int().positive();

/** Defaults; each is overridden by `--kebab-name value` or `KVSTORE_OPERATOR_UPPER_SNAKE`. */
export const DEFAULTS = {
  /** Kubeconfig file; empty uses $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig: '',
  /** Watch KVClusters in this namespace only; empty watches all namespaces. */
  namespace: '',
  /** Campaign for the leader Lease before reconciling (run several replicas safely). */
  leaderElect: true as boolean,
  leaseName: 'kvstore-operator',
  /** Namespace of the Lease; empty: $POD_NAMESPACE, the in-cluster namespace, or kvstore-system. */
  leaseNamespace: '',
  /** Identity in the Lease; empty: <hostname>-<pid>. */
  identity: '',
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  /** Address and port of /metrics, /healthz and /readyz (0 picks a free port, logged at start). */
  httpHost: '0.0.0.0',
  httpPort: 8080,
  /** How the operator reaches a pod's HTTP port; see operator/controller/node-admin.ts. */
  podUrlTemplate: DEFAULT_POD_URL_TEMPLATE,
  /** Timeout of one call to a node's admin API. */
  adminTimeoutMs: 3_000,
  /** Cluster DNS domain, for the nodes' discovery name and the default pod URL. */
  clusterDomain: 'cluster.local',
  /** Reconciles running at once (never two for one KVCluster). */
  workers: 2,
  /** Requeue delay while a change is in progress. */
  pollMs: 2_000,
  /** Requeue delay of a settled KVCluster. */
  resyncMs: 30_000,
  logLevel: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
};

/**
 * Retry delays of failed reconciles and of informer restarts: 200 ms, doubling up to a minute,
 * plus up to 20% at random so KVClusters that failed together do not retry in step.
 */
export const RETRY_BACKOFF: BackoffOptions = { baseMs: 200, maxMs: 60_000, jitter: 0.2 };

/** One line of --help per option. */
const HELP: Record<keyof typeof DEFAULTS, string> = {
  kubeconfig: 'kubeconfig file (empty: $KUBECONFIG, ~/.kube/config, in-cluster)',
  namespace: 'watch this namespace only (empty: all)',
  leaderElect: 'campaign for the leader Lease before reconciling',
  leaseName: 'leader Lease name',
  leaseNamespace: 'leader Lease namespace (empty: $POD_NAMESPACE, in-cluster, kvstore-system)',
  identity: 'identity in the Lease (empty: <hostname>-<pid>)',
  leaseDurationMs: 'a leader claim lasts this long without renewal',
  renewDeadlineMs: 'a leader that cannot renew for this long stops leading',
  retryPeriodMs: 'time between Lease attempts',
  httpHost: 'address of /metrics /healthz /readyz',
  httpPort: 'port of /metrics /healthz /readyz (0: any free port)',
  podUrlTemplate:
    "base URL of a pod's HTTP port ({pod} {headless} {namespace} {cluster} {httpPort} {clusterDomain})",
  adminTimeoutMs: 'timeout of one node admin call',
  clusterDomain: 'cluster DNS domain',
  workers: 'reconciles at once',
  pollMs: 'requeue delay while a change is in progress',
  resyncMs: 'requeue delay of a settled KVCluster',
  logLevel: 'fatal|error|warn|info|debug|trace|silent',
};

export const optionsSchema = z.object({
  kubeconfig: z.string(),
  namespace: z.string(),
  leaderElect: bool,
  leaseName: z.string().min(1),
  leaseNamespace: z.string(),
  identity: z.string(),
  leaseDurationMs: ms.min(1000),
  renewDeadlineMs: ms,
  retryPeriodMs: ms,
  httpHost: z.string(),
  httpPort: z.coerce.number().int().min(0).max(65535),
  podUrlTemplate: z.string().includes('{pod}'),
  adminTimeoutMs: ms,
  clusterDomain: z.string().min(1),
  workers: z.coerce.number().int().min(1).max(64),
  pollMs: ms,
  resyncMs: ms,
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

export type Options = z.output<typeof optionsSchema>;

export { flagName };

const KEYS = Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[];

export function envName(key: string): string {
  return envNameWith('KVSTORE_OPERATOR', key);
}

export type LoadResult =
  | { readonly kind: 'options'; readonly options: Options }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

/** Parses argv (without node and script) over env over defaults. Never exits. */
export function loadOptions(argv: readonly string[], env: NodeJS.ProcessEnv): LoadResult {
  const r = parseOptions({
    schema: optionsSchema,
    defaults: DEFAULTS,
    envPrefix: 'KVSTORE_OPERATOR',
    module: 'config',
    argv,
    env,
  });
  if (r.kind === 'help') return { kind: 'help', text: helpText() };
  if (r.kind === 'error') return r;
  return { kind: 'options', options: withDerived(r.value, env) };
}

const IN_CLUSTER_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function inClusterNamespace(): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE, 'utf8').trim();
  } catch {
    return '';
  }
}

function withDerived(o: Options, env: NodeJS.ProcessEnv): Options {
  return {
    ...o,
    identity: o.identity || `${hostname()}-${process.pid}`,
    leaseNamespace:
      o.leaseNamespace || env.POD_NAMESPACE || inClusterNamespace() || 'kvstore-system',
  };
}

export function helpText(): string {
  const rows = KEYS.map(
    (k) =>
      `  ${`${flagName(k)} <v>`.padEnd(24)} ${envName(k).padEnd(37)} ${HELP[k]} (default ${JSON.stringify(DEFAULTS[k])})`,
  );
  return [
    'Usage: kvstore-operator [options]',
    '',
    'Reconciles KVClusters (kvstore.dev/v1alpha1). Every option is also read from the',
    'environment variable beside it; flags win.',
    '',
    ...rows,
    `  ${'--help'.padEnd(24)} print this text`,
  ].join('\n');
}
