// DNS peer source: members from the SRV records of a name, or from its A/AAAA records named by PTR or identify.

import { promises as dns, type SrvRecord } from 'node:dns';
import { isIPv4 } from 'node:net';
import { KvError } from '../errors/index.ts';
import { ipv6Hex } from '../net/address.ts';
import type { AddressBook } from './address-book.ts';
import {
  checkDnsName,
  type MemberAddress,
  NODE_NAME,
  type PeerSource,
  pickByName,
} from './sources.ts';

/** Options of dnsSource. */
export interface DnsSourceOptions {
  /**
   * The name to query, queried exactly as given: resolv.conf search domains are NOT applied, so
   * pass the fully qualified name (`kvstore-headless.default.svc.cluster.local`).
   */
  readonly name: string;
  /** Peer port of members found by A/AAAA records (SRV records carry their own port). */
  readonly defaultPeerPort: number;
  /** DNS servers (`127.0.0.1:5353`, `[::1]:53`); the system's resolv.conf servers when absent. */
  readonly servers?: readonly string[];
  /** Bound on the DNS queries of one resolve() call, in ms (default 5000). */
  readonly timeoutMs?: number;
  /**
   * Names an address that has no usable PTR record, by asking the peer at host:port. Returns the
   * peer's node name, or null when it cannot tell. A rejection counts as null. It is not bounded
   * by timeoutMs: it must time out by itself.
   */
  readonly identify?: (host: string, port: number) => Promise<string | null>;
  /**
   * Keeps the names of A/AAAA addresses across restarts: loaded when the source is made, saved
   * whenever they change. Without it a restarted node cannot name a listed peer that is down
   * (no PTR, identify fails) and would take it for gone.
   */
  readonly names?: AddressBook;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** c-ares codes meaning "no such name" (NXDOMAIN) or "no records of that type" (NODATA). */
const NOT_FOUND = new Set<unknown>([dns.NOTFOUND, dns.NODATA]);
/**
 * The other codes a resolver query fails with (its server, the network, the answer, the
 * deadline): a failure outside the node, KV_ERR_DISCOVERY. Anything else is KV_ERR_INTERNAL.
 */
const DNS_FAILED = new Set<unknown>([
  dns.FORMERR,
  dns.SERVFAIL,
  dns.NOTIMP,
  dns.REFUSED,
  dns.BADQUERY,
  dns.BADNAME,
  dns.BADFAMILY,
  dns.BADRESP,
  dns.CONNREFUSED,
  dns.TIMEOUT,
  dns.EOF,
  dns.FILE,
  dns.BADSTR,
  dns.CANCELLED,
]);
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$/;

/**
 * A source reading members from DNS (`--discovery dns:<name>`). Each resolve() does, with a
 * fresh resolver (so no answer is cached between calls):
 * 1. SRV query on `<name>` itself (no `_peer._tcp.` is prepended). Each record becomes a member:
 *    name = the first label of the target (`kvstore-0.kvstore-headless.ns.svc.cluster.local` ->
 *    `kvstore-0`), host = the target, peerPort = the record's port. Targets `.` or whose first
 *    label is not a node name are skipped. If SRV records exist, they are the answer.
 * 2. No SRV records (NXDOMAIN or NODATA): a name whose first label starts with `_` (a service
 *    name like `_peer._tcp.svc...`) resolves to []. Any other name falls back to A and AAAA
 *    queries; each address is a member with host = the address, peerPort = defaultPeerPort, and
 *    name = the first label of its PTR record (PTR names under `<name>` preferred, then code-unit
 *    order); with no usable PTR (none, or any PTR failure), `identify(host, defaultPeerPort)`
 *    names it; if that gives null (or is absent), the name this source last gave the address
 *    (while it stayed listed; from `names` after a restart) is kept, so a listed member that
 *    does not answer for a moment (paused, partitioned, restarting, down while this node
 *    restarted) stays a member (down) rather than leaving the ring; an address never named is
 *    skipped. A remembered name that another listed address was just given (by PTR or
 *    identify) is dropped: the member moved. The names are saved to `names` when they change.
 * The result is sorted by name with one member per name (pickByName; defaultPeerPort preferred,
 * then lower SRV priority, then host). NXDOMAIN/NODATA everywhere gives []. Any other DNS
 * failure of SRV, A or AAAA (SERVFAIL, REFUSED, unreachable server, no answer within timeoutMs)
 * rejects with KvError KV_ERR_DISCOVERY naming the query, with the resolver error as its cause
 * (an error the resolver has no DNS code for: KV_ERR_INTERNAL).
 * Throws KV_ERR_INVALID_ARGUMENT at once for an invalid name, port or server.
 */
export function dnsSource(opts: DnsSourceOptions): PeerSource {
  const o = { ...opts, name: checkDnsName(opts.name, 'dns source') };
  if (!Number.isInteger(o.defaultPeerPort) || o.defaultPeerPort < 1 || o.defaultPeerPort > 65535) {
    throw invalid(`dns source: invalid peer port ${o.defaultPeerPort}`);
  }
  makeResolver(o); // throws now for a malformed server
  const servers = o.servers?.length ? `@${o.servers.join(',')}` : '';
  // Names of listed addresses, from earlier answers (and earlier runs): see step 2.
  const known = o.names?.load() ?? new Map<string, string>();
  const last = { unnamed: 0 };
  return {
    description: `dns:${o.name}${servers}`,
    resolve: () => resolveOnce(o, known, last),
    unnamed: () => last.unnamed,
  };
}

/** One resolve() call's resolver and the promise that rejects when its time is up. */
interface Query {
  readonly opts: DnsSourceOptions;
  readonly resolver: dns.Resolver;
  readonly deadline: Promise<never>;
  /** address -> the name it had when last named (kept while the address stays listed). */
  readonly known: Map<string, string>;
  /** Set by a lookup that answered: the listed addresses it could not name. */
  readonly last: { unnamed: number };
}

async function resolveOnce(
  opts: DnsSourceOptions,
  known: Map<string, string>,
  last: { unnamed: number },
): Promise<MemberAddress[]> {
  const resolver = makeResolver(opts);
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: dns.TIMEOUT }));
      resolver.cancel();
    }, ms);
  });
  deadline.catch(() => {}); // rejects after the lookup finished when nobody races it any more
  try {
    return await lookup({ opts, resolver, deadline, known, last });
  } finally {
    clearTimeout(timer);
  }
}

