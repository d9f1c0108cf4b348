// auth: proofs of the cluster secret (HMAC, constant-time checks) for peer connections and admin HTTP.

export {
  ADMIN_AUTH_SCHEME,
  adminAuthorization,
  adminHeaders,
  checkAdminAuthorization,
  checkPeerProof,
  type PeerProof,
  PROOF_WINDOW_MS,
  peerProof,
} from './hmac.ts';
