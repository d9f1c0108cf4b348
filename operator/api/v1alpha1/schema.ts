// KVCluster v1alpha1: the one zod schema of spec and status; the CRD and the operator both use it.

import { z } from 'zod';
import { type Config, configSchema, flagName } from '../../../src/config/index.ts';

export const GROUP = 'kvstore.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'KVCluster';
export const PLURAL = 'kvclusters';
export const SINGULAR = 'kvcluster';
export const SHORT_NAMES = ['kvc'];

/** Kubernetes resource quantity (the apiserver's own pattern; no lookahead). */
export const QUANTITY_PATTERN =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

/**
 * A storage size: a quantity above zero, in bytes or with a binary, decimal or exponent suffix.
 * QUANTITY_PATTERN also admits `0` and `-1Gi`, which the StatefulSet refuses ("must be greater
 * than zero"): refused here, before any claim is made from it.
 */
export const POSITIVE_SIZE_PATTERN =
  /^\+?(([0-9]*[1-9][0-9]*(\.[0-9]*)?)|([0-9]*\.[0-9]*[1-9][0-9]*))(([KMGTPE]i)|[kMGTPE]|([eE]\+?[0-9]+))?$/;

/** A quantity as Kubernetes accepts it: an integer or a string like `500m` or `1Gi`. */
const quantity = z
  .union([z.int(), z.string().regex(QUANTITY_PATTERN)])
  .meta({ 'x-kubernetes-int-or-string': true });

/** A Kubernetes object kept as is (affinity, tolerations...): the apiserver validates it in the StatefulSet. */
const kubeObject = z
  .record(z.string(), z.unknown())
  .meta({ 'x-kubernetes-preserve-unknown-fields': true });

const port = (def: number, what: string) =>
  z.int().min(1).max(65535).default(def).describe(`${what} port of every node.`);

/** A validation rule kept once: CEL for the apiserver, `check` for the operator (absent for transition rules). */
export interface Rule<T> {
  readonly rule: string;
  readonly message: string;
  readonly check?: (value: T) => boolean;
}

/** Attaches rules as `x-kubernetes-validations` and as zod refinements. */
function withRules<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  const cel = rules.map(({ rule, message }) => ({ rule, message }));
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (r.check && !r.check(value)) ctx.addIssue({ code: 'custom', message: r.message });
    }
  });
  return refined.meta({ 'x-kubernetes-validations': cel }) as S;
}

const portsSchema = withRules(
  z
    .object({
      client: port(8081, 'Client (seed text protocol and RESP)'),
      http: port(9090, 'HTTP (/metrics, /healthz, /readyz, admin)'),
      peer: port(7946, 'Node-to-node'),
    })
    .describe('Ports of the kvstore nodes.'),
  [
    {
      rule: 'self.client != self.http && self.client != self.peer && self.http != self.peer',
      message: 'ports.client, ports.http and ports.peer must differ',
      check: (p) => new Set([p.client, p.http, p.peer]).size === 3,
    },
    {
      // Nodes find each other by the headless Service's addresses and dial each at their own
      // peer port: rolled one pod at a time, the first new pod was cut off from every other
      // (it dialled them at the new port, they it at the old) and the rollout held for good.
      rule: 'self.peer == oldSelf.peer',
      message:
        'ports.peer is immutable (each node dials its peers at its own peer port, so a rolling change cuts the cluster in two)',
    },
  ],
);

/** A key of a Secret in the KVCluster's namespace. */
const secretKeyRef = z
  .object({
    name: z.string().min(1).describe('Secret name.'),
    key: z.string().min(1).describe('Key in the Secret.'),
  })
  .describe('A key of a Secret in the same namespace.');

const authSchema = z
  .object({
    passwordSecret: secretKeyRef
      .optional()
      .describe('Password clients must send with AUTH (KV_PASSWORD); none when absent.'),
    clusterSecret: secretKeyRef
      .optional()
      .describe(
        'Secret every node proves on peer connections, and the operator on admin calls (KV_CLUSTER_SECRET). Absent: the operator makes one, Secret <name>-cluster-secret (key secret).',
      ),
  })
  .describe('Client password and cluster secret, from Secrets.');

