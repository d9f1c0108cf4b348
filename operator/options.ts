// Operator options: one zod schema, defaults, --flags and KVSTORE_OPERATOR_* environment variables.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  defaultsOf,
  envNameWith,
  flagName,
  formatHelp,
  parseOptions,
} from '../src/config/index.ts';
import { DEFAULT_POD_URL_TEMPLATE } from './controller/index.ts';
import type { BackoffOptions } from './runtime/index.ts';

const bool = z.union([z.boolean(), z.stringbool()]);
const ms = z.coerce.number().int().positive();

/**
 * Every option: its schema, `.default()` (overridden by `--kebab-name value` or
 * `KVSTORE_OPERATOR_UPPER_SNAKE`) and `.describe()` (its line in --help).
 */
const options = {
  /** Kubeconfig file; empty uses $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig: z
    .string()
    .default('')
    .describe('kubeconfig file (empty: $KUBECONFIG, ~/.kube/config, in-cluster)'),
  /** Watch KVClusters in this namespace only; empty watches all namespaces. */
  namespace: z.string().default('').describe('watch this namespace only (empty: all)'),
  /** Campaign for the leader Lease before reconciling (run several replicas safely). */
  leaderElect: bool.default(true).describe('campaign for the leader Lease before reconciling'),
  leaseName: z.string().min(1).default('kvstore-operator').describe('leader Lease name'),
  /** Namespace of the Lease; empty: $POD_NAMESPACE, the in-cluster namespace, or kvstore-system. */
  leaseNamespace: z
    .string()
    .default('')
    .describe('leader Lease namespace (empty: $POD_NAMESPACE, in-cluster, kvstore-system)'),
  /** Identity in the Lease; empty: <hostname>-<pid>. */
  identity: z.string().default('').describe('identity in the Lease (empty: <hostname>-<pid>)'),
  leaseDurationMs: ms
    .min(1000)
    .default(15_000)
    .describe('a leader claim lasts this long without renewal'),
  renewDeadlineMs: ms
    .default(10_000)
    .describe('a leader that cannot renew for this long stops leading'),
  retryPeriodMs: ms.default(2_000).describe('time between Lease attempts'),
  /** Address and port of /metrics, /healthz and /readyz (0 picks a free port, logged at start). */
  httpHost: z.string().default('0.0.0.0').describe('address of /metrics /healthz /readyz'),
  httpPort: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(8080)
    .describe('port of /metrics /healthz /readyz (0: any free port)'),
  /** How the operator reaches a pod's HTTP port; see operator/controller/node-admin.ts. */
  podUrlTemplate: z
    .string()
    .includes('{pod}')
    .default(DEFAULT_POD_URL_TEMPLATE)
    .describe(
      "base URL of a pod's HTTP port ({pod} {headless} {namespace} {cluster} {httpPort} {clusterDomain})",
    ),
  /** Timeout of one call to a node's admin API. */
  adminTimeoutMs: ms.default(3_000).describe('timeout of one node admin call'),
  /** Cluster DNS domain, for the nodes' discovery name and the default pod URL. */
  clusterDomain: z.string().min(1).default('cluster.local').describe('cluster DNS domain'),
  /** Reconciles running at once (never two for one KVCluster). */
  workers: z.coerce.number().int().min(1).max(64).default(2).describe('reconciles at once'),
  /** Requeue delay while a change is in progress. */
  pollMs: ms.default(2_000).describe('requeue delay while a change is in progress'),
  /** Requeue delay of a settled KVCluster. */
  resyncMs: ms.default(30_000).describe('requeue delay of a settled KVCluster'),
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('fatal|error|warn|info|debug|trace|silent'),
};

export const optionsSchema = z.object(options);

/**
 * Retry delays of failed reconciles and of informer restarts: 200 ms, doubling up to a minute,
 * plus up to 20% at random so KVClusters that failed together do not retry in step.
 */
export const RETRY_BACKOFF: BackoffOptions = { baseMs: 200, maxMs: 60_000, jitter: 0.2 };

/** The defaults, as --help shows them and loading starts from. */
export const DEFAULTS = defaultsOf(options);

export type Options = z.output<typeof optionsSchema>;

export { flagName };

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
  return formatHelp({
    intro: [
      'Usage: kvstore-operator [options]',
      '',
      'Reconciles KVClusters (kvstore.dev/v1alpha1). Every option is also read from the',
      'environment variable beside it; flags win.',
    ],
    shape: options,
    envPrefix: 'KVSTORE_OPERATOR',
    flagWidth: 24,
    envWidth: 37,
  });
}
