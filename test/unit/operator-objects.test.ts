// Operator owned objects: StatefulSet, Services, ConfigMap, PDB, ServiceMonitor; pod URLs; options.

import { ApiException } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  buildClientService,
  buildClusterSecret,
  buildConfigMap,
  buildEvent,
  buildHeadlessService,
  buildPdb,
  buildServiceMonitor,
  buildStatefulSet,
  type Cluster,
  checkPeerTlsChange,
  configHash,
  configMapsOf,
  createEventRecorder,
  DEFAULT_POD_URL_TEMPLATE,
  ordinalOf,
  podUrl,
  unusedConfigMaps,
  Warnings,
} from '../../operator/controller/index.ts';
import { envName, flagName, loadOptions } from '../../operator/options.ts';
import type { Kube } from '../../operator/runtime/index.ts';

function cluster(spec: Record<string, unknown> = {}): Cluster {
  const r = parseKVCluster('kv', spec);
  if (!r.ok) throw new Error(r.message);
  return { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 3, spec: r.spec };
}

const OWNER = {
  apiVersion: 'kvstore.dev/v1alpha1',
  kind: 'KVCluster',
  name: 'kv',
  uid: 'u-1',
  controller: true,
  blockOwnerDeletion: true,
};

describe('StatefulSet', () => {
  const c = cluster({
    replicas: 5,
    image: 'kvstore:1.2',
    storage: { size: '5Gi', storageClassName: 'fast', retainOnScaleDown: true },
    resources: { limits: { cpu: 2, memory: '1Gi' } },
    tolerations: [{ key: 'k', operator: 'Exists' }],
    nodeSelector: { disk: 'ssd' },
  });
  const sts = buildStatefulSet(c, { replicas: 4, partition: 2, configHash: 'abc' });
  const pod = sts.spec!.template.spec!;
  const container = pod.containers[0]!;

  it('is owned by the KVCluster and sized and partitioned by the plan', () => {
    expect(sts.metadata?.ownerReferences).toEqual([OWNER]);
    expect(sts.spec).toMatchObject({
      replicas: 4,
      serviceName: 'kv-headless',
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
      selector: {
        matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'kv' },
      },
    });
    expect(sts.metadata?.annotations?.['kvstore.dev/template-hash']).toMatch(/^[0-9a-f]{16}$/);
  });

  it('runs the node with its config, probes, ports and data volume', () => {
    expect(container).toMatchObject({
      image: 'kvstore:1.2',
      imagePullPolicy: 'IfNotPresent',
      envFrom: [{ configMapRef: { name: 'kv-config-abc' } }],
      env: [{ name: 'KV_NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
      readinessProbe: { httpGet: { path: '/readyz', port: 'http' } },
      livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
      volumeMounts: [{ name: 'data', mountPath: '/data' }],
      resources: { limits: { cpu: 2, memory: '1Gi' } },
    });
    expect(container.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['client', 8081],
      ['http', 9090],
      ['peer', 7946],
    ]);
    expect(pod).toMatchObject({
      tolerations: [{ key: 'k', operator: 'Exists' }],
      nodeSelector: { disk: 'ssd' },
    });
    expect(sts.spec?.template.metadata?.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9090',
      'kvstore.dev/config-hash': 'abc',
    });
    expect(sts.spec?.volumeClaimTemplates?.[0]?.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'fast',
      resources: { requests: { storage: '5Gi' } },
    });
  });

  it('changes its template hash with the image or config, not with the size', () => {
    const hash = (cl: Cluster, h: string, replicas = 3) =>
      buildStatefulSet(cl, { replicas, partition: 0, configHash: h }).metadata?.annotations?.[
        'kvstore.dev/template-hash'
      ];
    const base = cluster();
    expect(hash(base, 'a')).toBe(hash(base, 'a', 9));
    expect(hash(base, 'a')).not.toBe(hash(base, 'b'));
    expect(hash(base, 'a')).not.toBe(hash(cluster({ image: 'kvstore:2' }), 'a'));
  });

  it('leaves scrape annotations out when metrics are disabled', () => {
    const s = buildStatefulSet(cluster({ metrics: { enabled: false } }), {
      replicas: 1,
      partition: 0,
      configHash: 'x',
    });
    expect(Object.keys(s.spec?.template.metadata?.annotations ?? {})).toEqual([
      'kvstore.dev/config-hash',
    ]);
  });

  it('wires the password, cluster secret and TLS Secrets into the pods', () => {
    const s = buildStatefulSet(
      cluster({
        auth: {
          passwordSecret: { name: 'kv-auth', key: 'password' },
          clusterSecret: { name: 'kv-auth', key: 'cluster' },
        },
        tls: { clientSecretName: 'kv-client-tls', peerSecretName: 'kv-peer-tls' },
      }),
      { replicas: 1, partition: 0, configHash: 'x' },
    );
    const pod = s.spec!.template.spec!;
    const env = pod.containers[0]!.env!;
    const byName = new Map(env.map((e) => [e.name, e]));
    expect(byName.get('KV_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({
      name: 'kv-auth',
      key: 'password',
    });
    expect(byName.get('KV_CLUSTER_SECRET')?.valueFrom?.secretKeyRef).toEqual({
      name: 'kv-auth',
      key: 'cluster',
    });
    expect(byName.get('KV_TLS_CERT_FILE')?.value).toBe('/etc/kvstore/tls/client/tls.crt');
    expect(byName.get('KV_PEER_TLS_CA_FILE')?.value).toBe('/etc/kvstore/tls/peer/ca.crt');
    expect(pod.volumes?.map((v) => [v.name, v.secret?.secretName])).toEqual([
      ['tls-client', 'kv-client-tls'],
      ['tls-peer', 'kv-peer-tls'],
    ]);
    expect(pod.containers[0]!.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    // Without auth or TLS, nothing of it appears.
    const plain = buildStatefulSet(cluster(), { replicas: 1, partition: 0, configHash: 'x' });
    const names = plain.spec!.template.spec!.containers[0]!.env!.map((e) => e.name);
    expect(
      names.some((n) => n.includes('PASSWORD') || n.includes('TLS') || n.includes('SECRET')),
    ).toBe(false);
    expect(plain.spec!.template.spec!.volumes).toBeUndefined();
  });
});

