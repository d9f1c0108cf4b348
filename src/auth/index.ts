// auth: proofs of the cluster secret (HMAC, constant-time checks) for peer connections and admin HTTP.

export {
  ADMIN_AUTH_SCHEME,
  adminAuthorization,
  adminHeaders,
  checkAdminAuthorization,
  PROOF_WINDOW_MS,
} from './hmac.ts';
export {
  answerPeerChallenge,
  checkPeerProof,
  PEER_AUTH_METHODS,
  PEER_NONCE_BYTES,
  type PeerAsk,
  type PeerChallengeState,
  peerHandshake,
} from './peer.ts';