const tlsSchema = z
  .object({
    clientSecretName: z
      .string()
      .min(1)
      .optional()
      .describe('kubernetes.io/tls Secret (tls.crt, tls.key): the client port serves TLS.'),
    peerSecretName: z
      .string()
      .min(1)
      .optional()
      .describe('Secret with tls.crt, tls.key and ca.crt: the peer port uses mutual TLS.'),
  })
  .describe('TLS for the client and peer ports, from Secrets.');

const storageSchema = withRules(
  z
    .object({
      size: z
        .string()
        .regex(POSITIVE_SIZE_PATTERN)
        .default('1Gi')
        .describe(
          'Size of each node PersistentVolumeClaim, above zero (e.g. 10Gi). May grow: each ' +
            'claim is asked for the new size (its StorageClass must allow volume expansion) and ' +
            'no pod restarts; a volume cannot shrink, so a smaller size is held (Degraded).',
        ),
      // A DNS-1123 subdomain, as the claims' field takes: immutable, a name the StatefulSet
      // refused held the KVCluster for good (only deleting it could change the name).
      storageClassName: z
        .string()
        .regex(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/)
        .max(253)
        .optional()
        .describe('StorageClass of the claims; the cluster default when absent. Immutable.'),
      retainOnScaleDown: z
        .boolean()
        .default(false)
        .describe(
          'Keep the claim of a pod removed by scale-down. Its node was decommissioned, so the ' +
            'default deletes it: a retained claim would make a re-added pod start decommissioned.',
        ),
      retainOnDelete: z
        .boolean()
        .default(true)
        .describe('Keep the claims when the KVCluster is deleted.'),
    })
    .describe('Persistent storage of each node.'),
  [
    {
      rule:
        'has(self.storageClassName) == has(oldSelf.storageClassName) && ' +
        '(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)',
      message: 'storage.storageClassName is immutable',
    },
  ],
);

const resourcesSchema = z
  .object({
    limits: z.record(z.string(), quantity).optional().describe('Most each node may use.'),
    requests: z.record(z.string(), quantity).optional().describe('What each node is given.'),
  })
  .describe('Compute resources of the kvstore container.');

const metricsSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Annotate pods for Prometheus scraping of the HTTP port /metrics.'),
    serviceMonitor: z
      .object({
        enabled: z
          .boolean()
          .default(false)
          .describe('Create a ServiceMonitor (only when its CRD is installed).'),
        interval: z.string().default('30s').describe('Scrape interval.'),
        labels: z
          .record(z.string(), z.string())
          .optional()
          .describe('Extra labels, e.g. the one your Prometheus selects ServiceMonitors by.'),
      })
      .prefault({})
      .describe('A prometheus-operator ServiceMonitor.'),
  })
  .describe('Metrics of the kvstore nodes.');

const pdbSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Create a PodDisruptionBudget.'),
    maxUnavailable: z
      .int()
      .min(0)
      .default(1)
      .describe('Pods that voluntary disruptions may take down at once.'),
  })
  .describe('PodDisruptionBudget of the nodes.');

const claimName = z
  .string()
  .regex(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/)
  .max(253)
  .describe('A PersistentVolumeClaim in the KVCluster namespace, mounted at /backups.');

const backupSchema = z
  .object({
    schedule: z
      .string()
      .regex(/^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|(\S+\s+){4}\S+)$/)
      .describe('Cron schedule of the backups, in CronJob syntax (0 3 * * * is daily at 03:00).'),
    claimName,
    suspend: z.boolean().default(false).describe('Suspend the schedule (runs already made stay).'),
  })
  .describe(
    'Scheduled backups (kvctl backup, docs/backup.md) into /backups/<name>-<UTC time> on the claim.',
  );

const restoreFromSchema = z
  .object({
    claimName,
    path: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[^\0]*$/)
      .describe(
        'The backup directory on the claim, relative to its root (e.g. kv-20261203T030000Z).',
      ),
  })
  .describe(
    'Start from a backup: once every pod is ready the operator runs kvctl restore from it, once.',
  );

/**
 * The apiserver refuses quorums that do not overlap unless the spec accepts stale reads. No
 * `check`: a KVCluster stored before this rule is not made Invalid by the operator (its pods run
 * on); it shows the StaleReads condition until it sets allowStaleReads or raises a quorum.
 */
export const STALE_READS_RULE: Rule<{ allowStaleReads: boolean }> = {
  rule: 'self.readQuorum + self.writeQuorum > self.replicationFactor || self.allowStaleReads',
  message:
    'readQuorum + writeQuorum must exceed replicationFactor, or a read may miss an acknowledged write: raise readQuorum or writeQuorum, or set allowStaleReads: true to accept stale reads',
};

