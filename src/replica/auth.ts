// Peers prove they know the cluster secret: an HMAC of a timestamp, checked in constant time.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { KvError } from '../errors/index.ts';

/** How far a proof's timestamp may be from the checking node's clock. */
export const PROOF_WINDOW_MS = 5 * 60_000;

export interface PeerProof {
  readonly t: number;
  readonly mac: Buffer;
}

function mac(secret: string, t: number): Buffer {
  return createHmac('sha256', secret).update(`kvstore-peer-auth:${t}`).digest();
}

/** The body of the `auth` request a node sends first on every peer connection. */
export function peerProof(secret: string, now = Date.now()): PeerProof {
  return { t: now, mac: mac(secret, now) };
}

/**
 * Checks a proof: the HMAC must match and the timestamp be within PROOF_WINDOW_MS. The secret
 * never crosses the wire. Without TLS a proof could be replayed within the window by someone
 * who can see the traffic: use peer TLS on untrusted networks. Throws KV_ERR_NOAUTH.
 */
export function checkPeerProof(secret: string, body: unknown, now = Date.now()): void {
  const p = body as Partial<PeerProof> | null;
  const t = p?.t;
  const got = p?.mac;
  if (
    typeof t !== 'number' ||
    !(got instanceof Uint8Array) ||
    Math.abs(now - t) > PROOF_WINDOW_MS
  ) {
    throw new KvError('KV_ERR_NOAUTH', 'replica: peer authentication failed');
  }
  const want = mac(secret, t);
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw new KvError('KV_ERR_NOAUTH', 'replica: peer authentication failed');
  }
}
