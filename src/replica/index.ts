// replica: the peer methods, the handler that serves them, and Replicas that reach any replica by name.

export { createReplicaHandler, type ReplicaHandlerOptions, type Reroute } from './handler.ts';
export * from './messages.ts';
export {
  type ApplyHow,
  COALESCE_MAX_BYTES,
  type PeerCall,
  type ReadTerms,
  Replicas,
} from './replicas.ts';
export {
  localScan,
  SCAN_PIECE_RECORDS,
  SCAN_REMOTE_RECORDS,
  SCAN_REPLY_TIMEOUT_SHARE,
  SCAN_ROUND_RECORDS,
  SCAN_SLOTS,
  SCAN_TURN_RECORDS,
  type ScanStage,
  ScanWork,
} from './scan.ts';
export { RemoteVersions, type VersionSource } from './versions.ts';
export {
  readApplyDeadline,
  readApplyPlacement,
  readApplyReply,
  readApplyRequest,
  readGetManyReply,
  readGetManyRequest,
  readGetReply,
  readGetRequest,
  readHelloRequest,
  readRingFence,
  readScanReply,
  readScanRequest,
  readSyncedReply,
  type Synced,
} from './wire.ts';
