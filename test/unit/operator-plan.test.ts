// Operator reconcile plan: scale-down through decommission, health-gated rollout, status and phase.

import type { V1StatefulSet } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  buildStatefulSet,
  buildStatus,
  type Cluster,
  claimWaits,
  clusterHealth,
  compareQuantities,
  currentReplicas,
  type NodeView,
  type Observed,
  type PodView,
  phaseMessage,
  planCluster,
  planRecommission,
  planResizeRestart,
  planRollout,
  planScale,
  podView,
  readyRefusers,
  rolloutHeldMessage,
  STARTUP_GRACE_MS,
  stamp,
  statusChanged,
  templateSize,
  unreadyTolerance,
} from '../../operator/controller/index.ts';

const NOW = new Date('2030-01-01T00:00:00Z');

function cluster(spec: Record<string, unknown> = {}, name = 'kv'): Cluster {
  const r = parseKVCluster(name, spec);
  if (!r.ok) throw new Error(r.message);
  return { name, namespace: 'ns', uid: 'uid-1', generation: 1, spec: r.spec };
}

function pod(i: number, o: Partial<PodView> = {}): PodView {
  return {
    name: `kv-${i}`,
    ordinal: i,
    ready: true,
    started: true,
    terminating: false,
    revision: 'rev-b',
    createdAtMs: NOW.getTime() - 2 * STARTUP_GRACE_MS,
    lostReady: false,
    ...o,
  };
}

function node(members: string[], o: { moving?: boolean; status?: string; down?: string[] } = {}) {
  const view = {
    status: o.status ?? 'active',
    ring: { moving: o.moving ?? false },
    members: members.map((name) => ({ name, state: o.down?.includes(name) ? 'down' : 'up' })),
  };
  return { reachable: true, view } as NodeView;
}

/** `nodes` with `pod`'s own answer saying it refuses (its clock, its storage). */
function refusing(
  nodes: ReadonlyMap<string, NodeView>,
  pod: string,
  o: { clock?: string; notWritable?: string },
): Map<string, NodeView> {
  const n = nodes.get(pod) as Extract<NodeView, { reachable: true }>;
  const view = {
    ...n.view,
    ...(o.clock ? { refusing: { commands: 'writes', reason: o.clock, ready: true } } : {}),
    ...(o.notWritable ? { notWritable: o.notWritable } : {}),
  };
  return new Map([...nodes, [pod, { reachable: true, view } as NodeView]]);
}

/** `nodes` where every node's view shows `member` with the hello flags `flags`. */
function seenWith(
  nodes: ReadonlyMap<string, NodeView>,
  member: string,
  flags: Record<string, boolean>,
): Map<string, NodeView> {
  const views = [...nodes].map(([name, n]) => {
    if (!n.reachable) return [name, n] as const;
    const members = n.view.members.map((m) => (m.name === member ? { ...m, ...flags } : m));
    return [name, { reachable: true, view: { ...n.view, members } } as NodeView] as const;
  });
  return new Map(views);
}

const CLOCK = 'clock: wall clock stepped: refusing writes until peers agree with it';
const FULL = 'disk full (1048576 bytes free in /data, below --min-free-disk-bytes 8388608)';

function healthyNodes(n: number, o: Parameters<typeof node>[1] = {}): Map<string, NodeView> {
  const names = Array.from({ length: n }, (_, i) => `kv-${i}`);
  return new Map(names.map((p) => [p, node(names, o)]));
}

function sts(
  replicas: number,
  partition: number,
  o: Partial<V1StatefulSet['status']> = {},
): V1StatefulSet {
  return {
    metadata: { generation: 2 },
    spec: {
      replicas,
      selector: {},
      serviceName: 'kv-headless',
      template: {},
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition } },
    },
    status: {
      observedGeneration: 2,
      replicas,
      readyReplicas: replicas,
      updatedReplicas: replicas,
      updateRevision: 'rev-b',
      currentRevision: 'rev-b',
      ...o,
    },
  };
}

const active = { kind: 'reported', view: { status: 'active', transfer: null } } as const;

describe('planScale', () => {
  const base = { cluster: 'kv', replicationFactor: 3, rebalancing: false };

  it('creates the StatefulSet at the desired size and grows at once', () => {
    expect(planScale({ ...base, desired: 3, current: null, leaving: null })).toEqual({
      replicas: 3,
      step: { kind: 'steady' },
    });
    expect(planScale({ ...base, desired: 5, current: 3, leaving: null })).toEqual({
      replicas: 5,
      step: { kind: 'up', from: 3, to: 5 },
    });
  });

  it('asks the highest pod to decommission and keeps the size until it is done', () => {
    const start = planScale({ ...base, desired: 3, current: 5, leaving: active });
    expect(start).toMatchObject({
      replicas: 5,
      step: { kind: 'down', pod: 'kv-4', action: 'start' },
    });
    const going = {
      kind: 'reported',
      view: { status: 'decommissioning', transfer: { scanned: 7, sent: 7, done: false } },
    } as const;
    expect(planScale({ ...base, desired: 3, current: 5, leaving: going })).toMatchObject({
      replicas: 5,
      step: { action: 'wait' },
    });
    const gone = { kind: 'reported', view: { status: 'decommissioned', transfer: null } } as const;
    expect(planScale({ ...base, desired: 3, current: 5, leaving: gone })).toMatchObject({
      replicas: 4,
      step: { pod: 'kv-4', action: 'shrink' },
    });
  });

  it('starts the next decommission only once no data moves; one in progress or done goes on', () => {
    const moving = { ...base, desired: 3, current: 5, rebalancing: true };
    expect(planScale({ ...moving, leaving: active })).toMatchObject({
      replicas: 5,
      step: { kind: 'down', pod: 'kv-4', action: 'settle' },
    });
    const going = {
      kind: 'reported',
      view: { status: 'decommissioning', transfer: null },
    } as const;
    expect(planScale({ ...moving, leaving: going }).step).toMatchObject({ action: 'wait' });
    const gone = { kind: 'reported', view: { status: 'decommissioned', transfer: null } } as const;
    expect(planScale({ ...moving, leaving: gone })).toMatchObject({
      replicas: 4,
      step: { action: 'shrink' },
    });
  });

  it('removes a pod that never started without asking it', () => {
    for (const kind of ['absent', 'not-started'] as const) {
      expect(planScale({ ...base, desired: 3, current: 4, leaving: { kind } })).toMatchObject({
        replicas: 3,
        step: { action: 'skip' },
      });
    }
  });

  it('waits, saying why, when the pod does not answer or members would drop below RF', () => {
    const unreachable = { kind: 'unreachable', error: 'ECONNREFUSED' } as const;
    const u = planScale({ ...base, desired: 3, current: 4, leaving: unreachable });
    expect(u).toMatchObject({ replicas: 4, step: { kind: 'blocked', reason: 'NodeUnreachable' } });
    expect(u.step.kind === 'blocked' && u.step.message).toContain(
      'kv-3 does not answer: ECONNREFUSED',
    );
    // Deleted, recreated or pending while its claim holds what its node stored: not removed.
    const stopped = { kind: 'stopped', now: 'not running', claim: 'data-kv-3' } as const;
    expect(planScale({ ...base, desired: 3, current: 4, leaving: stopped })).toMatchObject({
      replicas: 4,
      step: { kind: 'blocked', reason: 'LeavingPodNotRunning' },
    });
    const rf = planScale({ ...base, desired: 2, current: 3, leaving: active });
    expect(rf).toMatchObject({
      replicas: 3,
      step: { kind: 'blocked', reason: 'BelowReplicationFactor' },
    });
  });
});

