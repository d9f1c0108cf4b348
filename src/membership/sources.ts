// Peer sources: the member address type, `--peers` parsing, the static source and `--discovery` parsing.

import { isIPv4, isIPv6 } from 'node:net';
import { KvError } from '../errors/index.ts';
import { NODE_NAME } from '../storage/index.ts';

/** A member as a source reports it. `name` is the stable identity (pod name, compose service), never an IP. */
export interface MemberAddress {
  /** Stable node name; matches that node's `--node-name`. */
  readonly name: string;
  /** Host name or IP to dial; an IPv6 address is bare (`::1`), without brackets. */
  readonly host: string;
  /** The member's peer port (1..65535). */
  readonly peerPort: number;
}

/** peerAddressOf's answers, by the (immutable) address object asked about. */
const peerAddresses = new WeakMap<Pick<MemberAddress, 'host' | 'peerPort'>, string>();

/**
 * `host:port` of a member's peer port, `[addr]:port` for IPv6: the peer pool's address. The same
 * string for the same object every time: every peer request names its member's address, and a
 * string made anew each time had to be flattened and hashed again for the pool's lookup.
 */
export function peerAddressOf(m: Pick<MemberAddress, 'host' | 'peerPort'>): string {
  let address = peerAddresses.get(m);
  if (address === undefined) {
    address = m.host.includes(':') ? `[${m.host}]:${m.peerPort}` : `${m.host}:${m.peerPort}`;
    peerAddresses.set(m, address);
  }
  return address;
}

/** Where the member list comes from. */
export interface PeerSource {
  /**
   * The current member list: sorted by name (code-unit order), one entry per name.
   * Rejects only when the source itself fails (DNS server unreachable, SERVFAIL, timeout);
   * a name that does not exist or has no records resolves to [].
   */
  resolve(): Promise<MemberAddress[]>;
  /**
   * How many addresses the last answer of resolve() listed that it could not name (and so left
   * out): A/AAAA addresses with no PTR name that did not answer who they are, never named before.
   * Absent: the source names every member it lists.
   */
  unnamed?(): number;
  /** For logs: `static(3)`, `dns:kvstore-headless.default.svc.cluster.local`. */
  readonly description: string;
}

/** A node name: what `--node-name` accepts (storage/ owns it: saved documents hold names too). */
export { NODE_NAME };

const HOST_NAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const DNS_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/**
 * Sorts by name and keeps one member per name. Among members with the same name the one kept is
 * the first by: peerPort equal to `preferPort` (when given), then `rank` (lower first, e.g. SRV
 * priority), then host, then peerPort. The result does not depend on the input order.
 */
export function pickByName(
  members: readonly MemberAddress[],
  preferPort?: number,
  rank: (m: MemberAddress) => number = () => 0,
): MemberAddress[] {
  const key = (m: MemberAddress): [string, number, number, string, number] => [
    m.name,
    m.peerPort === preferPort ? 0 : 1,
    rank(m),
    m.host,
    m.peerPort,
  ];
  const sorted = [...members].sort((a, b) => compareTuples(key(a), key(b)));
  return sorted.filter((m, i) => i === 0 || sorted[i - 1]!.name !== m.name);
}

function compareTuples(a: readonly (string | number)[], b: readonly (string | number)[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return 0;
}

function invalid(message: string): KvError {
  return new KvError('KV_ERR_INVALID_ARGUMENT', `membership: ${message}`);
}

/**
 * Parses `--peers name=host:peerPort,...` into members, in the order given.
 * - Whitespace around entries and around `=` and `:` is ignored; empty entries (`a,,b`, a
 *   trailing comma, an all-blank spec) are skipped, so `''` gives [].
 * - name: a node name (see NODE_NAME); host: a host name, an IPv4 address, or an IPv6 address in
 *   brackets (`[::1]:7946`, returned as `::1`); peerPort: a decimal integer 1..65535.
 * - Throws KvError KV_ERR_INVALID_ARGUMENT naming the entry (1-based) and the reason for a
 *   malformed entry, a duplicate name, or two names at the same host:peerPort.
 */
export function parsePeers(spec: string): MemberAddress[] {
  const members: MemberAddress[] = [];
  const entries = spec.split(',');
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!.trim();
    if (entry === '') continue;
    const member = parseEntry(entry, i + 1);
    const clash = members.find(
      (m) => m.name === member.name || (m.host === member.host && m.peerPort === member.peerPort),
    );
    if (clash !== undefined) {
      const what = clash.name === member.name ? 'name' : 'address';
      throw invalid(
        `--peers (KV_PEERS) entry ${i + 1} '${entry}' repeats the ${what} of '${clash.name}'`,
      );
    }
    members.push(member);
  }
  return members;
}

