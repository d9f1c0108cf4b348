// Peer addresses: `host:port` strings as used by --peers, split into host and port.

import { KvError } from '../errors/index.ts';

export interface PeerAddress {
  /** A host name, an IPv4 address, or an IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
}

/**
 * Splits `host:port` (IPv6 only as `[addr]:port`). The port must be an integer 1..65535 and the host
 * non-empty; anything else throws KvError KV_ERR_INVALID_ARGUMENT.
 */
export function parsePeerAddress(address: string): PeerAddress {
  const colon = address.lastIndexOf(':');
  let host = colon > 0 ? address.slice(0, colon) : '';
  const portText = address.slice(colon + 1);
  const bracketed = host.startsWith('[') && host.endsWith(']');
  if (bracketed) host = host.slice(1, -1);
  const port = Number(portText);
  const valid =
    host.length > 0 &&
    !/[[\]]/.test(host) &&
    (bracketed || !host.includes(':')) &&
    /^[0-9]{1,5}$/.test(portText) &&
    port >= 1 &&
    port <= 65535;
  if (!valid) {
    throw new KvError('KV_ERR_INVALID_ARGUMENT', `peer: address ${address} is not host:port`);
  }
  return { host, port };
}
