// controller: reconciles KVClusters into a StatefulSet, Services, PDB, ConfigMap, ServiceMonitor.

export {
  BACKUP_LABEL,
  buildBackupCronJob,
  buildRestoreJob,
  ensureBackup,
  ensureRestore,
  RESTORE_LABEL,
  runStatus,
} from './backup.ts';
export {
  buildClusterSecret,
  ensureClusterSecret,
  GENERATED_SECRET_KEY,
} from './cluster-secret.ts';
export {
  buildConfigMap,
  configHash,
  configMapsOf,
  nodeEnvironment,
  unusedConfigMaps,
} from './configmap.ts';
export type { ControllerContext, ControllerSettings } from './context.ts';
export { buildEvent, createEventRecorder, type EventRecorder, Warnings } from './events.ts';
export { Controller, type ControllerOptions } from './manager.ts';
export * from './names.ts';
export {
  type ClusterView,
  cachedSecretReader,
  createNodeAdmin,
  DEFAULT_POD_URL_TEMPLATE,
  type DecommissionView,
  type NodeAdmin,
  type PodAddress,
  podUrl,
  type SecretReader,
} from './node-admin.ts';
export { type NodeView, type Observed, type PodView, podView } from './observe.ts';
export { buildPdb } from './pdb.ts';
export { type ClusterPlan, currentReplicas, planCluster } from './plan.ts';
export { ensureRecommission, planRecommission } from './recommission.ts';
export { reconcile } from './reconcile.ts';
export {
  ensureResizeRestart,
  planResizeRestart,
  type ResizeRestartPlan,
} from './resize-restart.ts';
export {
  clusterHealth,
  type Health,
  planRollout,
  type RolloutPlan,
  readyRefusers,
  rolloutHeldMessage,
  safeToTakeDown,
} from './rollout.ts';
export { type LeavingState, planScale, type ScalePlan, type ScaleStep } from './scale.ts';
export { buildServiceMonitor } from './servicemonitor.ts';
export { buildClientService, buildHeadlessService } from './services.ts';
export {
  buildPodTemplate,
  buildStatefulSet,
  checkPeerTlsChange,
  type StatefulSetPlan,
} from './statefulset.ts';
export {
  buildStatus,
  heldStatus,
  phaseMessage,
  phaseOf,
  STARTUP_GRACE_MS,
  stamp,
  statusChanged,
  unreadyTolerance,
} from './status.ts';
export {
  claimWaits,
  compareQuantities,
  ensureVolumes,
  RESIZE_RESTARTED_ANNOTATION,
  templateSize,
} from './volumes.ts';
