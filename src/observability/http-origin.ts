// Where a request to the HTTP port comes from: a page of another site, or a page that reached the
// node under another site's name. Such requests never run an admin route.

import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * Whether a browser sent this request from another site's page (a cross-site form POST needs no
 * preflight). Such a request never runs an admin route: a page elsewhere must not drive a node
 * through the browser of someone who can reach it.
 */
export function crossSite(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true;
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}

/** The host name a request's Host header names, lower case, without its port or IPv6 brackets. */
export function hostOf(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? h.length : h.indexOf(']'));
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/**
 * Whether a browser page sent this request to the node under a host name that is not its own:
 * not an IP address, `localhost` (or a name under it) or this machine's host name. A page whose
 * name an attacker made resolve to the node's address (DNS rebinding) is same-origin with it, so
 * crossSite() lets it through, and without a cluster secret it could read GET /admin/backup
 * (every key and value) or decommission the node. A page fetch says so (Sec-Fetch-Site or
 * Origin); kvctl, the operator, curl and Prometheus send neither and call by any name, and an
 * address typed into the browser (Sec-Fetch-Site: none) is its user's own.
 */
export function reboundHost(req: IncomingMessage, localNames: ReadonlySet<string>): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site === 'none' || (site === undefined && req.headers.origin === undefined)) return false;
  const host = hostOf(req.headers.host);
  return !(isIP(host) !== 0 || localNames.has(host) || host.endsWith('.localhost'));
}
