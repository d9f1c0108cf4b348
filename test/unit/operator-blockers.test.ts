import type { CoreV1Event, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseKVCluster } from '../../operator/api/v1alpha1/index.ts';
import {
  blockerText,
  createBlockers,
  podBlocker,
  reportedBlockers,
} from '../../operator/controller/blockers.ts';
import { buildStatefulSet, type ControllerContext } from '../../operator/controller/index.ts';
import { Memory } from '../../operator/controller/memory.ts';
import { observe } from '../../operator/controller/observe.ts';
import type { Kube } from '../../operator/runtime/index.ts';

const pod = (status: V1Pod['status'], deleting = false): V1Pod => ({
  metadata: {
    name: 'kv-0',
    ...(deleting ? { deletionTimestamp: new Date() } : {}),
  },
  status,
});

const waiting = (reason: string, message?: string, extra: Partial<V1ContainerStatus> = {}) =>
  pod({
    conditions: [{ type: 'PodScheduled', status: 'True' }],
    containerStatuses: [
      {
        name: 'kvstore',
        image: 'registry.example/kvstore:9',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason, ...(message ? { message } : {}) } },
        ...extra,
      },
    ],
  });

describe('why a pod does not start', () => {
  it("an unscheduled pod: the scheduler's reason and message", () => {
    const b = podBlocker(
      pod({
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message:
              "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
          },
        ],
      }),
    );
    expect(b).toEqual({
      object: 'pod kv-0',
      reason: 'Unschedulable',
      message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    });
    expect(blockerText('kv-0', b!)).toBe(
      "kv-0 cannot start: pod kv-0 Unschedulable: 0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    );
  });

  it('an image that cannot be pulled reads the same through ErrImagePull and ImagePullBackOff', () => {
    const detail = 'failed to pull and unpack image "registry.example/kvstore:9": not found';
    const err = podBlocker(waiting('ErrImagePull', detail));
    const backoff = podBlocker(
      waiting(
        'ImagePullBackOff',
        `Back-off pulling image "registry.example/kvstore:9": ErrImagePull: ${detail}`,
      ),
    );
    expect(err).toEqual({
      object: 'container kv-0/kvstore',
      reason: 'ImagePullBackOff',
      message: `cannot pull image "registry.example/kvstore:9": ${detail}`,
    });
    expect(backoff).toEqual(err);
  });

  it("a crash loop: the last exit, not the back-off's changing length", () => {
    const crash = (backoff: string) =>
      podBlocker(
        waiting(
          'CrashLoopBackOff',
          `back-off ${backoff} restarting failed container=kvstore pod=kv-0_ns(uid)`,
          {
            restartCount: 4,
            lastState: { terminated: { exitCode: 2, reason: 'Error', message: 'config: bad' } },
          },
        ),
      );
    expect(crash('20s')).toEqual({
      object: 'container kv-0/kvstore',
      reason: 'CrashLoopBackOff',
      message: 'the container keeps exiting, last with exit code 2 (Error): config: bad',
    });
    expect(crash('40s')).toEqual(crash('20s'));
  });

  it('a container being created, a pod being deleted, a running pod: nothing blocks', () => {
    expect(podBlocker(waiting('ContainerCreating'))).toBeNull();
    expect(
      podBlocker(pod({ conditions: [{ type: 'PodScheduled', status: 'False' }] }, true)),
    ).toBeNull();
    expect(podBlocker(pod({ conditions: [{ type: 'PodScheduled', status: 'True' }] }))).toBeNull();
    expect(podBlocker(waiting('CreateContainerConfigError', 'secret "auth" not found'))).toEqual({
      object: 'container kv-0/kvstore',
      reason: 'CreateContainerConfigError',
      message: 'secret "auth" not found',
    });
  });

  it('a cause is reported once its pod is 10 s old: not the moment a new claim binds', () => {
    const blocker = { object: 'pod kv-0', reason: 'Unschedulable', message: 'unbound claims' };
    const p = { name: 'kv-0', ready: false, createdAtMs: 0, blocker };
    expect(reportedBlockers([p], new Date(9_999))).toEqual([]);
    expect(reportedBlockers([p], new Date(10_000))).toEqual([{ pod: 'kv-0', blocker }]);
    expect(reportedBlockers([{ ...p, ready: true }], new Date(60_000))).toEqual([]);
  });
});