describe('planRecommission', () => {
  const names = ['kv-0', 'kv-1', 'kv-2', 'kv-3'];
  const pods = [0, 1, 2, 3].map((i) => pod(i));
  const views = (status: Record<string, string>) =>
    new Map(names.map((n) => [n, node(names, { status: status[n] ?? 'active' })]));

  it('takes back pods kept by the scale that report decommissioned or decommissioning', () => {
    const nodes = views({ 'kv-2': 'decommissioned', 'kv-3': 'decommissioning' });
    expect(planRecommission(4, 4, pods, nodes)).toEqual(['kv-2', 'kv-3']);
    expect(planRecommission(4, 4, pods, views({}))).toEqual([]);
  });

  it('leaves the pods a scale-down removes, and unreachable or terminating ones', () => {
    const nodes = views({ 'kv-2': 'decommissioned', 'kv-3': 'decommissioning' });
    // Scaling 4 -> 3: kv-3 is the one handing off; kv-2 stays and comes back.
    expect(planRecommission(3, 4, pods, nodes)).toEqual(['kv-2']);
    // The StatefulSet not grown yet (3 pods, 4 wanted): only existing ordinals below 3.
    expect(planRecommission(4, 3, pods, nodes)).toEqual(['kv-2']);
    nodes.set('kv-2', { reachable: false, error: 'connection refused' });
    expect(planRecommission(4, 4, pods, nodes)).toEqual(['kv-3']);
    const going = pods.map((p) => (p.ordinal === 3 ? { ...p, terminating: true } : p));
    expect(planRecommission(4, 4, going, nodes)).toEqual([]);
  });
});

describe('clusterHealth', () => {
  it('is healthy when every pod is ready, answers, sees all members up and nothing moves', () => {
    expect(clusterHealth([pod(0), pod(1)], healthyNodes(2))).toEqual({
      healthy: true,
      rebalancing: false,
      problems: [],
      refusals: [],
      refusers: [],
    });
  });

  it('reports unready and unreachable pods, down members and moving rings', () => {
    const nodes = healthyNodes(3, { down: ['kv-2'] });
    nodes.set('kv-1', { reachable: false, error: 'timeout' });
    const h = clusterHealth([pod(0), pod(1), pod(2, { ready: false })], nodes);
    expect(h.healthy).toBe(false);
    expect(h.problems).toEqual([
      'kv-0 sees kv-2 down',
      'kv-1 unreachable (timeout)',
      'kv-2 not ready',
      'kv-2 sees kv-2 down',
    ]);
    const moving = clusterHealth([pod(0)], healthyNodes(1, { moving: true }));
    expect(moving).toMatchObject({ healthy: false, rebalancing: true, problems: [] });
  });
});

describe('clusterHealth of members that run and refuse work', () => {
  const pods = [pod(0), pod(1), pod(2)];

  it('counts a Ready pod that refuses writes (its clock, a full disk) as a problem, by its own answer', () => {
    // kv-1 refuses writes for its clock (Ready all the same: no other member could take them),
    // kv-0's disk is full (Ready: it serves reads). Every peer's hello says so of kv-1 too: one
    // line, its own, with the reason. Before, all of this was healthy.
    const nodes = seenWith(
      refusing(refusing(healthyNodes(3), 'kv-1', { clock: CLOCK }), 'kv-0', { notWritable: FULL }),
      'kv-1',
      { clockRefusing: true },
    );
    const h = clusterHealth(pods, nodes);
    const lines = [
      `kv-0 refuses writes: storage not writable: ${FULL}`,
      `kv-1 refuses writes: ${CLOCK}`,
    ];
    expect(h).toEqual({
      healthy: false,
      rebalancing: false,
      problems: lines,
      refusals: lines,
      refusers: ['kv-0', 'kv-1'],
    });
    // Left out, a pod's refusals are not counted (the pod a step would replace).
    expect(clusterHealth(pods, nodes, 'kv-1').problems).toEqual([lines[0]]);
  });

  it('lists the Ready pods whose nodes refuse work (the budget counts them down)', () => {
    const nodes = refusing(refusing(healthyNodes(3), 'kv-1', { clock: CLOCK }), 'kv-2', {
      notWritable: FULL,
    });
    expect(readyRefusers(pods, nodes)).toEqual(['kv-1', 'kv-2']);
    // Not Ready any more: the budget counts it down by itself.
    expect(readyRefusers([pod(0), pod(1, { ready: false }), pod(2)], nodes)).toEqual(['kv-2']);
  });

  it("takes a member's refusals from its peers' views while it does not answer", () => {
    const views = seenWith(healthyNodes(3), 'kv-2', {
      storageStalled: true,
      storageNotWritable: true,
    });
    views.delete('kv-2'); // not started: the operator has no answer of its own
    const h = clusterHealth([pod(0), pod(1), pod(2, { started: false })], views);
    expect(h.problems).toEqual([
      'kv-0 sees kv-2 disk stalled',
      'kv-0 sees kv-2 refusing writes (storage not writable)',
      'kv-1 sees kv-2 disk stalled',
      'kv-1 sees kv-2 refusing writes (storage not writable)',
    ]);
    expect(h.refusals).toEqual(h.problems);
    expect(h.refusers).toEqual(['kv-2']);
  });
});

