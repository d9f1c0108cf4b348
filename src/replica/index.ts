// replica: the peer methods, the handler that serves them, and Replicas that reach any replica by name.

export { createReplicaHandler, type ReplicaHandlerOptions, type Reroute } from './handler.ts';
export * from './messages.ts';
export { type ApplyHow, type PeerCall, type ReadTerms, Replicas } from './replicas.ts';
export { localScan } from './scan.ts';
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
} from './wire.ts';
