import type { CoreV1Event, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  blockerText,
  createBlockers,
  podBlocker,
  reportedBlockers,
} from '../../operator/controller/blockers.ts';

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
      ['kv-1', 'kv-2'],
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
    expect(createBlockers('kv', events, ['kv-1', 'kv-2'])).toEqual(new Map());
    expect(createBlockers('kv', [failed('kv-1', QUOTA, 2)], ['kv-2'])).toEqual(new Map());
    // Refused again after it was made: reported again.
    const again = createBlockers('kv', [...events, failed('kv-1', QUOTA, 9)], ['kv-1']);
    expect([...again.keys()]).toEqual(['kv-1']);
  });
});