describe('planRollout', () => {
  const nodes = new Map<string, NodeView>();
  const healthy = clusterHealth([], nodes);
  const unhealthy = { healthy: false, rebalancing: true, problems: [], refusals: [], refusers: [] };
  const pods = (revs: string[]) => revs.map((revision, i) => pod(i, { revision }));

  it('starts with partition 0 and holds every pod when the template changes', () => {
    expect(
      planRollout({
        sts: null,
        templateChanged: false,
        replicas: 3,
        pods: [],
        nodes,
        health: healthy,
      }),
    ).toEqual({
      partition: 0,
      rolling: false,
    });
    const start = planRollout({
      sts: sts(3, 0),
      templateChanged: true,
      replicas: 3,
      pods: pods(['a', 'a', 'a']),
      nodes,
      health: healthy,
    });
    expect(start).toMatchObject({ partition: 3, rolling: true });
  });

  it('steps down one pod at a time, only once the updated pods are ready and the cluster healthy', () => {
    const s = sts(3, 3);
    const old = pods(['a', 'a', 'a']);
    expect(
      planRollout({
        sts: s,
        templateChanged: false,
        replicas: 3,
        pods: old,
        nodes,
        health: healthy,
      }).partition,
    ).toBe(2);
    const s2 = sts(3, 2);
    expect(
      planRollout({
        sts: s2,
        templateChanged: false,
        replicas: 3,
        pods: old,
        nodes,
        health: healthy,
      }),
    ).toMatchObject({
      partition: 2,
      waiting: 'kv-2 is not updated and ready yet',
    });
    const updated = pods(['a', 'a', 'rev-b']);
    const notHealthy = planRollout({
      sts: s2,
      templateChanged: false,
      replicas: 3,
      pods: updated,
      nodes,
      health: unhealthy,
    });
    expect(notHealthy).toMatchObject({
      partition: 2,
      waiting: 'cluster not healthy: data is moving between nodes',
    });
    expect(
      planRollout({
        sts: s2,
        templateChanged: false,
        replicas: 3,
        pods: updated,
        nodes,
        health: healthy,
      }).partition,
    ).toBe(1);
  });

  it('replaces the next pod when it is the only problem (a reverted rollout reaches its broken pod)', () => {
    // kv-2 got a template that broke it (rev-x); the spec went back to rev-b: partition 3.
    const revert = pods(['rev-b', 'rev-b', 'rev-x']);
    const broken = revert.map((p) => (p.ordinal === 2 ? { ...p, ready: false } : p));
    const views = healthyNodes(3, { down: ['kv-2'] });
    views.set('kv-2', { reachable: false, error: 'connection refused' });
    const health = clusterHealth(broken, views);
    const input = { templateChanged: false, replicas: 3, pods: broken, nodes: views, health };
    expect(planRollout({ ...input, sts: sts(3, 3) })).toMatchObject({ partition: 2 });
    // Another pod's problem still holds the step: replacing kv-2 would take a second one down.
    const others = broken.map((p) => (p.ordinal === 0 ? { ...p, ready: false } : p));
    const held = planRollout({
      ...input,
      sts: sts(3, 3),
      pods: others,
      health: clusterHealth(others, views),
    });
    expect(held).toMatchObject({ partition: 3, waiting: 'cluster not healthy: kv-0 not ready' });
    // An updated next pod is not replaced by a step: the gate holds.
    const updatedBroken = broken.map((p) => ({ ...p, revision: 'rev-b' }));
    expect(
      planRollout({ ...input, sts: sts(3, 3), pods: updatedBroken, health: health }),
    ).toMatchObject({ partition: 3 });
  });

  it('holds while a Ready pod refuses writes: a second pod down would leave too few that take them', () => {
    // Every pod Ready on the old template, kv-2 the next to replace.
    const old = pods(['a', 'a', 'a']);
    const step = (views: Map<string, NodeView>) =>
      planRollout({
        sts: sts(3, 3),
        templateChanged: false,
        replicas: 3,
        pods: old,
        nodes: views,
        health: clusterHealth(old, views),
      });
    expect(step(healthyNodes(3)).partition).toBe(2);
    // kv-0 refuses writes for its clock, Ready: replacing kv-2 left kv-1 alone to coordinate
    // writes for the Service's clients. Before, the step was taken.
    expect(step(refusing(healthyNodes(3), 'kv-0', { clock: CLOCK }))).toEqual({
      partition: 3,
      rolling: true,
      waiting: `cluster not healthy: kv-0 refuses writes: ${CLOCK}`,
    });
    // kv-0's disk is full: keys on kv-0, kv-1 and kv-2 had two replicas that store writes, the
    // write quorum; with kv-2 down, one. Held too.
    const full0 = refusing(healthyNodes(3), 'kv-0', { notWritable: FULL });
    expect(step(full0)).toMatchObject({
      partition: 3,
      waiting: `cluster not healthy: kv-0 refuses writes: storage not writable: ${FULL}`,
    });
    // kv-2 itself refusing is no reason to keep it: replacing it takes nothing more down.
    expect(step(refusing(healthyNodes(3), 'kv-2', { clock: CLOCK })).partition).toBe(2);
    // kv-2 stores no write either (its disk full too): replacing it loses no replica that takes
    // writes, and reads stay served by kv-0 and kv-1. The step is taken.
    expect(step(refusing(full0, 'kv-2', { notWritable: FULL })).partition).toBe(2);
    // But not while kv-0 refuses writes for its clock: kv-2 still stores what kv-1 coordinates.
    const clock0 = refusing(healthyNodes(3), 'kv-0', { clock: CLOCK });
    expect(step(refusing(clock0, 'kv-2', { notWritable: FULL })).partition).toBe(3);
    // Nor for a full disk that kv-2 does not share (kv-2 refusing for its clock stores writes).
    expect(step(refusing(full0, 'kv-2', { clock: CLOCK })).partition).toBe(3);
    // A Warning Event names who refuses (the phase stays Upgrading: no phase Event says it).
    const held = step(full0);
    expect(rolloutHeldMessage(held, clusterHealth(old, full0))).toMatch(
      /^the rollout holds at partition 3: kv-0 refuses work while running \(the Degraded condition says what and why\)/,
    );
    const down = healthyNodes(3, { down: ['kv-1'] });
    expect(rolloutHeldMessage(step(down), clusterHealth(old, down))).toBeNull();
  });

  it('holds while the StatefulSet status is stale and reports rolling until every pod is updated', () => {
    const stale = sts(3, 2, { observedGeneration: 1 });
    expect(
      planRollout({
        sts: stale,
        templateChanged: false,
        replicas: 3,
        pods: pods(['a', 'a', 'rev-b']),
        nodes,
        health: healthy,
      }),
    ).toMatchObject({
      partition: 2,
      waiting: 'StatefulSet status is stale',
    });
    const last = planRollout({
      sts: sts(3, 0),
      templateChanged: false,
      replicas: 3,
      pods: pods(['a', 'rev-b', 'rev-b']),
      nodes,
      health: healthy,
    });
    expect(last).toEqual({ partition: 0, rolling: true });
    const done = planRollout({
      sts: sts(3, 0),
      templateChanged: false,
      replicas: 3,
      pods: pods(['rev-b', 'rev-b', 'rev-b']),
      nodes,
      health: healthy,
    });
    expect(done).toEqual({ partition: 0, rolling: false });
  });
});

describe('planCluster', () => {
  it('detects a template change (new image) against the applied StatefulSet', () => {
    const c = cluster({ replicas: 3 });
    const applied = buildStatefulSet(c, { replicas: 3, partition: 0, configHash: 'h' });
    const current = {
      ...applied,
      status: sts(3, 0).status,
      metadata: { ...applied.metadata, generation: 2 },
    };
    const observed: Observed = {
      sts: current,
      pods: [pod(0), pod(1), pod(2)],
      nodes: healthyNodes(3),
    };
    expect(planCluster(c, observed, null, 'h').statefulSet).toEqual({
      replicas: 3,
      partition: 0,
      configHash: 'h',
    });
    const upgraded = cluster({ replicas: 3, image: 'kvstore:2' });
    expect(planCluster(upgraded, observed, null, 'h').statefulSet.partition).toBe(3);
    expect(planCluster(c, observed, null, 'other-config').statefulSet.partition).toBe(3);
  });
});

describe('podView', () => {
  const t = (s: number) => new Date(NOW.getTime() + s * 1000);
  const k8sPod = (ready: 'True' | 'False', readySince: Date, o: Record<string, unknown> = {}) => ({
    metadata: { name: 'kv-1', creationTimestamp: t(0) },
    status: {
      phase: 'Running',
      podIP: '10.0.0.2',
      conditions: [{ type: 'Ready', status: ready, lastTransitionTime: readySince }],
      containerStatuses: [
        {
          name: 'kvstore',
          image: 'kvstore:1',
          imageID: '',
          ready: ready === 'True',
          restartCount: 0,
          state: { running: { startedAt: t(2) } },
          ...o,
        },
      ],
    },
  });

  it('tells a pod that has not been ready yet from one that ran and lost readiness', () => {
    // Not Ready since before its container started: starting.
    expect(podView('kv', k8sPod('False', t(1)))).toMatchObject({ ready: false, lostReady: false });
    expect(podView('kv', k8sPod('False', t(2)))?.lostReady).toBe(false);
    // Ready turned False after the container started: its readiness probe fails now.
    expect(podView('kv', k8sPod('False', t(60)))?.lostReady).toBe(true);
    // A container that restarted (a crash), whatever the times say.
    const crashed = k8sPod('False', t(1), {
      restartCount: 1,
      state: { waiting: { reason: 'CrashLoopBackOff' } },
    });
    expect(podView('kv', crashed)?.lostReady).toBe(true);
    // Never started (pulling its image): starting.
    expect(
      podView('kv', k8sPod('False', t(1), { state: { waiting: { reason: 'ErrImagePull' } } }))
        ?.lostReady,
    ).toBe(false);
    // Ready: nothing lost.
    expect(podView('kv', k8sPod('True', t(60), { restartCount: 2 }))).toMatchObject({
      ready: true,
      lostReady: false,
    });
  });
});