const SPEC_RULES: readonly Rule<{
  replicas: number;
  replicationFactor: number;
  readQuorum: number;
  writeQuorum: number;
  allowStaleReads: boolean;
}>[] = [
  {
    rule: 'self.readQuorum <= self.replicationFactor',
    message: 'readQuorum must not exceed replicationFactor',
    check: (s) => s.readQuorum <= s.replicationFactor,
  },
  {
    rule: 'self.writeQuorum <= self.replicationFactor',
    message: 'writeQuorum must not exceed replicationFactor',
    check: (s) => s.writeQuorum <= s.replicationFactor,
  },
  STALE_READS_RULE,
  {
    // The node would clamp it to the member count: fewer copies than the spec says, and a
    // scale-down could never go below it. `kubectl scale` is refused too (the scale subresource
    // writes spec.replicas through the same validation).
    rule: 'self.replicationFactor <= self.replicas',
    message:
      'replicationFactor must not exceed replicas (each key is kept on replicationFactor nodes): lower replicationFactor, readQuorum and writeQuorum first',
    check: (s) => s.replicationFactor <= s.replicas,
  },
];

/**
 * The node settings a KVCluster may set (`spec.settings`), by the node's own option names: its
 * limits and tuning. The operator sets the others itself (addresses, ports, data directory,
 * discovery, replication factor and quorums, log level, secrets, TLS, and the shutdown timeout,
 * which the pods' 30 s grace period bounds); `walTruncateCorrupt` is a one-off recovery step
 * taken by hand (docs/operations.md), not a setting to keep.
 */
export const NODE_SETTINGS = [
  'minFreeDiskBytes',
  'storageStallTimeoutMs',
  'walSegmentBytes',
  'maxKeyBytes',
  'maxValueBytes',
  'maxLineBytes',
  'maxScanKeys',
  'maxConnections',
  'maxHttpConnections',
  'clientIdleTimeoutMs',
  'maxPipeline',
  'maxInflightWriteBytes',
  'maxClientBufferBytes',
  'maxClientOutputBytes',
  'maxMultiReadBytes',
  'resolveIntervalMs',
  'unlistedGraceMs',
  'readRepairChance',
  'readSpeculateMs',
  'peerTimeoutMs',
  'maxClockOffsetMs',
  'maxPeerConnections',
  'peerHandshakeTimeoutMs',
  'maxPeerBufferBytes',
  'probeIntervalMs',
  'probeFailures',
  'tombstoneGraceMs',
  'gcIntervalMs',
  'antiEntropyIntervalMs',
  'expirySweepIntervalMs',
  'expirySweepBatch',
  'maxHints',
  'maxHintBytes',
  'hintIntervalMs',
  'rebalanceRateBytes',
] as const satisfies readonly (keyof Config)[];
export type NodeSetting = (typeof NODE_SETTINGS)[number];

/** The node's own schema of `key` (its bounds, so the two cannot drift), without its default. */
function nodeOption(key: NodeSetting) {
  const option = configSchema.shape[key];
  return option
    .unwrap()
    .optional()
    .describe(
      `${option.description ?? key}. Node flag ${flagName(key)}; the node's default when absent.`,
    );
}

const settingsSchema = z
  .object(
    Object.fromEntries(NODE_SETTINGS.map((k) => [k, nodeOption(k)])) as {
      [K in NodeSetting]: ReturnType<typeof nodeOption>;
    },
  )
  .strict()
  .describe(
    "Node settings beyond the fields above, by the node's option names (kvstore --help): its limits and tuning. Changing one rolls the pods.",
  );