function makeResolver(opts: DnsSourceOptions): dns.Resolver {
  const ms = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Two tries with a per-try timeout of a quarter of the budget; the deadline caps the rest.
  const resolver = new dns.Resolver({ timeout: Math.max(50, Math.floor(ms / 4)), tries: 2 });
  if (opts.servers?.length) {
    try {
      resolver.setServers([...opts.servers]);
    } catch (err) {
      throw invalid(`dns source: invalid servers ${JSON.stringify(opts.servers)}`, err);
    }
  }
  return resolver;
}

async function lookup(q: Query): Promise<MemberAddress[]> {
  const { name, defaultPeerPort } = q.opts;
  const srv = await ask(q, 'SRV', name, () => q.resolver.resolveSrv(name));
  if (srv.length > 0 || name.startsWith('_')) {
    q.last.unnamed = 0;
    return fromSrv(srv, defaultPeerPort);
  }
  const [v4, v6] = await Promise.all([
    ask(q, 'A', name, () => q.resolver.resolve4(name)),
    ask(q, 'AAAA', name, () => q.resolver.resolve6(name)),
  ]);
  const hosts = [...new Set([...v4, ...v6])];
  const before = JSON.stringify([...q.known]);
  for (const host of [...q.known.keys()]) if (!hosts.includes(host)) q.known.delete(host);
  const named = (await Promise.all(hosts.map((host) => nameAddress(q, host)))).filter(
    (n) => n !== null,
  );
  const fresh = new Set(named.filter((n) => !n.remembered).map((n) => n.member.name));
  const members: MemberAddress[] = [];
  for (const { member, remembered } of named) {
    if (remembered && fresh.has(member.name)) q.known.delete(member.host);
    else members.push(member);
  }
  if (JSON.stringify([...q.known]) !== before) q.opts.names?.save(q.known);
  q.last.unnamed = hosts.length - named.length;
  return pickByName(members, defaultPeerPort);
}