describe('Services, ConfigMap, PDB, ServiceMonitor', () => {
  const c = cluster({ ports: { client: 6000 }, replicas: 5, replicationFactor: 5, writeQuorum: 3 });

  it('headless Service publishes not-ready pods; client Service serves the client port', () => {
    const h = buildHeadlessService(c);
    expect(h.metadata).toMatchObject({
      name: 'kv-headless',
      namespace: 'prod',
      ownerReferences: [OWNER],
    });
    expect(h.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(h.spec?.ports?.map((p) => p.name)).toEqual(['client', 'http', 'peer']);
    const s = buildClientService(c);
    expect(s.spec?.ports?.[0]).toEqual({
      name: 'client',
      port: 6000,
      targetPort: 'client',
      protocol: 'TCP',
    });
    expect(s.spec?.publishNotReadyAddresses).toBeUndefined();
  });

  it('ConfigMap carries the KV_* settings and discovery through the headless Service', () => {
    const cm = buildConfigMap(c, 'cluster.local');
    expect(cm.data).toMatchObject({
      KV_HOST: '0.0.0.0',
      KV_PORT: '6000',
      KV_DATA_DIR: '/data',
      KV_DISCOVERY: 'dns:kv-headless.prod.svc.cluster.local',
      KV_REPLICATION_FACTOR: '5',
      KV_WRITE_QUORUM: '3',
    });
    expect(Object.keys(cm.data ?? {}).filter((k) => k.startsWith('KV_MAX'))).toEqual([]);
    expect(configHash(cm)).toBe(configHash(buildConfigMap(c, 'cluster.local')));
    expect(configHash(cm)).not.toBe(configHash(buildConfigMap(c, 'example.org')));
  });

  it('ConfigMap is immutable and named by its content; the pod template refers to it by that name', () => {
    const cm = buildConfigMap(c, 'cluster.local');
    expect(cm.immutable).toBe(true);
    expect(cm.metadata?.name).toBe(`kv-config-${configHash(cm)}`);
    const other = buildConfigMap(cluster({ logLevel: 'debug' }), 'cluster.local');
    expect(other.metadata?.name).not.toBe(cm.metadata?.name);
    const sts = buildStatefulSet(c, { replicas: 3, partition: 0, configHash: configHash(cm) });
    expect(configMapsOf(sts.spec?.template)).toEqual(new Set([cm.metadata?.name]));
  });

  it('a ConfigMap is unused once no pod revision refers to it; those of other owners are left alone', () => {
    const cm = (name: string, uid: string, controller = true) => ({
      metadata: { name, ownerReferences: [{ ...OWNER, uid, controller }] },
    });
    const listed = [
      cm('kv-config', 'u-1'), // the layout before one ConfigMap per configuration
      cm('kv-config-aaa', 'u-1'),
      cm('kv-config-bbb', 'u-1'),
      cm('kv-config-ccc', 'u-2'), // an earlier KVCluster of the same name
      cm('kv-config-ddd', 'u-1', false),
    ];
    expect(unusedConfigMaps(listed, 'u-1', new Set(['kv-config-bbb']))).toEqual([
      'kv-config',
      'kv-config-aaa',
    ]);
    expect(unusedConfigMaps(listed, 'u-1', new Set(['kv-config', 'kv-config-aaa']))).toEqual([
      'kv-config-bbb',
    ]);
  });

  it("ConfigMap carries spec.settings as the node's KV_* variables, and a change rolls the pods", () => {
    const tuned = cluster({
      settings: { maxValueBytes: 4 << 20, maxLineBytes: 5 << 20, readRepairChance: 0.25 },
    });
    const cm = buildConfigMap(tuned, 'cluster.local');
    expect(cm.data).toMatchObject({
      KV_MAX_VALUE_BYTES: '4194304',
      KV_MAX_LINE_BYTES: '5242880',
      KV_READ_REPAIR_CHANCE: '0.25',
      KV_PORT: '8081', // the operator's own settings are still there
    });
    const before = configHash(buildConfigMap(cluster(), 'cluster.local'));
    expect(configHash(cm)).not.toBe(before);
  });

  it('peer TLS turned on or off is held, not rolled; another peer Secret rolls', () => {
    const plain = cluster();
    const tls = (peerSecretName: string) => cluster({ tls: { peerSecretName } });
    const stsOf = (cl: Cluster) =>
      buildStatefulSet(cl, { replicas: 3, partition: 0, configHash: 'x' });
    const held = (cl: Cluster, from: Cluster) => {
      try {
        checkPeerTlsChange(cl, stsOf(from));
        return null;
      } catch (err) {
        return err as { reason: string; message: string };
      }
    };
    expect(held(tls('peer-a'), plain)).toMatchObject({ reason: 'PeerTlsChange' });
    expect(held(tls('peer-a'), plain)?.message).toContain('the pods run with peer TLS off');
    expect(held(plain, tls('peer-a'))?.message).toContain('the pods run with peer TLS on');
    expect(held(tls('peer-b'), tls('peer-a'))).toBeNull();
    expect(held(plain, plain)).toBeNull();
    expect(() => checkPeerTlsChange(tls('peer-a'), null)).not.toThrow();
  });

  it('PDB and ServiceMonitor select the pods', () => {
    expect(buildPdb(c).spec).toEqual({
      maxUnavailable: 1,
      selector: {
        matchLabels: { 'app.kubernetes.io/name': 'kvstore', 'app.kubernetes.io/instance': 'kv' },
      },
    });
    // Ready pods whose nodes refuse work count as down: a drain may take no other pod while
    // kv-0 refuses writes (before, the budget allowed one more, whatever kv-0 refused).
    expect(buildPdb(c, ['kv-0']).spec?.maxUnavailable).toBe(0);
    const two = cluster({ replicas: 5, podDisruptionBudget: { maxUnavailable: 2 } });
    expect(buildPdb(two, ['kv-0']).spec?.maxUnavailable).toBe(1);
    expect(buildPdb(two, ['kv-0', 'kv-1', 'kv-2']).spec?.maxUnavailable).toBe(0);
    const sm = buildServiceMonitor(
      cluster({ metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } } }),
    );
    expect(sm.metadata?.labels?.release).toBe('prom');
    expect(sm.spec).toMatchObject({
      jobLabel: 'app.kubernetes.io/name',
      endpoints: [{ port: 'http', path: '/metrics', interval: '30s' }],
    });
  });
});

