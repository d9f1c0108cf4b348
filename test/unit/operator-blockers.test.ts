import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { blockerText, podBlocker, reportedBlockers } from '../../operator/controller/blockers.ts';

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
