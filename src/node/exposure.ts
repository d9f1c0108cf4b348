// What a node tells at start about ports it opens beyond loopback without authentication.

import { isIP } from 'node:net';
import type { Config } from '../config/index.ts';
import type { Secrets } from './secrets.ts';

/** One port listening beyond loopback with nothing to stop whoever reaches it. */
export interface Exposure {
  readonly option: '--port' | '--http-port' | '--peer-port';
  readonly host: string;
  /** What anyone who reaches the port can do, and what closes it. */
  readonly risk: string;
}

/**
 * True for an address only this machine reaches: `localhost`, 127.0.0.0/8, `::1` (and
 * `::ffff:127.x.y.z`). Any other name or address (0.0.0.0, ::, an interface's, a host name) may
 * be reached from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * The ports of `config` that listen beyond loopback without authentication: the client port
 * without a password (TLS alone authenticates no client), the peer port without a cluster secret
 * or mutual TLS, and the HTTP port's admin endpoints without a cluster secret.
 */
export function exposures(config: Config, secrets: Secrets): Exposure[] {
  const out: Exposure[] = [];
  if (!isLoopbackHost(config.host) && secrets.password === null) {
    out.push({
      option: '--port',
      host: config.host,
      risk: 'anyone who reaches the client port can read and write every key: set KV_PASSWORD (docs/security.md)',
    });
  }
  if (!isLoopbackHost(config.peerHost) && secrets.clusterSecret === null && !secrets.peerTls) {
    out.push({
      option: '--peer-port',
      host: config.peerHost,
      risk: 'anyone who reaches the peer port can read and write every key as a member would: set KV_CLUSTER_SECRET on every node (docs/security.md)',
    });
  }
  if (!isLoopbackHost(config.httpHost) && secrets.clusterSecret === null) {
    out.push({
      option: '--http-port',
      host: config.httpHost,
      risk: 'anyone who reaches the HTTP port can download every key (/admin/backup), restore, and decommission the node: set KV_CLUSTER_SECRET (docs/security.md)',
    });
  }
  return out;
}
