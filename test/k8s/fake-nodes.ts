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
