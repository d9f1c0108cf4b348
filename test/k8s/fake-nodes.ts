// kwok's fake nodes: what marks them, and the Node object of one.

/** Annotation kwok is told to manage nodes by; the fake nodes carry it. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Label on every fake node (`type: kwok`), for nodeSelectors. */
export const KWOK_NODE_LABEL = { key: 'type', value: 'kwok' } as const;

/** A Node that kwok keeps Ready (32 CPUs, 256 GiB); `taint` keeps pods off without a toleration. */
export function fakeNode(name: string, taint: boolean): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    ${KWOK_NODE_ANNOTATION}: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    ${KWOK_NODE_LABEL.key}: ${KWOK_NODE_LABEL.value}
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: ${name}
    node-role.kubernetes.io/agent: ""
spec:
${taint ? `  taints:\n  - key: ${KWOK_NODE_ANNOTATION}\n    value: fake\n    effect: NoSchedule\n` : '  {}\n'}status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
---
`;
}

const DELETE_SELECTOR = `  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true`;

/**
 * kwok's stages (the upstream fast ones, build-tools.sh) with its pod-delete stage played once
 * per deletion. kwok deletes a pod by name, without its uid, and played that stage for each
 * update of a pod being deleted: the deletion's (grace period 30 s), then again for the update
 * its own delete makes (grace period 0), so its second delete could come after the StatefulSet
 * controller had made the pod again under the same name, and took the new pod. In apiserver
 * audit logs of operator.test.ts the second delete came 10 to 17 ms before the new pod in the
 * closest cases, and once 500 ms after it: the new kvr-2 deleted, made a third time (the
 * "kvr-2 restarted twice" flake; 1 run of 19 of its resize test at load 30 to 43). A real
 * kubelet deletes with the pod's uid. Here the stage leaves a pod whose grace period is 0
 * already: kwok's own delete, or a forced one, removes it.
 */
export function kwokStagesDeletingOnce(stages: string): string {
  const stage = stages.indexOf('name: pod-delete\n');
  const at = stages.indexOf(DELETE_SELECTOR, stage);
  if (stage < 0 || at < 0 || stages.slice(stage, at).includes('\n---')) {
    throw new Error("kwok's pod-delete stage is not the one kwokStagesDeletingOnce knows");
  }
  const once = DELETE_SELECTOR.replace(
    "      operator: 'Exists'\n",
    // kwok reads JSON numbers as float64, which In and NotIn do not compare: a boolean they do.
    "      operator: 'Exists'\n    - key: '.metadata.deletionGracePeriodSeconds > 0'\n      operator: 'In'\n      values: ['true']\n",
  );
  return stages.slice(0, at) + once + stages.slice(at + DELETE_SELECTOR.length);
}
