// auth: proofs of the cluster secret (HMAC, constant-time checks) for peer connections and admin HTTP.

export {
  ADMIN_AUTH_SCHEME,
  ADMIN_COUNTER_WINDOW,
  ADMIN_MAX_NONCES,
  ADMIN_NONCE_PATH,
  ADMIN_NONCE_TTL_MS,
  type AdminCheck,
  AdminGuard,
  type AdminGuardOptions,
  type AdminRequest,
  adminAuthorization,
  adminChallenge,
  bodySha256,
  EMPTY_BODY_SHA256,
  legacyAdminAuthorization,
  parseAdminChallenge,
} from './admin.ts';
export { type AdminEndpoint, adminRequest } from './admin-client.ts';
export {
  answerPeerChallenge,
  checkPeerProof,
  PEER_AUTH_METHODS,
  PEER_NONCE_BYTES,
  type PeerAsk,
  type PeerChallengeState,
  peerHandshake,
} from './peer.ts';