function parseEntry(entry: string, index: number): MemberAddress {
  const bad = (why: string) =>
    invalid(
      `--peers (KV_PEERS) entry ${index} '${entry}' is malformed: ${why} (expected name=host:peerPort)`,
    );
  const eq = entry.indexOf('=');
  if (eq === -1) throw bad("missing '='");
  const name = entry.slice(0, eq).trim();
  const address = entry.slice(eq + 1).trim();
  if (name === '') throw bad('empty name');
  if (name.length > 253 || !NODE_NAME.test(name)) throw bad(`invalid name '${name}'`);
  const colon = address.lastIndexOf(':');
  if (colon === -1) throw bad("missing ':peerPort'");
  const host = parseHost(address.slice(0, colon).trim(), bad);
  const portText = address.slice(colon + 1).trim();
  const peerPort = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || peerPort < 1 || peerPort > 65535) {
    throw bad(`invalid port '${portText}' (1..65535)`);
  }
  return { name, host, peerPort };
}

function parseHost(text: string, bad: (why: string) => KvError): string {
  if (text === '') throw bad('empty host');
  if (text.startsWith('[')) {
    const inner = text.endsWith(']') ? text.slice(1, -1) : '';
    if (!isIPv6(inner)) throw bad(`invalid IPv6 address '${text}'`);
    return inner;
  }
  if (text.includes(':')) throw bad(`IPv6 address '${text}' needs brackets: [${text}]:port`);
  if (isIPv4(text)) return text;
  if (/^[\d.]+$/.test(text) || text.length > 253 || !HOST_NAME.test(text)) {
    throw bad(`invalid host '${text}'`);
  }
  return text;
}

/**
 * A source that always reports the given members: `resolve()` returns a new array, sorted by
 * name, one per name (duplicates resolved by pickByName). Description: `static(<count>)` with
 * the count after deduplication.
 */
export function staticSource(members: readonly MemberAddress[]): PeerSource {
  const list = pickByName(members.map((m) => ({ ...m })));
  return {
    description: `static(${list.length})`,
    resolve: async () => list.map((m) => ({ ...m })),
  };
}

/**
 * Checks a DNS name to query: labels of letters, digits, `_` and `-` (so `_peer._tcp.svc` is
 * allowed), at most 253 characters; one trailing dot is dropped. Throws KV_ERR_INVALID_ARGUMENT.
 */
export function checkDnsName(raw: string, what: string): string {
  const name = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (name === '' || name.length > 253 || !name.split('.').every((l) => DNS_LABEL.test(l))) {
    throw invalid(`${what}: '${raw}' is not a valid DNS name`);
  }
  return name;
}

/**
 * Parses the `--discovery` value. `dns:<name>` (surrounding whitespace ignored, `<name>` checked by
 * checkDnsName, trailing dot dropped) gives `{ kind: 'dns', name }`. Anything else throws
 * KV_ERR_INVALID_ARGUMENT.
 */
export function parseDiscovery(spec: string): { kind: 'dns'; name: string } {
  const text = spec.trim();
  if (!text.startsWith('dns:')) {
    throw invalid(`--discovery (KV_DISCOVERY) '${spec}' is not supported: expected dns:<name>`);
  }
  return { kind: 'dns', name: checkDnsName(text.slice('dns:'.length).trim(), '--discovery') };
}
