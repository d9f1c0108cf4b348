// What kvctl backup and restore share: signed admin HTTP calls and a progress line per second.

import { writeFileSync } from 'node:fs';
import { adminRequest } from '../auth/index.ts';
import type { AdminTarget } from './admin.ts';

/**
 * Calls an admin endpoint (signed when a cluster secret is set: the path with its query and the
 * body, adminRequest). Resolves with the response when its status is 2xx; otherwise throws with
 * the node's error message.
 */
export async function adminFetch(
  target: AdminTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: Buffer | string,
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (typeof body === 'string') headers['content-type'] = 'application/json';
  else if (body) headers['content-type'] = 'application/octet-stream';
  const res = await adminRequest(target, method, path, body, headers);
  if (res.ok) return res;
  const text = await res.text();
  let error = text.trim();
  try {
    error = (JSON.parse(text) as { error?: string }).error ?? error;
  } catch {
    // Not JSON: the text as it came.
  }
  if (res.status === 401) error = `${error}; set KVCTL_CLUSTER_SECRET`;
  throw new Error(`${error} (HTTP ${res.status})`);
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

/** Prints `<what>: N records, X MiB (Y MiB/s)` at most once a second, and once at the end. */
export class Progress {
  readonly #out: NodeJS.WritableStream;
  readonly #what: string;
  readonly #started = performance.now();
  #printed = performance.now();
  readonly #total: string;

  constructor(out: NodeJS.WritableStream, what: string, totalRecords?: number) {
    this.#out = out;
    this.#what = what;
    this.#total = totalRecords === undefined ? '' : ` of ${totalRecords}`;
  }

  update(records: number, bytes: number): void {
    const now = performance.now();
    if (now - this.#printed < 1000) return;
    this.#printed = now;
    this.#print(records, bytes, now);
  }

  done(records: number, bytes: number): void {
    this.#print(records, bytes, performance.now());
  }

  #print(records: number, bytes: number, now: number): void {
    const rate = bytes / Math.max(0.001, (now - this.#started) / 1000);
    this.#out.write(
      `${this.#what}: ${records}${this.#total} records, ${mib(bytes)} MiB (${mib(rate)} MiB/s)\n`,
    );
  }
}

/**
 * Writes the outcome as one JSON object to `file` (--summary-file), when given: a Kubernetes Job
 * points it at /dev/termination-log, where the operator reads it. Never fails the command.
 */
export function writeSummary(file: string | undefined, summary: Record<string, unknown>): void {
  if (file === undefined) return;
  try {
    writeFileSync(file, `${JSON.stringify(summary)}\n`);
  } catch {
    // The summary is a courtesy: the exit code and stderr say the same.
  }
}
