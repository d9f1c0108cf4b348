// One admin call to a node's HTTP port: the cluster-secret proof, the request, the JSON answer.

import { adminRequest } from '../auth/index.ts';
import { adminErrorSchema } from './schema.ts';

/** A node's HTTP port, and the cluster secret that proves admin calls (null: none set). */
export interface AdminTarget {
  /** `http://host:port`, no trailing slash. */
  readonly base: string;
  readonly secret: string | null;
  /** Abort the call after this long; absent: no limit. */
  readonly timeoutMs?: number;
}

/** What a node answered: the HTTP status and the body (parsed JSON, or the text when not JSON). */
export interface AdminAnswer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * Calls `method path` (path and query) on `target` with its HMAC proof (none without a secret;
 * adminRequest: a nonce from the node, renewed when stale). Resolves with any status; rejects
 * when the node does not answer (refused, timed out).
 */
export async function adminCall(
  target: AdminTarget,
  method: 'GET' | 'POST',
  path: string,
): Promise<AdminAnswer> {
  const res = await adminRequest(target, method, path);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body };
}

/** The `error` of an AdminError body; undefined when the body is not one. */
export function adminErrorOf(body: unknown): string | undefined {
  const r = adminErrorSchema.safeParse(body);
  return r.success ? r.data.error : undefined;
}