export const kvClusterSpecSchema = withRules(
  z
    .object({
      replicas: z.int().min(1).max(1000).default(3).describe('Number of kvstore nodes (pods).'),
      image: z.string().min(1).default('kvstore:0.1.0').describe('kvstore container image.'),
      imagePullPolicy: z
        .enum(['Always', 'IfNotPresent', 'Never'])
        .default('IfNotPresent')
        .describe('Image pull policy of the kvstore container.'),
      replicationFactor: z
        .int()
        .min(1)
        .max(15)
        .default(3)
        .describe('Replicas per key (at most replicas).'),
      readQuorum: z.int().min(1).max(15).default(2).describe('Replicas that must answer a read.'),
      writeQuorum: z
        .int()
        .min(1)
        .max(15)
        .default(2)
        .describe('Replicas that must make a write durable before OK.'),
      allowStaleReads: z
        .boolean()
        .default(false)
        .describe(
          'Accept readQuorum + writeQuorum <= replicationFactor: faster, more available reads and writes, but a read may miss an acknowledged write until replicas catch up. Refused otherwise; when set, the StaleReads condition and a Warning Event say so.',
        ),
      logLevel: z
        .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
        .default('info')
        .describe('Log level of the nodes.'),
      settings: settingsSchema.optional(),
      resources: resourcesSchema.optional(),
      storage: storageSchema.prefault({}),
      ports: portsSchema.prefault({}),
      metrics: metricsSchema.prefault({}),
      podDisruptionBudget: pdbSchema.prefault({}),
      auth: authSchema.optional(),
      tls: tlsSchema.optional(),
      backup: backupSchema.optional(),
      restoreFrom: restoreFromSchema.optional(),
      affinity: kubeObject.optional().describe('Pod affinity (core/v1 Affinity).'),
      tolerations: z.array(kubeObject).optional().describe('Pod tolerations (core/v1).'),
      nodeSelector: z.record(z.string(), z.string()).optional().describe('Pod node selector.'),
      topologySpreadConstraints: z
        .array(kubeObject)
        .optional()
        .describe('Pod topology spread constraints (core/v1).'),
      paused: z
        .boolean()
        .default(false)
        .describe('Stop reconciling owned objects (status is still reported).'),
    })
    .describe('Desired state of a kvstore cluster.'),
  SPEC_RULES,
);

export type KVClusterSpec = z.output<typeof kvClusterSpecSchema>;
export type KVClusterSpecInput = z.input<typeof kvClusterSpecSchema>;

export const PHASES = [
  'Pending',
  'Available',
  'Scaling',
  'Upgrading',
  'Rebalancing',
  'Blocked',
  'Degraded',
  'Paused',
  'Invalid',
] as const;
export type Phase = (typeof PHASES)[number];

