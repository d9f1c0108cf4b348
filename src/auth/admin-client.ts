// The calling side of admin proofs (admin.ts): a nonce per node, asked once and then used with a
// growing counter, renewed when the node says it is stale, and one retry with the new one.

import {
  ADMIN_NONCE_PATH,
  adminAuthorization,
  bodySha256,
  legacyAdminAuthorization,
  parseAdminChallenge,
} from './admin.ts';

/** A node's HTTP port and the cluster secret that proves admin calls (null: none set). */
export interface AdminEndpoint {
  /** `http://host:port`, no trailing slash. */
  readonly base: string;
  readonly secret: string | null;
  /** Abort each request after this long; absent: no limit. */
  readonly timeoutMs?: number;
}

/**
 * How a node is asked: `ask` (not known yet), `nonce` (it issued `nonce`), `legacy` (it predates
 * nonces: /admin/nonce is 404), `open` (it has no secret: its nonce is null).
 */
interface NonceState {
  mode: 'ask' | 'nonce' | 'legacy' | 'open';
  nonce: string;
  nc: number;
  asking: Promise<void> | null;
}

/** Nonces by node and secret; a long-lived caller (the operator) talks to pods that come and go. */
const nonces = new Map<string, NonceState>();
const MAX_NODES = 1024;

function stateOf(base: string, secret: string): NonceState {
  const id = `${base}\n${secret}`;
  let s = nonces.get(id);
  if (s === undefined) {
    if (nonces.size >= MAX_NODES) nonces.delete(nonces.keys().next().value!);
    s = { mode: 'ask', nonce: '', nc: 0, asking: null };
    nonces.set(id, s);
  }
  return s;
}

function signal(e: AdminEndpoint): AbortSignal | null {
  return e.timeoutMs === undefined ? null : AbortSignal.timeout(e.timeoutMs);
}

/** GET /admin/nonce: the node's nonce (`nonce`), none (`open`), or no such path (`legacy`). */
async function ask(e: AdminEndpoint, s: NonceState): Promise<void> {
  const res = await fetch(`${e.base}${ADMIN_NONCE_PATH}`, { signal: signal(e) });
  const text = await res.text();
  if (s.mode !== 'ask') return;
  if (res.status === 404) {
    s.mode = 'legacy';
    return;
  }
  let nonce: unknown = null;
  try {
    nonce = (JSON.parse(text) as { nonce?: unknown }).nonce;
  } catch {
    // not JSON: none
  }
  if (typeof nonce === 'string') {
    Object.assign(s, { mode: 'nonce', nonce, nc: 0 });
  } else s.mode = 'open';
}

/**
 * Sends `method pathAndQuery` (with `body`, if any) to the node, proved when a secret is set: with
 * a nonce the node issued, the proof covers the method, the path with its query as sent, a
 * counter and the body's SHA-256. A 401 whose challenge offers a new nonce (the one used is
 * stale: too old, the node restarted; or none was used) is answered once more with it. A node
 * that predates nonces (its /admin/nonce is 404: during an upgrade) gets the proof it knows,
 * which only such nodes accept. Resolves with the response, whatever its status.
 */
export async function adminRequest(
  e: AdminEndpoint,
  method: 'GET' | 'POST',
  pathAndQuery: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const url = new URL(`${e.base}${pathAndQuery}`);
  const send = (authorization?: string) =>
    fetch(url, {
      method,
      headers: authorization === undefined ? headers : { ...headers, authorization },
      signal: signal(e),
      ...(body === undefined ? {} : { body }),
    });
  const secret = e.secret;
  if (!secret) return send();
  const s = stateOf(e.base, secret);
  const target = `${url.pathname}${url.search}`;
  const hash = bodySha256(body);
  for (let attempt = 0; ; attempt++) {
    if (s.mode === 'ask') {
      s.asking ??= ask(e, s).finally(() => {
        s.asking = null;
      });
      await s.asking;
    }
    let used: string | null = null;
    let authorization: string | undefined;
    if (s.mode === 'nonce') {
      used = s.nonce;
      const nc = ++s.nc;
      authorization = adminAuthorization(secret, {
        method,
        target,
        nonce: used,
        nc,
        bodySha256: hash,
      });
    } else if (s.mode === 'legacy') {
      authorization = legacyAdminAuthorization(secret, method, url.pathname);
    }
    const res = await send(authorization);
    if (res.status !== 401 || attempt > 0) return res;
    const challenge = parseAdminChallenge(res.headers.get('www-authenticate'));
    if (challenge === null || (used !== null && !challenge.stale)) return res;
    await res.arrayBuffer();
    // Another call may have renewed it meanwhile: then that one is used.
    if (used === null || s.nonce === used) {
      Object.assign(s, { mode: 'nonce', nonce: challenge.nonce, nc: 0 });
    }
  }
}
