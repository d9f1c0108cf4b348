// replica: the peer methods nodes call on each other and this node's handler that serves them.

export {
  ADMIN_AUTH_SCHEME,
  adminAuthorization,
  adminHeaders,
  checkAdminAuthorization,
  checkPeerProof,
  type PeerProof,
  PROOF_WINDOW_MS,
  peerProof,
} from './auth.ts';
export {
  createReplicaHandler,
  localScan,
  type ReplicaHandlerOptions,
} from './handler.ts';
export * from './messages.ts';
export { RemoteVersions, type VersionSource } from './versions.ts';
export {
  readApplyDeadline,
  readApplyReply,
  readApplyRequest,
  readGetReply,
  readGetRequest,
  readScanReply,
  readScanRequest,
} from './wire.ts';
