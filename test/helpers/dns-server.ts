// A real UDP DNS server (127.0.0.1 unless told) for tests, built on dns-packet, whose records change while it runs.

import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import * as packet from 'dns-packet';

/** An SRV record as the tests set it; priority defaults to 0, weight to 100. */
export interface SrvTarget {
  readonly target: string;
  readonly port: number;
  readonly priority?: number;
}

/** How a failing name answers: that rcode, or `drop` for no answer at all. */
export type Failure = 'SERVFAIL' | 'REFUSED' | 'NOTIMP' | 'FORMERR' | 'drop';

/** A running test DNS server. Names are case-insensitive; a trailing dot is ignored. */
export interface TestDnsServer {
  /** The UDP port on `host`; pass `<host>:<port>` as a resolver server. */
  readonly port: number;
  /** The address it listens on. */
  readonly host: string;
  /** Every question received, in order (`{ name, type }`). */
  readonly queries: readonly { readonly name: string; readonly type: string }[];
  /** Replaces the addresses of `name`: IPv4 ones answer A queries, IPv6 ones AAAA queries. */
  setA(name: string, ips: readonly string[]): void;
  /** Replaces the SRV records of `name`. */
  setSrv(name: string, targets: readonly SrvTarget[]): void;
  /** Replaces the PTR records of an IPv4 address (its `d.c.b.a.in-addr.arpa` name). */
  setPtr(ip: string, names: string | readonly string[]): void;
  /** Removes every record and failure of `name` (an IPv4 address clears its PTR name). */
  clear(name: string): void;
  /** Makes questions about `name` (of `type` only, when given) answer `failure` until clear(name). */
  fail(name: string, failure: Failure, type?: 'A' | 'AAAA' | 'SRV' | 'PTR'): void;
  /** Stops the server; its port is free when this resolves. */
  close(): Promise<void>;
}

interface Records {
  a: string[];
  aaaa: string[];
  srv: SrvTarget[];
  ptr: string[];
}

const RCODES: Record<Exclude<Failure, 'drop'>, number> = {
  FORMERR: 1,
  SERVFAIL: 2,
  NOTIMP: 4,
  REFUSED: 5,
};
const NXDOMAIN = 3;
const TTL = 1;

function key(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function ptrKey(name: string): string {
  return isIPv4(name) ? `${name.split('.').reverse().join('.')}.in-addr.arpa` : key(name);
}

/**
 * Starts a server on `host` (an IPv4 address) and `port` (0: a free port; 53 for processes whose
 * resolv.conf names it, which can give no port: on an address no other test holds). Unknown names
 * answer NXDOMAIN.
 */
export async function startDnsServer(host = '127.0.0.1', port = 0): Promise<TestDnsServer> {
  const records = new Map<string, Records>();
  const failures = new Map<string, Failure>();
  const queries: { name: string; type: string }[] = [];
  const socket = createSocket('udp4');
  const entry = (name: string): Records => {
    const k = key(name);
    const found = records.get(k) ?? { a: [], aaaa: [], srv: [], ptr: [] };
    records.set(k, found);
    return found;
  };
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const reply = answer(msg, records, failures, queries);
    if (reply !== null) socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  return {
    port: socket.address().port,
    host,
    queries,
    setA: (name, ips) => {
      const e = entry(name);
      e.a = ips.filter((ip) => isIPv4(ip));
      e.aaaa = ips.filter((ip) => isIPv6(ip));
    },
    setSrv: (name, targets) => {
      entry(name).srv = [...targets];
    },
    setPtr: (ip, names) => {
      entry(ptrKey(ip)).ptr = typeof names === 'string' ? [names] : [...names];
    },
    clear: (name) => {
      records.delete(ptrKey(name));
      for (const k of [...failures.keys()])
        if (k.split(' ')[0] === ptrKey(name)) failures.delete(k);
    },
    fail: (name, failure, type) => {
      failures.set(type === undefined ? ptrKey(name) : `${ptrKey(name)} ${type}`, failure);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The encoded response to one query, or null to stay silent. */
function answer(
  msg: Buffer,
  records: ReadonlyMap<string, Records>,
  failures: ReadonlyMap<string, Failure>,
  queries: { name: string; type: string }[],
): Buffer | null {
  let query: packet.DecodedPacket;
  try {
    query = packet.decode(msg);
  } catch {
    return null;
  }
  const question = query.questions?.[0];
  if (question === undefined) return null;
  queries.push({ name: question.name, type: question.type });
  const k = key(question.name);
  const failure = failures.get(`${k} ${question.type}`) ?? failures.get(k);
  if (failure === 'drop') return null;
  const found = records.get(k);
  const exists = found !== undefined && Object.values(found).some((list) => list.length > 0);
  const rcode = failure !== undefined ? RCODES[failure] : exists ? 0 : NXDOMAIN;
  const { answers, additionals } =
    rcode === 0 && found ? recordsFor(question, found, records) : { answers: [], additionals: [] };
  return packet.encode({
    type: 'response',
    id: query.id,
    flags: packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED) | rcode,
    questions: [question],
    answers,
    additionals,
  });
}

function recordsFor(
  q: packet.Question,
  found: Records,
  records: ReadonlyMap<string, Records>,
): { answers: packet.Answer[]; additionals: packet.Answer[] } {
  const name = q.name;
  switch (q.type) {
    case 'A':
      return {
        answers: found.a.map((data) => ({ type: 'A', name, ttl: TTL, data })),
        additionals: [],
      };
    case 'AAAA':
      return {
        answers: found.aaaa.map((data) => ({ type: 'AAAA', name, ttl: TTL, data })),
        additionals: [],
      };
    case 'PTR':
      return {
        answers: found.ptr.map((data) => ({ type: 'PTR', name, ttl: TTL, data })),
        additionals: [],
      };
    case 'SRV':
      return {
        answers: found.srv.map((s) => ({
          type: 'SRV',
          name,
          ttl: TTL,
          data: { target: s.target, port: s.port, priority: s.priority ?? 0, weight: 100 },
        })),
        additionals: found.srv.flatMap((s) =>
          (records.get(key(s.target))?.a ?? []).map((data) => ({
            type: 'A' as const,
            name: s.target,
            ttl: TTL,
            data,
          })),
        ),
      };
    default:
      return { answers: [], additionals: [] };
  }
}