/**
 * Runs one DNS query within the deadline: NXDOMAIN/NODATA -> [], DNS failures -> KvError
 * KV_ERR_DISCOVERY, anything else (not the resolver's) -> KV_ERR_INTERNAL.
 */
async function ask<T>(q: Query, type: string, of: string, run: () => Promise<T[]>): Promise<T[]> {
  try {
    return await Promise.race([run(), q.deadline]);
  } catch (err) {
    const code = codeOf(err);
    if (NOT_FOUND.has(code)) return [];
    const text = `membership: dns:${q.opts.name}: ${type} query for ${of} failed (${code ?? err})`;
    const kind = DNS_FAILED.has(code) ? 'KV_ERR_DISCOVERY' : 'KV_ERR_INTERNAL';
    throw new KvError(kind, text, { cause: err });
  }
}

function fromSrv(records: readonly SrvRecord[], defaultPeerPort: number): MemberAddress[] {
  const priority = new Map<MemberAddress, number>();
  for (const r of records) {
    const host = r.name.endsWith('.') ? r.name.slice(0, -1) : r.name;
    const name = firstLabel(host);
    if (name !== null) priority.set({ name, host, peerPort: r.port }, r.priority);
  }
  return pickByName([...priority.keys()], defaultPeerPort, (m) => priority.get(m) ?? 0);
}

/**
 * The member at an A/AAAA address, named by PTR, else identify, else its last name
 * (`remembered`); or null.
 */
async function nameAddress(
  q: Query,
  host: string,
): Promise<{ member: MemberAddress; remembered: boolean } | null> {
  const peerPort = q.opts.defaultPeerPort;
  const asked = (await ptrName(q, host)) ?? (await identifyName(q.opts, host, peerPort));
  const name = asked ?? q.known.get(host) ?? null;
  if (name === null) return null;
  q.known.set(host, name);
  return { member: { name, host, peerPort }, remembered: asked === null };
}

/** The first label of the best PTR name of `ip`; null when there is none or the query failed. */
async function ptrName(q: Query, ip: string): Promise<string | null> {
  let names: string[];
  try {
    names = await ask(q, 'PTR', ip, () => q.resolver.resolvePtr(reverseName(ip)));
  } catch {
    return null; // a failed PTR query only means identify has to name the address
  }
  const zone = q.opts.name.toLowerCase();
  const under = (n: string) => {
    const rest = n.slice(n.indexOf('.') + 1).toLowerCase();
    return rest === zone || rest.startsWith(`${zone}.`) ? 0 : 1;
  };
  const sorted = names
    .map((n) => (n.endsWith('.') ? n.slice(0, -1) : n))
    .sort((a, b) => under(a) - under(b) || (a < b ? -1 : a > b ? 1 : 0));
  for (const n of sorted) {
    const label = firstLabel(n);
    if (label !== null) return label;
  }
  return null;
}

async function identifyName(
  opts: DnsSourceOptions,
  host: string,
  port: number,
): Promise<string | null> {
  if (opts.identify === undefined) return null;
  try {
    const name = await opts.identify(host, port);
    return name !== null && name.length <= 253 && NODE_NAME.test(name) ? name : null;
  } catch {
    return null;
  }
}

function firstLabel(host: string): string | null {
  const label = host.split('.')[0] ?? '';
  return LABEL.test(label) ? label : null;
}

/** The PTR query name of an address: `4.3.2.1.in-addr.arpa`, or 32 nibbles + `.ip6.arpa`. */
export function reverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${[...ipv6Hex(ip)].reverse().join('.')}.ip6.arpa`;
}

/** An IPv6 address as 32 hex digits (`::1` -> `000...01`); accepts `::`, embedded IPv4, `%zone`. */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function invalid(message: string, cause?: unknown): KvError {
  return new KvError('KV_ERR_INVALID_ARGUMENT', `membership: ${message}`, { cause });
}
