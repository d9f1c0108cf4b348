// admin: the node's admin HTTP API (cluster view, decommission): one schema, one client call.

export { type AdminAnswer, type AdminTarget, adminCall, adminErrorOf } from './client.ts';
export {
  ADMIN_PATHS,
  type AdminError,
  adminErrorSchema,
  type ClusterInfo,
  clusterInfoSchema,
  type DecommissionState,
  decommissionStateSchema,
  type MemberInfo,
  memberInfoSchema,
  type NodeStatusView,
  nodeStatusSchema,
  type RecommissionResult,
  recommissionResultSchema,
  type TransferView,
  transferSchema,
} from './schema.ts';
