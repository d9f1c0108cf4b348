// peer: the node-to-node transport: length-prefixed msgpack frames, multiplexed, pooled.

export { type PeerAddress, parsePeerAddress } from './address.ts';
export {
  FLOOR_RATE,
  PEER_CLIENT_DEFAULTS,
  PeerClient,
  type PeerClientOptions,
  type PeerClientState,
  type PeerRequestOptions,
} from './client.ts';
export {
  decodeRequest,
  decodeResponse,
  encodeError,
  encodeErrorFrame,
  encodeRequest,
  encodeRequestFrame,
  encodeResult,
  encodeResultFrame,
  type RequestMessage,
  type ResponseMessage,
  setRequestDeadline,
  setRequestId,
} from './codec.ts';
export { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, FrameDecoder, frameHeader } from './frame.ts';
export {
  PEER_LANES,
  PEER_LATENCY_BUCKETS,
  type PeerLane,
  type PeerMetrics,
  type PeerSide,
  peerMetrics,
} from './metrics.ts';
export {
  LARGE_FRAME_BYTES,
  PEER_POOL_DEFAULTS,
  PeerPool,
  type PeerPoolOptions,
  type RequestOptions,
} from './pool.ts';
export { PEER_SERVER_DEFAULTS, PeerServer, type PeerServerOptions } from './server.ts';
export type { PeerHandler, PeerRequestContext } from './server-connection.ts';