describe('buildStatus', () => {
  const c = cluster({ replicas: 3 });
  const steady = { replicas: 3, step: { kind: 'steady' } } as const;
  const input = (o: Partial<Parameters<typeof buildStatus>[0]> = {}) => {
    const observed = o.observed ?? {
      sts: sts(3, 0),
      pods: [pod(0), pod(1), pod(2)],
      nodes: healthyNodes(3),
    };
    return {
      spec: c.spec,
      generation: 4,
      selector: 'app=kv',
      previous: { phase: 'Available' as const },
      now: NOW,
      observed,
      scale: steady,
      rollout: { partition: 0, rolling: false },
      health: clusterHealth(observed.pods, observed.nodes),
      ...o,
    };
  };
  const reason = (s: ReturnType<typeof buildStatus>, type: string) =>
    s.conditions?.find((x) => x.type === type)?.reason;

  it('is Degraded (ConfigMapMissing) while the settings ConfigMap of a running revision is gone', () => {
    const missing = ['ConfigMap kv-config-1, the settings of a pod revision, was deleted'];
    const s = buildStatus(input({ configMapsMissing: missing }));
    expect(s.phase).toBe('Degraded');
    expect(reason(s, 'Degraded')).toBe('ConfigMapMissing');
    expect(reason(s, 'Progressing')).toBe('Stable');
  });

  it('pods the StatefulSet could not make (a quota): Blocked, with the cause in the conditions and progress', () => {
    const blocker = {
      object: 'statefulset kv',
      reason: 'FailedCreate',
      message: 'pods "kv-1" is forbidden: exceeded quota: pods',
    };
    const observed = {
      sts: sts(3, 0, { replicas: 1, readyReplicas: 1 }),
      pods: [pod(0)],
      nodes: healthyNodes(1),
      unmade: [
        { name: 'kv-1', blocker },
        {
          name: 'kv-2',
          blocker: { ...blocker, message: 'pods "kv-2" is forbidden: exceeded quota: pods' },
        },
      ],
    };
    const s = buildStatus(input({ observed, previous: { phase: 'Scaling' } }));
    expect(s.phase).toBe('Blocked');
    const prog = s.conditions?.find((x) => x.type === 'Progressing');
    expect(prog).toMatchObject({ status: 'False', reason: 'FailedCreate' });
    expect(prog?.message).toBe(
      '1/3 pods created; kv-1 cannot start: statefulset kv FailedCreate: pods "kv-1" is forbidden: exceeded quota: pods; kv-2 cannot start: statefulset kv FailedCreate: pods "kv-2" is forbidden: exceeded quota: pods',
    );
    expect(reason(s, 'Degraded')).toBe('PodsNotCreated');
    expect(s.progress).toBe('kv-1 cannot start: statefulset kv FailedCreate (+1 more)');
    // Without a refusal, the same counts are a scale-up under way.
    const { unmade: _u, ...making } = observed;
    const up = buildStatus(input({ observed: making, previous: { phase: 'Scaling' } }));
    expect(up.phase).toBe('Scaling');
    expect(reason(up, 'Progressing')).toBe('ScalingUp');
    expect(up.progress).toBeUndefined();
  });

  it('keeps the phase Upgrading while a pod restarts for its file system (FileSystemResize)', () => {
    const s = buildStatus(input({ fileSystemResize: 'restarting kv-2' }));
    expect(s.phase).toBe('Upgrading');
    expect(reason(s, 'Progressing')).toBe('FileSystemResize');
  });

  it('is Available when every pod is ready and healthy', () => {
    const s = buildStatus(input());
    expect(s).toMatchObject({
      observedGeneration: 4,
      phase: 'Available',
      replicas: 3,
      readyReplicas: 3,
      selector: 'app=kv',
      rebalancing: false,
    });
    expect(s.conditions?.map((x) => [x.type, x.status, x.reason])).toEqual([
      ['Available', 'True', 'QuorumAvailable'],
      ['Progressing', 'False', 'Stable'],
      ['Degraded', 'False', 'AsExpected'],
    ]);
    expect(s.members).toEqual(
      [0, 1, 2].map((i) => ({ name: `kv-${i}`, ready: true, state: 'active' })),
    );
  });

  it("lists what each member refuses in status.members, by the member's own answer", () => {
    let nodes = refusing(healthyNodes(3), 'kv-0', { notWritable: FULL });
    nodes = refusing(nodes, 'kv-2', { clock: CLOCK });
    const observed = { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes };
    const s = buildStatus(input({ observed }));
    expect(s.members).toEqual([
      {
        name: 'kv-0',
        ready: true,
        state: 'active',
        refusing: [`refuses writes: storage not writable: ${FULL}`],
      },
      { name: 'kv-1', ready: true, state: 'active' },
      { name: 'kv-2', ready: true, state: 'active', refusing: [`refuses writes: ${CLOCK}`] },
    ]);
  });

  it("keeps a member's refusal line while its cause stays: only its numbers changed, no status write", () => {
    // A stalled disk makes its node unready (its probe fails) and its answer says for how long;
    // every status write is a watch event that reconciles again at once.
    const at = (reason: string) => {
      const n = healthyNodes(3);
      const v = n.get('kv-1') as Extract<NodeView, { reachable: true }>;
      const view = { ...v.view, refusing: { commands: 'all', reason, ready: false } };
      const nodes = new Map([...n, ['kv-1', { reachable: true, view } as NodeView]]);
      const observed = { sts: sts(3, 0), pods: [pod(0), pod(1, { ready: false }), pod(2)], nodes };
      return input({ observed });
    };
    const stalled = (secs: string) =>
      `storage: stalled: a sync has been outstanding for ${secs} s (over --storage-stall-timeout-ms 5000); this node refuses commands until its disk answers: use another node`;
    const lines = (s: ReturnType<typeof buildStatus>) =>
      s.members?.find((m) => m.name === 'kv-1')?.refusing;
    const first = buildStatus(at(stalled('12.3')));
    expect(lines(first)).toEqual([`refuses every command: ${stalled('12.3')}`]);
    const later = buildStatus({ ...at(stalled('312.6')), previous: first });
    expect(statusChanged(first, later)).toBe(false);
    // Another cause is news.
    const other = buildStatus({ ...at(CLOCK), previous: later });
    expect(statusChanged(later, other)).toBe(true);
    expect(lines(other)).toEqual([`refuses every command: ${CLOCK}`]);
  });

  it('keeps the Degraded message while a Ready member refuses for the same cause: only its numbers changed, no status write', () => {
    const full = (free: number) =>
      `disk full (${free} bytes free in /data, below --min-free-disk-bytes 67108864)`;
    const at = (who: string, free: number, previous?: ReturnType<typeof buildStatus>) => {
      const nodes = refusing(healthyNodes(3), who, { notWritable: full(free) });
      const observed = { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes };
      return buildStatus({
        ...input({ observed }),
        ...(previous ? { previous: previous as never } : {}),
      });
    };
    const degraded = (s: ReturnType<typeof buildStatus>) =>
      s.conditions?.find((c) => c.type === 'Degraded');
    const first = at('kv-0', 1048576);
    expect(degraded(first)).toMatchObject({
      reason: 'MembersRefusing',
      message: `kv-0 refuses writes: storage not writable: ${full(1048576)}`,
    });
    const later = at('kv-0', 1040000, first);
    expect(degraded(later)?.message).toBe(degraded(first)?.message);
    expect(statusChanged(first, later)).toBe(false);
    // Another member is news, though only a digit of the text differs.
    const other = at('kv-1', 1040000, later);
    expect(degraded(other)?.message).toBe(
      `kv-1 refuses writes: storage not writable: ${full(1040000)}`,
    );
    expect(statusChanged(later, other)).toBe(true);
  });

  it("keeps a held rollout's Progressing message while only the quoted refusal's numbers changed, not its partition", () => {
    const held = (partition: number, free: number) =>
      `updating: partition ${partition}; waiting: cluster not healthy: kv-0 refuses writes: storage not writable: disk full (${free} bytes free in /data)`;
    const cond = (message: string) => ({
      type: 'Progressing' as const,
      status: 'True' as const,
      reason: 'RollingUpdate',
      message,
    });
    const [first] = stamp([cond(held(3, 1048576))], undefined, NOW, 4);
    const previous = { conditions: [first!] };
    expect(stamp([cond(held(3, 1000))], previous, NOW, 4)[0]!.message).toBe(held(3, 1048576));
    expect(stamp([cond(held(2, 1000))], previous, NOW, 4)[0]!.message).toBe(held(2, 1000));
  });

  it('stays Pending on first start until every pod is ready', () => {
    const young = NOW.getTime() - 1000;
    const pods = [
      pod(0),
      pod(1, { ready: false, createdAtMs: young }),
      pod(2, { ready: false, createdAtMs: young }),
    ];
    const observed = { sts: sts(3, 0, { readyReplicas: 1 }), pods, nodes: healthyNodes(1) };
    expect(buildStatus(input({ observed, previous: undefined })).phase).toBe('Pending');
    expect(buildStatus(input({ observed, previous: { phase: 'Scaling' } })).phase).toBe('Scaling');
    const none = { sts: sts(3, 0, { readyReplicas: 0 }), pods: [], nodes: new Map() };
    expect(buildStatus(input({ observed: none, previous: undefined })).phase).toBe('Pending');
    // Past the start-up grace, not ready yet: not Pending for good.
    const old = NOW.getTime() - 6 * 60_000;
    const stuck = [0, 1, 2].map((i) => pod(i, { ready: false, createdAtMs: old }));
    const never = { sts: sts(3, 0, { readyReplicas: 0 }), pods: stuck, nodes: new Map() };
    const s = buildStatus(input({ observed: never, previous: { phase: 'Pending' } }));
    expect(s.phase).toBe('Degraded');
    expect(s.conditions?.find((x) => x.type === 'Degraded')?.reason).toBe('PodsNotReady');
  });

  it('names what keeps a pod from starting, in Progressing, then Degraded, and the Progress column', () => {
    const blocker = {
      object: 'claim data-kv-2',
      reason: 'ProvisioningFailed',
      message: 'storageclass.storage.k8s.io "fast" not found',
    };
    const at = (ageMs: number) => {
      const pods = [
        pod(0),
        pod(1),
        pod(2, { ready: false, createdAtMs: NOW.getTime() - ageMs, blocker }),
      ];
      return { sts: sts(3, 0, { readyReplicas: 2 }), pods, nodes: healthyNodes(2) };
    };
    const why =
      'kv-2 cannot start: claim data-kv-2 ProvisioningFailed: storageclass.storage.k8s.io "fast" not found';
    const young = buildStatus(input({ observed: at(60_000), previous: { phase: 'Scaling' } }));
    expect(young.conditions?.find((x) => x.type === 'Progressing')?.message).toBe(
      `starting: kv-2; ${why}`,
    );
    expect(young.progress).toBe('kv-2 cannot start: claim data-kv-2 ProvisioningFailed');
    // Past the start-up grace: Degraded, saying why.
    const stuck = buildStatus(input({ observed: at(6 * 60_000) }));
    expect(stuck.phase).toBe('Degraded');
    expect(stuck.conditions?.find((x) => x.type === 'Degraded')?.message).toBe(
      `not ready: kv-2; ${why}`,
    );
    // A pod a few seconds old: its claim is still binding, nothing to say yet.
    const fresh = buildStatus(input({ observed: at(2000), previous: { phase: 'Scaling' } }));
    expect(fresh.conditions?.find((x) => x.type === 'Progressing')?.message).toBe('starting: kv-2');
    expect(fresh.progress).toBeUndefined();
  });

  it('shows StaleReads while reads may miss acknowledged writes, and only then', () => {
    const weak = cluster({ replicas: 3, readQuorum: 1, writeQuorum: 2 }).spec;
    const stored = buildStatus(input({ spec: weak }));
    expect(stored.phase).toBe('Available');
    expect(stored.conditions?.find((x) => x.type === 'StaleReads')).toMatchObject({
      status: 'True',
      reason: 'QuorumsDoNotOverlap',
      message:
        'readQuorum 1 + writeQuorum 2 <= replicationFactor 3: a read may miss an acknowledged write until the replicas catch up; set spec.allowStaleReads: true to accept it, or raise readQuorum or writeQuorum',
    });
    const allowed = buildStatus(input({ spec: { ...weak, allowStaleReads: true } }));
    expect(allowed.conditions?.find((x) => x.type === 'StaleReads')?.reason).toBe(
      'StaleReadsAllowed',
    );
    expect(buildStatus(input()).conditions?.map((x) => x.type)).not.toContain('StaleReads');
  });

  it('is Degraded, not Pending, once up, when no pod is ready (its StatefulSet made again too)', () => {
    const none = { sts: sts(3, 0, { readyReplicas: 0 }), pods: [], nodes: new Map() };
    for (const phase of ['Available', 'Degraded', 'Scaling'] as const) {
      expect(buildStatus(input({ observed: none, previous: { phase } })).phase).toBe('Degraded');
    }
  });

  it('shows decommission progress while scaling down, and Blocked with the reason', () => {
    const view = {
      status: 'decommissioning' as const,
      transfer: { scanned: 10, sent: 4, done: false },
    };
    const down = {
      replicas: 3,
      step: { kind: 'down', pod: 'kv-2', action: 'wait', view },
    } as const;
    const s = buildStatus(input({ scale: down }));
    expect(s.phase).toBe('Scaling');
    expect(s.decommission).toEqual({
      member: 'kv-2',
      state: 'decommissioning',
      scanned: 10,
      sent: 4,
    });
    const blocked = {
      replicas: 3,
      step: { kind: 'blocked', pod: 'kv-2', reason: 'BelowReplicationFactor', message: 'lower it' },
    } as const;
    const b = buildStatus(input({ scale: blocked }));
    expect(b.phase).toBe('Blocked');
    expect(b.conditions?.find((x) => x.type === 'Progressing')).toMatchObject({
      status: 'False',
      reason: 'BelowReplicationFactor',
      message: 'lower it',
    });
  });

  it('shows the percentage and time left of a decommission and of rebalancing', () => {
    const view = {
      status: 'decommissioning' as const,
      transfer: { scanned: 512, total: 1000, percent: 51.2, etaSeconds: 3, sent: 700, done: false },
    };
    const down = {
      replicas: 3,
      step: { kind: 'down', pod: 'kv-2', action: 'wait', view },
    } as const;
    const s = buildStatus(input({ scale: down }));
    expect(s.decommission).toEqual({
      member: 'kv-2',
      state: 'decommissioning',
      scanned: 512,
      sent: 700,
      total: 1000,
      percent: 51.2,
      etaSeconds: 3,
    });
    expect(s.progress).toBe('decommission kv-2: 51.2% (512/1000 records), ETA 3s');
    expect(s.conditions?.find((x) => x.type === 'Progressing')?.message).toBe(
      'scale-down to 3: decommissioning kv-2: 51.2% (512/1000 records), ETA 3s',
    );
    // Its hand-off waits for kv-0, whose disk is full: the condition says so (before, only the
    // percentage, which stopped moving).
    const why = 'not writable: disk full (1 bytes free in /data, below --min-free-disk-bytes 2)';
    const waiting = { ...view, transfer: { ...view.transfer, waitingFor: { 'kv-0': why } } };
    const held = buildStatus(input({ scale: { ...down, step: { ...down.step, view: waiting } } }));
    expect(held.conditions?.find((x) => x.type === 'Progressing')?.message).toBe(
      `scale-down to 3: decommissioning kv-2: 51.2% (512/1000 records), ETA 3s; waits for kv-0, which refuses writes (${why})`,
    );
    // Two nodes stream for a ring change: their records add up, the slower one sets the ETA.
    const nodes = healthyNodes(3, { moving: true });
    const streaming = (scanned: number, total: number, etaSeconds: number | null) => {
      const n = nodes.get(`kv-${scanned % 3}`)!;
      if (!n.reachable) throw new Error('reachable');
      const transfer = {
        kind: 'rebalance',
        scanned,
        total,
        percent: 0,
        etaSeconds,
        sent: 0,
        done: false,
      };
      return { reachable: true, view: { ...n.view, transfer } } as NodeView;
    };
    nodes.set('kv-0', streaming(300, 1000, 7));
    nodes.set('kv-1', streaming(100, 1000, 20));
    const observed = { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes };
    const r = buildStatus(input({ observed, health: clusterHealth(observed.pods, nodes) }));
    expect(r.rebalance).toEqual({
      nodes: 2,
      scanned: 400,
      total: 2000,
      percent: 20,
      etaSeconds: 20,
    });
    expect(r.progress).toBe('rebalance: 20% (400/2000 records), ETA 20s');
    expect(r.conditions?.find((x) => x.type === 'Progressing')?.message).toBe(
      'data is moving to its new owners: 20% (400/2000 records), ETA 20s on 2 nodes',
    );
    // Nodes of an older version report no total: no percentage is made up.
    const old = buildStatus(
      input({
        scale: {
          ...down,
          step: {
            ...down.step,
            view: { status: 'decommissioning', transfer: { scanned: 5, sent: 4, done: false } },
          },
        },
      }),
    );
    expect(old.progress).toBe('decommission kv-2: 4 records sent');
  });

  it('reports Upgrading, Rebalancing and Degraded', () => {
    expect(buildStatus(input({ rollout: { partition: 1, rolling: true } })).phase).toBe(
      'Upgrading',
    );
    const movingNodes = healthyNodes(3, { moving: true });
    const moving = { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes: movingNodes };
    const r = buildStatus(input({ observed: moving }));
    expect([r.phase, r.rebalancing, reason(r, 'Progressing')]).toEqual([
      'Rebalancing',
      true,
      'Rebalancing',
    ]);
    const stuck = {
      sts: sts(3, 0, { readyReplicas: 2 }),
      pods: [pod(0), pod(1), pod(2, { ready: false })],
      nodes: healthyNodes(2),
    };
    const d = buildStatus(input({ observed: stuck }));
    expect([d.phase, reason(d, 'Degraded'), reason(d, 'Available')]).toEqual([
      'Degraded',
      'PodsNotReady',
      'QuorumAvailable',
    ]);
    const failed = buildStatus(input({ applyError: 'admission webhook said no' }));
    expect([failed.phase, reason(failed, 'Degraded')]).toEqual(['Degraded', 'ApplyFailed']);
  });

  it('is Degraded (MembersRefusing) while a Ready pod refuses writes, naming it and why', () => {
    const nodes = refusing(healthyNodes(3), 'kv-1', { clock: CLOCK });
    const observed = { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes };
    const s = buildStatus(input({ observed }));
    const degraded = s.conditions?.find((x) => x.type === 'Degraded');
    expect([s.phase, degraded?.reason, degraded?.message]).toEqual([
      'Degraded',
      'MembersRefusing',
      `kv-1 refuses writes: ${CLOCK}`,
    ]);
    expect(phaseMessage(s)).toBe(`3/3 pods ready; MembersRefusing: kv-1 refuses writes: ${CLOCK}`);
    // A member down besides: MembersUnhealthy, as before.
    const both = { ...observed, nodes: refusing(healthyNodes(3, { down: ['kv-2'] }), 'kv-1', {}) };
    expect(reason(buildStatus(input({ observed: both })), 'Degraded')).toBe('MembersUnhealthy');
  });

  it('a rejected apply is Degraded with its reason in the Event, and Progressing claims nothing', () => {
    // What reportApplyError builds when the very first StatefulSet apply fails.
    const none = { sts: null, pods: [], nodes: new Map() };
    const s = buildStatus(
      input({
        observed: none,
        previous: undefined,
        health: clusterHealth([], new Map()),
        applyError: 'StatefulSet.apps "kv" is invalid: spec.template.spec.tolerations[0].operator',
      }),
    );
    expect(s.phase).toBe('Degraded');
    expect(s.conditions?.find((x) => x.type === 'Progressing')).toMatchObject({
      status: 'False',
      reason: 'ApplyFailed',
    });
    expect(phaseMessage(s)).toBe(
      '0/0 pods ready; ApplyFailed: StatefulSet.apps "kv" is invalid: spec.template.spec.tolerations[0].operator',
    );
    // Other phases: the condition that explains them, reason first.
    const stuck = {
      sts: sts(3, 0, { readyReplicas: 2 }),
      pods: [pod(0), pod(1), pod(2, { ready: false })],
      nodes: healthyNodes(2),
    };
    expect(phaseMessage(buildStatus(input({ observed: stuck })))).toBe(
      '2/3 pods ready; PodsNotReady: not ready: kv-2',
    );
    const blocked = {
      replicas: 3,
      step: { kind: 'blocked', pod: 'kv-2', reason: 'NodeUnreachable', message: 'kv-2 is gone' },
    } as const;
    expect(phaseMessage(buildStatus(input({ scale: blocked })))).toBe(
      '3/3 pods ready; NodeUnreachable: kv-2 is gone',
    );
    expect(phaseMessage(buildStatus(input()))).toBe('3/3 pods ready');
  });

  it('a pod that ran and lost readiness is a problem at once, however young', () => {
    const young = NOW.getTime() - 1000;
    const p = pod(1, { ready: false, createdAtMs: young, lostReady: true });
    // Even right after a scale-up: a crash or a failing readiness probe is not the scale.
    for (const previous of [{ phase: 'Available' as const }, { phase: 'Scaling' as const }]) {
      const observed = {
        sts: sts(3, 0, { readyReplicas: 2 }),
        pods: [pod(0), p, pod(2)],
        nodes: healthyNodes(3),
      };
      const s = buildStatus(
        input({ observed, previous, health: clusterHealth(observed.pods, observed.nodes) }),
      );
      expect([s.phase, reason(s, 'Progressing'), reason(s, 'Degraded')]).toEqual([
        'Degraded',
        'Stable',
        'PodsNotReady',
      ]);
      expect(s.conditions?.find((x) => x.type === 'Degraded')?.message).toBe(
        'not ready: kv-1 (was running)',
      );
    }
  });

  it('a new pod is Scaling or Upgrading only within a scale-up or rollout; recreated, it is Degraded', () => {
    const young = NOW.getTime() - 1000;
    const observed = {
      sts: sts(3, 0, { readyReplicas: 2 }),
      pods: [pod(0), pod(1, { ready: false, createdAtMs: young }), pod(2)],
      nodes: healthyNodes(3),
    };
    const at = (phase: 'Available' | 'Scaling' | 'Upgrading' | 'Rebalancing') =>
      buildStatus(
        input({
          observed,
          previous: { phase },
          health: clusterHealth(observed.pods, observed.nodes),
        }),
      );
    // Deleted (or evicted) and recreated by the StatefulSet: replicas did not change.
    for (const before of ['Available', 'Rebalancing'] as const) {
      const s = at(before);
      expect([s.phase, reason(s, 'Progressing'), reason(s, 'Degraded')], before).toEqual([
        'Degraded',
        'PodsStarting',
        'PodsRecreated',
      ]);
      expect(phaseMessage(s)).toBe(
        '2/3 pods ready; PodsRecreated: recreated, starting: kv-1 (no scale or rollout under way)',
      );
    }
    // The pods of a scale-up or of a rollout's last step: that operation goes on until Ready.
    for (const before of ['Scaling', 'Upgrading'] as const) {
      const s = at(before);
      expect([s.phase, reason(s, 'Degraded')], before).toEqual([before, 'AsExpected']);
    }
  });

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const first = buildStatus(input());
    const later = buildStatus(input({ previous: first, now: new Date(NOW.getTime() + 60_000) }));
    expect(later.conditions).toEqual(first.conditions);
  });

  it('counts a Ready pod that stores no writes (a full disk) as unready for the quorums', () => {
    const full0 = refusing(healthyNodes(3), 'kv-0', { notWritable: FULL });
    const one = buildStatus(
      input({ observed: { sts: sts(3, 0), pods: [pod(0), pod(1), pod(2)], nodes: full0 } }),
    );
    expect(one.conditions?.find((x) => x.type === 'Available')).toMatchObject({
      status: 'True',
      message:
        '3/3 pods ready, kv-0 storing no writes (counted unready); quorums hold with up to 1 unready',
    });
    // kv-2 unready besides: keys on all three have kv-1 alone to store their writes (W=2).
    // Before, 2/3 ready was Available.
    const pods = [pod(0), pod(1), pod(2, { ready: false })];
    const two = buildStatus(input({ observed: { sts: sts(3, 0), pods, nodes: full0 } }));
    expect(two.conditions?.find((x) => x.type === 'Available')).toMatchObject({
      status: 'False',
      reason: 'QuorumUnavailable',
    });
  });

  it('tolerates as many unready pods as the quorums allow', () => {
    expect(unreadyTolerance(c.spec, 3)).toBe(1);
    expect(unreadyTolerance(c.spec, 1)).toBe(0);
    expect(
      unreadyTolerance({ ...c.spec, replicationFactor: 5, readQuorum: 2, writeQuorum: 3 }, 5),
    ).toBe(2);
  });
});

