// Admin HTTP calls prove they know the cluster secret: an HMAC of a timestamp, checked in constant
// time. Peer connections: peer.ts.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far an admin proof's timestamp may be from the checking node's clock. */
export const PROOF_WINDOW_MS = 5 * 60_000;

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
