// admin: the node's admin HTTP API (cluster view, decommission, console): one schema, one client call.

export { type AdminAnswer, type AdminTarget, adminCall, adminErrorOf } from './client.ts';
export {
  ADMIN_PATHS,
  type AdminError,
  adminErrorSchema,
  type ClusterInfo,
  type ConsoleView,
  clusterInfoSchema,
  consoleViewSchema,
  type DecommissionState,
  decommissionStateSchema,
  type MemberInfo,
  type MemberPhase,
  memberInfoSchema,
  memberPhaseSchema,
  type NodeStatusView,
  nodeStatusSchema,
  type OwnersView,
  ownersViewSchema,
  type RecommissionResult,
  type RingsView,
  recommissionResultSchema,
  ringsViewSchema,
  type TransferView,
  transferSchema,
} from './schema.ts';
