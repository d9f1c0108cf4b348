// The configuration files of the real test node: containerd, CNI, kubelet, kube-proxy, CoreDNS, and the cluster objects they need (DNS Service, RBAC, StorageClass).

/** Where a node's parts live and how they are addressed (all inside the node's network namespace). */
export interface NodeLayout {
  /** Node name, as the kubelet registers it. */
  readonly name: string;
  /** Root of every file the node writes. */
  readonly dir: string;
  /** The node's address (its end of the link to the host): kubelet, CoreDNS, kube-proxy healthz. */
  readonly nodeIp: string;
  /** Pod subnet of this node (one bridge, host-local IPAM). */
  readonly podCidr: string;
  /** CNI network name; also the prefix of what libcni caches under /var/lib/cni. */
  readonly network: string;
  /** cgroup parent of every pod (cgroupfs driver, cgroup v1 hierarchies). */
  readonly cgroupRoot: string;
  readonly containerdSocket: string;
  /** Reference of the locally built pause image (the pinned sandbox image). */
  readonly pauseImage: string;
  readonly clusterDns: string;
  readonly kubeletPort: number;
}

export const CLUSTER_DOMAIN = 'cluster.local';
/** The default StorageClass and the provisioner name of the node's local-path provisioner. */
export const STORAGE_CLASS = 'standard';
export const PROVISIONER = 'kvstore.test/local-path';

/** containerd 2 (config version 3): own root, state and socket, CRI with runc on cgroupfs. */
export function containerdConfig(l: NodeLayout, runc: string): string {
  return `version = 3
root = "${l.dir}/containerd/root"
state = "${l.dir}/containerd/state"
# NRI and tracing would share host-wide sockets with other containerd instances.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "${l.containerdSocket}"
[ttrpc]
  address = "${l.containerdSocket}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "${l.dir}/containerd/opt"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${l.pauseImage}"

[plugins.'io.containerd.cri.v1.runtime']
  # The test VM's capability bounding set lacks CAP_SYS_RESOURCE: without this, lowering a
  # container's oom_score_adj fails every sandbox ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "${runc}"
        Root = "${l.dir}/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "${l.dir}/cni/net.d"
    # containerd brings up each pod's lo itself (the loopback plugin would leave its cached
    # result in the host-wide /var/lib/cni).
    use_internal_loopback = true

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

/**
 * bridge + portmap + firewall. The firewall plugin accepts the pods' traffic in FORWARD (a Docker
 * engine on the same host sets the FORWARD policy to DROP; here it also documents the intent).
 */
export function cniConfig(l: NodeLayout): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: l.network,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: l.podCidr }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: `${l.dir}/cni/ipam`,
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall' },
      ],
    },
    null,
    2,
  )}\n`;
}

export interface KubeletFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly resolvConf: string;
}

/** KubeletConfiguration: cgroupfs on cgroup v1, webhook authn/authz, no swap or kernel checks. */
export function kubeletConfig(l: NodeLayout, f: KubeletFiles): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${l.nodeIp}
port: ${l.kubeletPort}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: ${f.cert}
tlsPrivateKeyFile: ${f.key}
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: ${f.ca} }
authorization:
  mode: Webhook
# This machine runs cgroup v1, which Kubernetes 1.35+ refuses unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: ${l.cgroupRoot}
containerRuntimeEndpoint: unix://${l.containerdSocket}
clusterDomain: ${CLUSTER_DOMAIN}
clusterDNS: [${l.clusterDns}]
resolvConf: ${f.resolvConf}
podLogsDir: ${l.dir}/pod-logs
failSwapOn: false
# Lowering the kubelet's own oom_score_adj needs CAP_SYS_RESOURCE, which this VM does not grant.
oomScoreAdj: 0
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
staticPodPath: ""
maxPods: 110
`;
}

/** KubeProxyConfiguration: iptables mode, without touching host-wide conntrack sysctls. */
export function kubeProxyConfig(l: NodeLayout, kubeconfig: string): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${kubeconfig}
hostnameOverride: ${l.name}
mode: iptables
clusterCIDR: ${l.podCidr}
bindAddress: ${l.nodeIp}
healthzBindAddress: ${l.nodeIp}:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["${l.nodeIp}/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
iptables:
  localhostNodePorts: false
  minSyncPeriod: 1s
  syncPeriod: 30s
`;
}

/** Cluster DNS for Services and pods; names outside the cluster are not answered (no upstream). */
export function corefile(l: NodeLayout, kubeconfig: string): string {
  return `.:53 {
    bind ${l.nodeIp}
    errors
    health ${l.nodeIp}:8080
    ready ${l.nodeIp}:8181
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
`;
}

/**
 * What the node's host processes need from the API: the kube-dns Service with an EndpointSlice
 * to CoreDNS on the node's address, CoreDNS's and the provisioner's RBAC, the default StorageClass.
 */
export function clusterObjects(l: NodeLayout): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: { k8s-app: kube-dns, kubernetes.io/name: CoreDNS }
spec:
  clusterIP: ${l.clusterDns}
  ports:
  - { name: dns, port: 53, protocol: UDP, targetPort: 53 }
  - { name: dns-tcp, port: 53, protocol: TCP, targetPort: 53 }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-${l.name}
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: kvstore-test-node
addressType: IPv4
ports:
- { name: dns, port: 53, protocol: UDP }
- { name: dns-tcp, port: 53, protocol: TCP }
endpoints:
- addresses: ["${l.nodeIp}"]
  conditions: { ready: true }
  nodeName: ${l.name}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects:
- { apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns" }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "kvstore-test:local-path-provisioner" }
rules:
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "kvstore-test:local-path-provisioner" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kvstore-test:local-path-provisioner" }
subjects:
- { apiGroup: rbac.authorization.k8s.io, kind: User, name: "kvstore-test:local-path-provisioner" }
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${STORAGE_CLASS}
  annotations: { storageclass.kubernetes.io/is-default-class: "true" }
provisioner: ${PROVISIONER}
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
`;
}