describe('pod admin URLs', () => {
  const a = {
    pod: 'kv-2',
    headless: 'kv-headless',
    namespace: 'prod',
    cluster: 'kv',
    httpPort: 9090,
    clusterDomain: 'cluster.local',
  };

  it('defaults to the pod DNS name through the headless Service', () => {
    expect(podUrl(DEFAULT_POD_URL_TEMPLATE, a)).toBe(
      'http://kv-2.kv-headless.prod.svc.cluster.local:9090',
    );
  });

  it('lets tests point at a stand-in', () => {
    expect(podUrl('http://127.0.0.1:1234/{namespace}/{pod}/', a)).toBe(
      'http://127.0.0.1:1234/prod/kv-2',
    );
    // Unknown names stay as written, names of Object.prototype's members too.
    expect(podUrl('http://{pod}/{constructor}/{toString}/{nope}', a)).toBe(
      'http://kv-2/{constructor}/{toString}/{nope}',
    );
  });

  it('parses pod ordinals strictly', () => {
    expect([
      ordinalOf('kv', 'kv-0'),
      ordinalOf('kv', 'kv-12'),
      ordinalOf('kv', 'kv-01'),
      ordinalOf('kv', 'kvx-1'),
    ]).toEqual([0, 12, -1, -1]);
  });
});