describe('why a pod the StatefulSet keeps was never made', () => {
  const QUOTA =
    'pods "kv-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1';
  const event = (type: string, reason: string, message: string, at: number): CoreV1Event => ({
    metadata: { name: `kv.${at}` },
    involvedObject: { kind: 'StatefulSet', name: 'kv' },
    type,
    reason,
    message,
    lastTimestamp: new Date(at * 1000),
  });
  const failed = (pod: string, error: string, at: number) =>
    event(
      'Warning',
      'FailedCreate',
      `Create Pod ${pod} in StatefulSet kv failed error: ${error}`,
      at,
    );
  const combined = (e: CoreV1Event): CoreV1Event => ({
    ...e,
    message: `(combined from similar events): ${e.message}`,
  });
  const made = (pod: string, at: number) =>
    event('Normal', 'SuccessfulCreate', `create Pod ${pod} in StatefulSet kv successful`, at);
  /** A pod the StatefulSet keeps, not there, seen missing for `forMs` (a minute by default). */
  const gone = (name: string, forMs = 60_000) => ({ name, missingForMs: forMs });

  it("the StatefulSet's latest FailedCreate of each missing pod: a quota, a webhook", () => {
    const webhook =
      'admission webhook "deny.example.com" denied the request: pods must not run as root';
    const found = createBlockers(
      'kv',
      [
        made('kv-0', 1),
        failed('kv-1', QUOTA, 2),
        // The claim's own Event beside the pod's: not read (the pod's says it too).
        event(
          'Warning',
          'FailedCreate',
          'create Claim data-kv-2 for Pod kv-2 in StatefulSet kv failed error: x',
          3,
        ),
        // The aggregator's prefix, after 10 similar messages in 10 minutes.
        combined(failed('kv-2', webhook, 4)),
      ],
      [gone('kv-1'), gone('kv-2')],
    );
    expect(Object.fromEntries(found)).toEqual({
      'kv-1': { object: 'statefulset kv', reason: 'FailedCreate', message: QUOTA },
      'kv-2': { object: 'statefulset kv', reason: 'FailedCreate', message: webhook },
    });
    expect(blockerText('kv-1', found.get('kv-1')!)).toBe(
      `kv-1 cannot start: statefulset kv FailedCreate: ${QUOTA}`,
    );
  });

  it('nothing for a pod made since its failure, one not missing, or a tie', () => {
    const events = [
      failed('kv-1', QUOTA, 2),
      made('kv-1', 5),
      failed('kv-2', QUOTA, 7),
      made('kv-2', 7),
    ];
    // kv-1 was made after the refusal (and is missing again: deleted, not made again yet).
    expect(createBlockers('kv', events, [gone('kv-1'), gone('kv-2')])).toEqual(new Map());
    expect(createBlockers('kv', [failed('kv-1', QUOTA, 2)], [gone('kv-2')])).toEqual(new Map());
    // Refused again after it was made: reported again.
    const again = createBlockers('kv', [...events, failed('kv-1', QUOTA, 9)], [gone('kv-1')]);
    expect([...again.keys()]).toEqual(['kv-1']);
  });

  it('nothing for a pod missing for less than 10 s, or seen made after its latest refusal', () => {
    const events = [failed('kv-1', QUOTA, 20)];
    expect(createBlockers('kv', events, [gone('kv-1', 9_999)])).toEqual(new Map());
    expect([...createBlockers('kv', events, [gone('kv-1', 10_000)]).keys()]).toEqual(['kv-1']);
    // Its SuccessfulCreate not among the Events (dropped), but the pod was seen, made at 21 s.
    const seen = { ...gone('kv-1'), lastMadeAtMs: 21_000 };
    expect(createBlockers('kv', events, [seen])).toEqual(new Map());
    expect(createBlockers('kv', events, [{ ...seen, lastMadeAtMs: 20_000 }])).toEqual(new Map());
    expect([...createBlockers('kv', events, [{ ...seen, lastMadeAtMs: 19_000 }]).keys()]).toEqual([
      'kv-1',
    ]);
  });
});

