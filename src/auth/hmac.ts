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

/** The Authorization scheme of the node's HTTP admin endpoints when a cluster secret is set. */
export const ADMIN_AUTH_SCHEME = 'KVSTORE-HMAC';

function adminMac(secret: string, method: string, path: string, t: number): string {
  return createHmac('sha256', secret).update(`kvstore-admin:${method} ${path}:${t}`).digest('hex');
}

/**
 * The Authorization header value for one admin request (`KVSTORE-HMAC t=<ms>,mac=<hex>`): an
 * HMAC of the method, the path and a timestamp, so the secret never crosses the wire and a proof
 * is good for that one endpoint for PROOF_WINDOW_MS.
 */
export function adminAuthorization(
  secret: string,
  method: string,
  path: string,
  now = Date.now(),
): string {
  return `${ADMIN_AUTH_SCHEME} t=${now},mac=${adminMac(secret, method, path, now)}`;
}

/** Request headers for one admin call: its Authorization proof, or none without a secret. */
export function adminHeaders(
  secret: string | null,
  method: string,
  path: string,
): Record<string, string> {
  return secret ? { authorization: adminAuthorization(secret, method, path) } : {};
}

/** Whether `header` is a valid adminAuthorization() for this method and path, now. */
export function checkAdminAuthorization(
  secret: string,
  header: string | undefined,
  method: string,
  path: string,
  now = Date.now(),
): boolean {
  const m = /^KVSTORE-HMAC t=(\d{1,16}),mac=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now - t) > PROOF_WINDOW_MS) return false;
  const want = Buffer.from(adminMac(secret, method, path, t), 'hex');
  return timingSafeEqual(Buffer.from(m[2]!, 'hex'), want);
}