describe('volumes', () => {
  it('compares storage quantities exactly, across suffixes', () => {
    expect(compareQuantities('1Gi', '1073741824')).toBe(0);
    expect(compareQuantities('2Gi', '1Gi')).toBe(1);
    expect(compareQuantities('1G', '1Gi')).toBe(-1);
    expect(compareQuantities('1.5Gi', '1536Mi')).toBe(0);
    expect(compareQuantities('1e9', '1G')).toBe(0);
    expect(compareQuantities('1E3', '1k')).toBe(0);
    expect(compareQuantities('.5Ki', '512')).toBe(0);
    expect(compareQuantities('+10Ti', '10Ti')).toBe(0);
    expect(compareQuantities('1023Mi', '1Gi')).toBe(-1);
    expect(() => compareQuantities('1Gb', '1Gi')).toThrow(/not a quantity: 1Gb/);
  });

  it('tells a claim not grown yet, and one whose file system waits for its pod to restart', () => {
    const pvc = (capacity: string, conditions: { type: string; status: string }[] = []) => ({
      metadata: { name: 'data-kv-0' },
      spec: { resources: { requests: { storage: '2Gi' } } },
      status: { capacity: { storage: capacity }, conditions },
    });
    expect(claimWaits(pvc('2Gi'), '2Gi')).toBeNull();
    expect(claimWaits(pvc('3Gi'), '2Gi')).toBeNull();
    expect(claimWaits(pvc('1Gi'), '2Gi')).toBe(
      'data-kv-0: 1Gi of 2Gi, the storage provider has not grown it yet',
    );
    expect(claimWaits(pvc('1Gi', [{ type: 'Resizing', status: 'True' }]), '2Gi')).toMatch(
      /\(resizing\)$/,
    );
    expect(
      claimWaits(pvc('1Gi', [{ type: 'FileSystemResizePending', status: 'True' }]), '2Gi'),
    ).toMatch(/file system grows when its pod restarts/);
  });

  it('reads the claim template size of a StatefulSet', () => {
    const c = cluster({ replicas: 3, storage: { size: '5Gi' } });
    expect(templateSize(buildStatefulSet(c, { replicas: 3, partition: 0, configHash: 'h' }))).toBe(
      '5Gi',
    );
    expect(templateSize(sts(3, 0))).toBeNull();
  });

  it('without a StatefulSet (deleted with its pods kept), counts the pods: a scale-down still decommissions first', () => {
    const c = cluster({ replicas: 3 });
    const pods = [pod(0), pod(1), pod(2), pod(3)];
    expect(currentReplicas({ sts: null, pods })).toBe(4);
    expect(currentReplicas({ sts: null, pods: [...pods, pod(4, { terminating: true })] })).toBe(4);
    expect(currentReplicas({ sts: null, pods: [] })).toBeNull();
    expect(currentReplicas({ sts: sts(5, 0), pods })).toBe(5);
    const plan = planCluster(c, { sts: null, pods, nodes: healthyNodes(4) }, active, 'h');
    expect(plan.scale.step).toMatchObject({ kind: 'down', pod: 'kv-3', action: 'start' });
    expect(plan.statefulSet.replicas).toBe(4);
  });

  it('a StatefulSet made again, with no status yet, keeps the phase its pods have; growing volumes are shown, Available', () => {
    const c = cluster({ replicas: 3 });
    const fresh = { ...sts(3, 0), status: undefined } as unknown as V1StatefulSet;
    const observed: Observed = {
      sts: fresh,
      pods: [pod(0), pod(1), pod(2)],
      nodes: healthyNodes(3),
    };
    const s = buildStatus({
      spec: c.spec,
      generation: 4,
      selector: 'app=kv',
      previous: { phase: 'Available' },
      now: NOW,
      observed,
      scale: { replicas: 3, step: { kind: 'steady' } },
      rollout: { partition: 0, rolling: false },
      health: clusterHealth(observed.pods, observed.nodes),
      volumes: ['data-kv-0: 1Gi of 2Gi, the storage provider has not grown it yet'],
    });
    expect(s).toMatchObject({ phase: 'Available', replicas: 3, readyReplicas: 3 });
    const progressing = s.conditions?.find((x) => x.type === 'Progressing');
    expect(progressing).toMatchObject({ status: 'True', reason: 'VolumesGrowing' });
    expect(progressing?.message).toContain('volumes growing to 1Gi: data-kv-0: 1Gi of 2Gi');
  });
});