describe('Events', () => {
  it('point at the KVCluster', () => {
    const e = buildEvent(
      { name: 'kv', namespace: 'prod', uid: 'u-1' },
      'Warning',
      'Blocked',
      'why',
      new Date(0),
      'op-1',
    );
    expect(e).toMatchObject({
      metadata: { namespace: 'prod' },
      involvedObject: { kind: 'KVCluster', name: 'kv', uid: 'u-1' },
      type: 'Warning',
      reason: 'Blocked',
      reportingInstance: 'op-1',
    });
    expect(e.metadata?.name).toMatch(/^kv\.0[0-9a-f]{6}$/);
  });

  it('count a repeat on the first Event, written at most every 10 s and never lost', async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const calls: string[] = [];
      const core = {
        createNamespacedEvent: async (r: { body: { count: number } }) => {
          calls.push(`create ${r.body.count}`);
        },
        patchNamespacedEvent: async (r: { name: string; body: { count: number } }) => {
          calls.push(`patch ${r.body.count}`);
        },
      };
      const kube = { core } as unknown as Kube;
      const events = createEventRecorder(kube, 'op-1', pino({ level: 'silent' }));
      const kv = { name: 'kv', namespace: 'prod', uid: 'u-1' };
      for (let i = 0; i < 3; i++) {
        await events.record(kv, 'Warning', 'Unschedulable', 'kv-0 cannot start');
        await vi.advanceTimersByTimeAsync(2000);
      }
      await events.record(kv, 'Warning', 'Unschedulable', 'kv-1 cannot start');
      expect(calls).toEqual(['create 1', 'create 1']);
      // 10 s after the create, the two repeats are written together.
      await vi.advanceTimersByTimeAsync(4000);
      expect(calls).toEqual(['create 1', 'create 1', 'patch 3']);
      // Later than that, a repeat is written at once; another kind of Event is one of its own.
      await vi.advanceTimersByTimeAsync(20_000);
      await events.record(kv, 'Warning', 'Unschedulable', 'kv-0 cannot start');
      await events.record(kv, 'Normal', 'Unschedulable', 'kv-0 cannot start');
      expect(calls.slice(3)).toEqual(['patch 4', 'create 1']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('put the repeats counted for an Event that is gone (expired, deleted) into a new one', async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const calls: string[] = [];
      const gone = new Set<string>();
      const core = {
        createNamespacedEvent: async (r: {
          body: { metadata: { name: string }; count: number; firstTimestamp: Date };
        }) => {
          const first = new Date(r.body.firstTimestamp).getTime() / 1000;
          calls.push(`create ${r.body.count} from ${first} s`);
        },
        patchNamespacedEvent: async (r: { name: string; body: { count: number } }) => {
          if (gone.has(r.name)) {
            calls.push(`patch ${r.body.count}: 404`);
            throw new ApiException(404, 'NotFound', '{"reason":"NotFound"}', {});
          }
          calls.push(`patch ${r.body.count}`);
        },
      };
      const names: string[] = [];
      const create = core.createNamespacedEvent;
      core.createNamespacedEvent = async (r) => {
        names.push(r.body.metadata.name);
        await create(r);
      };
      const kube = { core } as unknown as Kube;
      const events = createEventRecorder(kube, 'op-1', pino({ level: 'silent' }));
      const kv = { name: 'kv', namespace: 'prod', uid: 'u-1' };
      const again = () => events.record(kv, 'Warning', 'Unschedulable', 'kv-0 cannot start');
      await again();
      await vi.advanceTimersByTimeAsync(2000);
      await again();
      await vi.advanceTimersByTimeAsync(2000);
      await again();
      // Deleted by hand before the timer writes its two repeats: they go into a new Event.
      gone.add(names[0]!);
      await vi.advanceTimersByTimeAsync(6000);
      expect(calls).toEqual(['create 1 from 0 s', 'patch 3: 404', 'create 2 from 2 s']);
      // Counted on the new Event from then on.
      await vi.advanceTimersByTimeAsync(2000);
      await again();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(calls.slice(3)).toEqual(['patch 3']);
      // Expired while the cause was quiet: a repeat written at once makes it again too.
      gone.add(names[1]!);
      await vi.advanceTimersByTimeAsync(60_000);
      await again();
      expect(calls.slice(4)).toEqual(['patch 4: 404', 'create 1 from 82 s']);
      expect(new Set(names).size).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('combine similar Events (same object, type and reason) once 10 messages were seen within 10 minutes', async () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const created: string[] = [];
      const patched: string[] = [];
      const core = {
        createNamespacedEvent: async (r: { body: { message: string; count: number } }) => {
          created.push(r.body.message);
        },
        patchNamespacedEvent: async (r: { body: { message: string; count: number } }) => {
          patched.push(`${r.body.count} ${r.body.message}`);
        },
      };
      const events = createEventRecorder(
        { core } as unknown as Kube,
        'op',
        pino({ level: 'silent' }),
      );
      const kv = { name: 'kv', namespace: 'prod', uid: 'u-1' };
      // The scheduler's message counts nodes: a pod's cause reads differently as nodes come and go.
      const unschedulable = (pod: number, nodes: number) =>
        events.record(kv, 'Warning', 'Unschedulable', `kv-${pod} cannot start: 0/${nodes} nodes`);
      for (let i = 0; i < 12; i++) {
        await unschedulable(i, 5);
        await vi.advanceTimersByTimeAsync(1000);
      }
      // Another reason, or another object, is not combined with them.
      await events.record(kv, 'Warning', 'FailedCreate', 'kv-12 cannot start');
      await events.record({ ...kv, uid: 'u-2' }, 'Warning', 'Unschedulable', 'kv-0 cannot start');
      await vi.advanceTimersByTimeAsync(10_000);
      const combined = '(combined from similar events): kv-';
      expect(created).toEqual([
        ...Array.from({ length: 9 }, (_, i) => `kv-${i} cannot start: 0/5 nodes`),
        `${combined}9 cannot start: 0/5 nodes`,
        'kv-12 cannot start',
        'kv-0 cannot start',
      ]);
      // The 10th and later are counted on the combined Event, which shows the latest message.
      expect(patched).toEqual([`3 ${combined}11 cannot start: 0/5 nodes`]);
      // A message seen before is combined too while the window lasts; then each is its own again.
      await unschedulable(0, 6);
      await vi.advanceTimersByTimeAsync(10 * 60_000 + 1);
      await unschedulable(0, 6);
      expect(patched.slice(1)).toEqual([`4 ${combined}0 cannot start: 0/6 nodes`]);
      expect(created.slice(12)).toEqual(['kv-0 cannot start: 0/6 nodes']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('warn once per generation and reason, and keep one entry per KVCluster and reason', () => {
    const w = new Warnings();
    expect(w.first('u-1', 1, 'NoClusterSecret')).toBe(true);
    expect(w.first('u-1', 1, 'NoClusterSecret')).toBe(false);
    expect(w.first('u-1', 1, 'ServiceMonitorUnavailable')).toBe(true);
    expect(w.first('u-2', 1, 'NoClusterSecret')).toBe(true);
    // A year of spec changes of a cluster that warns at every generation.
    for (let g = 2; g <= 1000; g++) {
      expect(w.first('u-1', g, 'NoClusterSecret')).toBe(true);
      expect(w.first('u-1', g, 'NoClusterSecret')).toBe(false);
    }
    expect(w.size).toBe(3);
    // u-1 deleted: its entries go; u-2 warns no more for its generation.
    w.retain(new Set(['u-2']));
    expect(w.size).toBe(1);
    expect(w.first('u-2', 1, 'NoClusterSecret')).toBe(false);
  });
});

describe('operator options', () => {
  it('reads flags over KVSTORE_OPERATOR_* over defaults', () => {
    const env = {
      KVSTORE_OPERATOR_POD_URL_TEMPLATE: 'http://x/{pod}',
      KVSTORE_OPERATOR_WORKERS: '3',
      KVSTORE_OPERATOR_LEADER_ELECT: 'false',
    };
    const r = loadOptions(['--workers', '5', '--namespace=team'], env);
    expect(r.kind).toBe('options');
    if (r.kind !== 'options') return;
    expect(r.options).toMatchObject({
      podUrlTemplate: 'http://x/{pod}',
      workers: 5,
      namespace: 'team',
      leaderElect: false,
      httpPort: 8080,
    });
    expect(r.options.identity).not.toBe('');
    expect(r.options.leaseNamespace).toBe('kvstore-system');
  });

  it('rejects unknown flags and bad values with the flag and variable names', () => {
    expect(loadOptions(['--nope', '1'], {})).toEqual({
      kind: 'error',
      text: "config: unknown option '--nope'",
    });
    const bad = loadOptions(['--pod-url-template', 'http://x'], {});
    expect(bad.kind === 'error' && bad.text).toContain(
      '--pod-url-template (KVSTORE_OPERATOR_POD_URL_TEMPLATE)',
    );
    expect([flagName('leaseDurationMs'), envName('leaseDurationMs')]).toEqual([
      '--lease-duration-ms',
      'KVSTORE_OPERATOR_LEASE_DURATION_MS',
    ]);
  });
});

describe('generated cluster secret', () => {
  it('is an owned Secret of 32 random bytes, different for every cluster', () => {
    const a = buildClusterSecret(cluster());
    const b = buildClusterSecret(cluster());
    expect(a.metadata).toMatchObject({
      name: 'kv-cluster-secret',
      namespace: 'prod',
      ownerReferences: [OWNER],
    });
    const value = Buffer.from(a.data!.secret!, 'base64').toString();
    expect(Buffer.from(value, 'base64url')).toHaveLength(32);
    expect(b.data!.secret).not.toBe(a.data!.secret);
  });
});