describe("a pod of a 13-pod StatefulSet, made since its refusal, missing for a moment (the controller's Events rate-limited)", () => {
  const QUOTA =
    'pods "kv-12" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=12, limited: pods=12';
  const T = Date.parse('2026-12-07T00:00:00Z');
  const at = (s: number) => new Date(T + s * 1000);
  const event = (
    name: string,
    type: string,
    reason: string,
    message: string,
    count: number,
    first: number,
    last: number,
  ): CoreV1Event => ({
    metadata: { name, namespace: 'prod', creationTimestamp: at(first) },
    involvedObject: { kind: 'StatefulSet', name: 'kv', namespace: 'prod' },
    source: { component: 'statefulset-controller' },
    type,
    reason,
    message,
    count,
    firstTimestamp: at(first),
    lastTimestamp: at(last),
  });
  /**
   * The StatefulSet's Events as client-go's EventCorrelator in kube-controller-manager leaves
   * them (client-go v0.37 tools/record/events_cache.go) for: 13 replicas made at 0 s under a
   * quota of 12 pods, the quota raised at 60 s. SuccessfulCreate of 13 claims and 12 pods: 25
   * Normal Events, the whole burst a source gets per object (then one per 300 s); past 10
   * messages of one reason in 600 s they are combined into one Event naming only the latest. So
   * after the first 9 (claims and pods of kv-0 to kv-4 in the order made here) one combined
   * Event says `Create Pod kv-11 ...`, and kv-12's SuccessfulCreate at 62 s is dropped: no
   * token. kv-12's FailedCreate (Warning: a bucket of its own) is counted at every retry of the
   * controller's back-off (at 20 s here), the last at 41 s. The real kube-controller-manager
   * (v1.37.2, the test control plane, 2026-12-07) left the same for such a StatefulSet: 9
   * SuccessfulCreate, one combined of 16 naming kv-9, the refused kv-7's FailedCreate counted 11
   * times, the last at 01:08:47; kv-7 made at 01:08:58 once the quota allowed it, and no Event
   * of that.
   */
  const events: CoreV1Event[] = [
    ...[0, 1, 2, 3, 4].flatMap((i) => [
      event(
        `kv.c${i}`,
        'Normal',
        'SuccessfulCreate',
        `create Claim data-kv-${i} Pod kv-${i} in StatefulSet kv success`,
        1,
        0,
        0,
      ),
      event(
        `kv.p${i}`,
        'Normal',
        'SuccessfulCreate',
        `create Pod kv-${i} in StatefulSet kv successful`,
        1,
        0,
        0,
      ),
    ]),
  ].slice(0, 9);
  events.push(
    event(
      'kv.combined',
      'Normal',
      'SuccessfulCreate',
      '(combined from similar events): create Pod kv-11 in StatefulSet kv successful',
      16,
      0,
      0,
    ),
    event(
      'kv.f12',
      'Warning',
      'FailedCreate',
      `create Pod kv-12 in StatefulSet kv failed error: ${QUOTA}`,
      9,
      0,
      20,
    ),
  );
  const refusedAgain = (count: number, last: number) => {
    events[events.length - 1] = { ...events.at(-1)!, count, lastTimestamp: at(last) };
  };
  const cluster = () => {
    const parsed = parseKVCluster('kv', { replicas: 13 });
    if (!parsed.ok) throw new Error(parsed.message);
    return { name: 'kv', namespace: 'prod', uid: 'u-1', generation: 1, spec: parsed.spec };
  };
  const v1Pod = (i: number, created: number, uid = `p${i}`): V1Pod => ({
    metadata: {
      name: `kv-${i}`,
      uid,
      creationTimestamp: at(created),
      labels: { 'app.kubernetes.io/instance': 'kv' },
    },
    status: { phase: 'Pending' },
  });

  it('is not reported as not made: the decision is the pods there, the Events give only the cause', async () => {
    const c = cluster();
    const sts = buildStatefulSet(c, { replicas: 13, partition: 0, configHash: 'x' });
    let pods = Array.from({ length: 12 }, (_, i) => v1Pod(i, 0));
    let now = T;
    const kube = {
      read: async () => sts,
      core: {
        listNamespacedPod: async () => ({ items: pods }),
        listNamespacedEvent: async () => ({ items: events }),
      },
    } as unknown as Kube;
    const ctx = {
      kube,
      logger: pino({ level: 'silent' }),
      now: () => new Date(now),
      memory: new Memory(),
    } as unknown as ControllerContext;
    const unmade = async (s: number) => {
      now = T + s * 1000;
      return ((await observe(ctx, c)).unmade ?? []).map((u) => blockerText(u.name, u.blocker));
    };
    const refused = `kv-12 cannot start: statefulset kv FailedCreate: ${QUOTA}`;
    // Refused for as long as the quota held: reported (missing when this operator first looked:
    // at once, as a new leader reports what its predecessor did).
    expect(await unmade(10)).toEqual([refused]);
    expect(await unmade(25)).toEqual([refused]);
    // Made at 62 s (its SuccessfulCreate dropped); at 600 s a restart deletes it, and the
    // controller makes it again a moment later.
    refusedAgain(14, 41);
    pods = [...pods, v1Pod(12, 62)];
    expect(await unmade(70)).toEqual([]);
    pods = pods.slice(0, 12);
    // Before, reported at once from the FailedCreate of 41 s: Degraded PodsNotCreated, a
    // Warning Event, for a pod restarting.
    expect(await unmade(600)).toEqual([]);
    // Still missing 20 s later (the controller slow to make it): no refusal since it was made.
    expect(await unmade(620)).toEqual([]);
    // Refused again (a fresh FailedCreate, after it was made): reported.
    refusedAgain(15, 625);
    expect(await unmade(630)).toEqual([refused]);
  });
});