describe('planResizeRestart', () => {
  const healthy = healthyNodes(3);
  const since = NOW.getTime() - 1000;
  const pending = (i: number, mark?: { sinceMs: number; pod?: string }) => ({
    pod: `kv-${i}`,
    claim: `data-kv-${i}`,
    sinceMs: since,
    ...(mark ? { mark } : {}),
  });
  const pods = [0, 1, 2].map((i) => pod(i, { uid: `u${i}` }));
  const expected = ['kv-0', 'kv-1', 'kv-2'];

  it('restarts the highest pending pod once every pod is Ready and the cluster healthy', () => {
    const plan = planResizeRestart({
      pending: [pending(0), pending(2)],
      pods,
      expected,
      nodes: healthy,
      settled: true,
    });
    expect(plan).toEqual({
      kind: 'restart',
      pod: 'kv-2',
      claim: 'data-kv-2',
      uid: 'u2',
      left: 2,
      sinceMs: since,
      marked: false,
    });
  });

  it('waits during a scale or rollout, for a pod down, for an unhealthy cluster', () => {
    const input = { pending: [pending(1)], pods, expected, nodes: healthy, settled: true };
    expect(planResizeRestart({ ...input, settled: false })).toMatchObject({
      kind: 'wait',
      why: 'the scale or rollout under way ends',
    });
    const down = [pods[0]!, pods[1]!, pod(2, { ready: false })];
    expect(planResizeRestart({ ...input, pods: down })).toMatchObject({
      kind: 'wait',
      why: 'kv-2 is not ready',
    });
    // A pod evicted and not made again yet is not listed: down too, not a pod fewer to wait for.
    expect(planResizeRestart({ ...input, pods: [pods[0]!, pods[1]!] })).toMatchObject({
      kind: 'wait',
      why: 'kv-2 is made again',
    });
    const sick = healthyNodes(3, { down: ['kv-0'] });
    expect(planResizeRestart({ ...input, nodes: sick })).toMatchObject({
      kind: 'wait',
      why: 'the cluster is healthy (kv-0 sees kv-0 down)',
    });
  });

  it('restarts a pod whose disk is full first, and waits while a pod it would not restart refuses writes', () => {
    const all = [pending(0), pending(1), pending(2)];
    const input = { pending: all, pods, expected, settled: true };
    // kv-1's disk is full: its restart (the remount that grows its file system) goes first, and
    // takes no replica that stores writes away. Before, kv-2 went first, or (with refusals
    // counted) waited for kv-1, whose restart came after its own.
    const full1 = refusing(healthyNodes(3), 'kv-1', { notWritable: FULL });
    expect(planResizeRestart({ ...input, nodes: full1 })).toMatchObject({
      kind: 'restart',
      pod: 'kv-1',
    });
    // kv-1 and kv-2 full: kv-2 first (the highest), though kv-1 refuses writes as well.
    const full12 = refusing(full1, 'kv-2', { notWritable: FULL });
    expect(planResizeRestart({ ...input, nodes: full12 })).toMatchObject({
      kind: 'restart',
      pod: 'kv-2',
    });
    // kv-1 full and not due (its file system grown already): kv-2's restart would leave one
    // replica that stores writes of the keys the three hold. It waits, saying why.
    expect(
      planResizeRestart({ ...input, pending: [pending(0), pending(2)], nodes: full1 }),
    ).toMatchObject({
      kind: 'wait',
      pod: 'kv-2',
      why: `the cluster is healthy (kv-1 refuses writes: storage not writable: ${FULL})`,
    });
    // A clock refusal elsewhere holds it too.
    const clock0 = refusing(healthyNodes(3), 'kv-0', { clock: CLOCK });
    expect(planResizeRestart({ ...input, pending: [pending(2)], nodes: clock0 })).toMatchObject({
      kind: 'wait',
      why: `the cluster is healthy (kv-0 refuses writes: ${CLOCK})`,
    });
  });

  it('never restarts a pod again that started after its claim began to wait', () => {
    const again = [pods[0]!, pods[1]!, pod(2, { createdAtMs: since + 1 })];
    expect(
      planResizeRestart({
        pending: [pending(2)],
        pods: again,
        expected,
        nodes: healthy,
        settled: true,
      }),
    ).toEqual({ kind: 'none' });
    const unknown = { ...pending(2), sinceMs: Number.NaN };
    expect(
      planResizeRestart({ pending: [unknown], pods, expected, nodes: healthy, settled: true }),
    ).toEqual({ kind: 'none' });
    // Its claim marked by an operator before 2026-12-07 (the time alone, after the eviction):
    // restarted for this wait, whatever the pod's creation time.
    const legacy = pending(2, { sinceMs: since });
    expect(
      planResizeRestart({ pending: [legacy], pods, expected, nodes: healthy, settled: true }),
    ).toEqual({ kind: 'none' });
  });

  it('a claim marked for this wait: its pod is restarted until it is gone, never the one after it, whatever the clocks say', () => {
    const input = { pods, expected, nodes: healthy, settled: true };
    // Marked for kv-2 (u2), which is still there (its eviction refused or never sent): restarted,
    // and the mark is not written again.
    expect(
      planResizeRestart({ ...input, pending: [pending(2, { sinceMs: since, pod: 'u2' })] }),
    ).toMatchObject({ kind: 'restart', pod: 'kv-2', uid: 'u2', marked: true });
    // The pod there now is not the one marked: it came after it. Not restarted, though its
    // creation time (the apiserver's clock) is before the wait's (a resizer's clock ahead).
    const after = [pods[0]!, pods[1]!, pod(2, { uid: 'v2', createdAtMs: since - 30_000 })];
    expect(
      planResizeRestart({
        ...input,
        pods: after,
        pending: [pending(2, { sinceMs: since, pod: 'u2' })],
      }),
    ).toEqual({ kind: 'none' });
    // A mark for an earlier wait holds nothing back: a pod made before this wait is restarted.
    expect(
      planResizeRestart({
        ...input,
        pods: after,
        pending: [pending(2, { sinceMs: since - 600_000, pod: 'u2' })],
      }),
    ).toMatchObject({ kind: 'restart', pod: 'kv-2', uid: 'v2', marked: false });
  });
});