/** StaleReads is present only while reads may miss acknowledged writes (quorums that do not overlap). */
export const CONDITION_TYPES = ['Available', 'Progressing', 'Degraded', 'StaleReads'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

const conditionSchema = z.object({
  type: z.enum(CONDITION_TYPES),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().min(1).describe('CamelCase reason.'),
  message: z.string().describe('Why, for people.'),
  lastTransitionTime: z.string().describe('When status last changed (RFC 3339).'),
  observedGeneration: z.int().min(0).optional(),
});
export type Condition = z.output<typeof conditionSchema>;

const memberSchema = z.object({
  name: z.string().describe('Pod (node) name.'),
  ready: z.boolean().describe('The pod is Ready.'),
  state: z
    .string()
    .describe('What the node reports: active, decommissioning, decommissioned, or unreachable.'),
  refusing: z
    .array(z.string())
    .optional()
    .describe(
      'What the node says it refuses now and why, one line each (its disk full or stalled, its clock); absent when nothing.',
    ),
});
export type Member = z.output<typeof memberSchema>;

const decommissionSchema = z
  .object({
    member: z.string().describe('The node being decommissioned.'),
    state: z.string().describe('Its decommission state.'),
    scanned: z.int().min(0).describe('Records scanned so far.'),
    sent: z.int().min(0).describe('Records handed to other nodes so far.'),
    total: z.int().min(0).optional().describe('Records to scan in all (the node counts them).'),
    percent: z.number().min(0).max(100).optional().describe('scanned / total, in percent.'),
    etaSeconds: z.int().min(0).optional().describe('Seconds left at the current rate.'),
  })
  .describe('Progress of the scale-down step in progress.');

const runSchema = z
  .object({
    phase: z
      .string()
      .describe('Scheduled, Pending, Running, Succeeded or Failed (the newest run).'),
    pod: z.string().describe('The pod of the newest run.'),
    startTime: z.string().optional(),
    completionTime: z.string().optional(),
    lastScheduleTime: z.string().optional(),
    lastSuccessfulTime: z.string().optional(),
    path: z.string().optional().describe('Where the newest backup went on the claim.'),
    records: z.int().min(0).optional(),
    keys: z.int().min(0).optional(),
    tombstones: z.int().min(0).optional(),
    bytes: z.int().min(0).optional(),
    error: z.string().optional(),
  })
  .describe('A backup or restore run: what kvctl reported in its termination message.');
const rebalanceSchema = z
  .object({
    nodes: z.int().min(0).describe('Nodes streaming data to new owners.'),
    scanned: z.int().min(0).describe('Records they scanned so far.'),
    total: z.int().min(0).describe('Records they scan in all.'),
    percent: z.number().min(0).max(100).describe('scanned / total, in percent.'),
    etaSeconds: z.int().min(0).optional().describe('Seconds left: the slowest node at its rate.'),
  })
  .describe('Progress of data moving between rings (join, leave, replaced member).');

export const kvClusterStatusSchema = z
  .object({
    observedGeneration: z.int().min(0).optional(),
    phase: z.enum(PHASES).optional(),
    replicas: z.int().min(0).optional().describe('Pods of the StatefulSet.'),
    readyReplicas: z.int().min(0).optional(),
    updatedReplicas: z.int().min(0).optional().describe('Pods at the current pod template.'),
    selector: z.string().optional().describe('Label selector of the pods (scale subresource).'),
    members: z
      .array(memberSchema)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
    conditions: z
      .array(conditionSchema)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
    decommission: decommissionSchema.optional(),
    rebalancing: z.boolean().optional().describe('A node reports data moving between rings.'),
    backup: runSchema.optional().describe('spec.backup: the newest backup run.'),
    restore: runSchema.optional().describe('spec.restoreFrom: the restore run.'),
    rebalance: rebalanceSchema.optional(),
    progress: z
      .string()
      .optional()
      .describe(
        'The transfer in progress in one line (what, percent and time left), else the first pod that cannot start and why.',
      ),
  })
  .describe('Observed state of a kvstore cluster.');

export type KVClusterStatus = z.output<typeof kvClusterStatusSchema>;

/** Longest KVCluster name: the StatefulSet's `controller-revision-hash` label adds 11 characters. */
export const MAX_NAME_LENGTH = 52;
export const NAME_PATTERN = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Rules on the whole object (names become Service and pod names). */
export const OBJECT_RULES: readonly Rule<{ name: string }>[] = [
  {
    rule: `self.metadata.name.size() <= ${MAX_NAME_LENGTH}`,
    message: `metadata.name must be at most ${MAX_NAME_LENGTH} characters`,
    check: (m) => m.name.length <= MAX_NAME_LENGTH,
  },
  {
    rule: `self.metadata.name.matches('${NAME_PATTERN.source}')`,
    message:
      'metadata.name must be a DNS-1035 label (lower case letters, digits, -; starts with a letter)',
    check: (m) => NAME_PATTERN.test(m.name),
  },
];

export type ParseResult =
  | { readonly ok: true; readonly spec: KVClusterSpec }
  | { readonly ok: false; readonly message: string };

/** Validates a KVCluster's name and spec (defaults filled in); a readable message when invalid. */
export function parseKVCluster(name: string, spec: unknown): ParseResult {
  const bad = OBJECT_RULES.find((r) => r.check && !r.check({ name }));
  if (bad) return { ok: false, message: bad.message };
  const parsed = kvClusterSpecSchema.safeParse(spec ?? {});
  if (!parsed.success) {
    const message = parsed.error.issues
      .map((i) => `spec${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`)
      .join('; ');
    return { ok: false, message };
  }
  const refused = nodeConfigIssues(parsed.data);
  if (refused !== null) return { ok: false, message: refused };
  return { ok: true, spec: parsed.data };
}

/**
 * What the node would refuse at start with this spec's settings (the rules between options, such
 * as a line long enough for the largest key and value): checked here with the node's own schema,
 * so the KVCluster is Invalid instead of its pods crash-looping. Null when the node takes them.
 */
function nodeConfigIssues(spec: KVClusterSpec): string | null {
  const { replicationFactor, readQuorum, writeQuorum } = spec;
  const checked = configSchema.safeParse({
    ...spec.settings,
    replicationFactor,
    readQuorum,
    writeQuorum,
  });
  if (checked.success) return null;
  return checked.error.issues
    .map((i) => {
      const key = String(i.path[0] ?? '');
      const at = (NODE_SETTINGS as readonly string[]).includes(key) ? `settings.${key}` : key;
      return `spec.${at}: ${i.message}`;
    })
    .join('; ');
}
