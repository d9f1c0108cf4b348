// RESP commands that inspect the node, its clients and keys: INFO's server sections, CLIENT LIST/KILL, TYPE, STRLEN, MEMORY USAGE, OBJECT ENCODING.

import { arch, platform, release } from 'node:os';
import type { CommandLimits } from './command.ts';
import { validateBinaryKey } from './command.ts';
import type { InfoSection, Reply } from './reply.ts';
import { respErrors } from './resp-errors.ts';
import {
  bulk,
  integer,
  integerArg,
  keyword,
  type RespContext,
  type RespRequest,
  type ServerFacts,
  status,
} from './resp-spec.ts';

/** One client connection as CLIENT LIST shows it. */
export interface ClientInfo {
  readonly id: number;
  /** The client's address, `ip:port`. */
  readonly addr: string;
  /** The node's address of the connection, `ip:port`. */
  readonly laddr: string;
  readonly name: string | null;
  readonly ageSeconds: number;
  readonly idleSeconds: number;
  /** Commands queued in an open MULTI; -1 outside one. */
  readonly multi: number;
  /** The last command's name (lower case), '' before the first. */
  readonly lastCommand: string;
  /** RESP version, or 0 for a connection speaking the seed's text protocol. */
  readonly proto: 0 | 2 | 3;
  readonly libName: string | null;
  readonly libVer: string | null;
}

/** The node's client connections, for CLIENT LIST and CLIENT KILL. */
export interface ClientRegistry {
  /**
   * Every connection. Calls in the same event-loop turn may get the same array (one snapshot):
   * CLIENT LIST's text is then made once for all of them (listText). `fresh`: a new snapshot.
   */
  list(fresh?: boolean): readonly ClientInfo[];
  /** Closes the connection once its commands already read are answered; false when gone. */
  kill(id: number): boolean;
}

const WANT_ALL = new Set(['all', 'everything', 'default']);

function human(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v.toFixed(2)}${units[u]}`;
}

/**
 * INFO's sections answered by the node itself (before the coordinator's replication and
 * keyspace): server, clients, memory (process figures: `used_memory` is the V8 heap plus
 * buffers, `used_memory_rss` the resident set), stats (`total_commands_processed` counts every
 * request answered, `instantaneous_ops_per_sec` over the last ~1.6 s, `total_net_output_bytes` the
 * bytes of replies written to client sockets, `total_scan_records` the records RANGE, PREFIX, SCAN
 * and KEYS read and merged on this node, for its clients and its peers: kvstore_scan_records_total).
 */
export function serverSections(facts: ServerFacts, want: readonly string[]): InfoSection[] {
  const all = want.length === 0 || want.some((w) => WANT_ALL.has(w));
  const out: InfoSection[] = [];
  if (all || want.includes('server')) {
    out.push({
      name: 'server',
      fields: [
        ['kvstore_version', facts.version],
        ['redis_mode', 'standalone'],
        ['os', `${platform()} ${release()} ${arch()}`],
        ['arch_bits', 64],
        ['process_id', process.pid],
        ['tcp_port', facts.port],
        ['uptime_in_seconds', facts.uptimeSeconds],
        ['uptime_in_days', Math.floor(facts.uptimeSeconds / 86400)],
      ],
    });
  }
  if (all || want.includes('clients')) {
    out.push({
      name: 'clients',
      fields: [
        ['connected_clients', facts.connectedClients],
        ['blocked_clients', 0],
      ],
    });
  }
  if (all || want.includes('memory')) {
    const m = facts.memory;
    out.push({
      name: 'memory',
      fields: [
        ['used_memory', m.used],
        ['used_memory_human', human(m.used)],
        ['used_memory_rss', m.rss],
        ['used_memory_rss_human', human(m.rss)],
        ['used_memory_peak', m.peak],
        ['used_memory_peak_human', human(m.peak)],
        ['maxmemory', 0],
      ],
    });
  }
  if (all || want.includes('stats')) {
    out.push({
      name: 'stats',
      fields: [
        ['total_connections_received', facts.totalConnections],
        ['total_commands_processed', facts.totalCommands],
        ['instantaneous_ops_per_sec', facts.opsPerSec],
        ['total_net_output_bytes', facts.netOutputBytes],
        ['total_scan_records', facts.scanRecords],
        ['rejected_connections', facts.rejectedConnections],
      ],
    });
  }
  return out;
}

/** CLIENT LIST's line for one client (Redis's field names; fields kvstore has no notion of are 0). */
function clientLine(c: ClientInfo): string {
  return (
    `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=-1 name=${c.name ?? ''} age=${c.ageSeconds} ` +
    `idle=${c.idleSeconds} flags=N db=0 sub=0 psub=0 ssub=0 multi=${c.multi} qbuf=0 obl=0 oll=0 ` +
    `omem=0 events=r cmd=${c.lastCommand || 'NULL'} user=default redir=-1 resp=${c.proto} ` +
    `lib-name=${c.libName ?? ''} lib-ver=${c.libVer ?? ''}\n`
  );
}

const CLIENT_TYPES = new Set(['NORMAL', 'MASTER', 'REPLICA', 'PUBSUB']);

/**
 * CLIENT LIST's reply for a snapshot, made once per snapshot: a line per connection is about
 * 300 bytes and 8 µs, so with 1,500 connections one reply is 470 KB and 12 ms of the event loop,
 * and 20 clients pipelining 200 each (reading their replies) held a PING for 8 s. Made once for
 * the calls of a turn, each costs its bytes only.
 */
const listTexts = new WeakMap<readonly ClientInfo[], Reply>();

function listText(all: readonly ClientInfo[]): Reply {
  let reply = listTexts.get(all);
  if (reply === undefined) {
    reply = bulk(all.map(clientLine).join(''));
    listTexts.set(all, reply);
  }
  return reply;
}

/** CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]. */
export function clientList(args: readonly Buffer[], ctx: RespContext): Reply {
  let all = ctx.clients.list();
  // A snapshot taken before this connection named itself (CLIENT SETNAME; CLIENT LIST in one
  // pipeline) would show it as it was: it sees its own changes, as in Redis.
  const s = ctx.session;
  const self = all.find((c) => c.id === s.id);
  if (
    self !== undefined &&
    (self.name !== s.name || self.libName !== s.libName || self.libVer !== s.libVer)
  ) {
    all = ctx.clients.list(true);
  }
  if (args.length === 2) return listText(all);
  let clients = all;
  for (let i = 2; i < args.length; i++) {
    const opt = keyword(args[i]);
    if (opt === 'TYPE' && i + 1 < args.length) {
      const t = keyword(args[++i]);
      if (!CLIENT_TYPES.has(t)) throw respErrors.unknownClientType(args[i]!);
      if (t !== 'NORMAL') clients = []; // no replicas, no pub/sub
    } else if (opt === 'ID' && i + 1 < args.length) {
      const ids = new Set<number>();
      while (i + 1 < args.length) {
        const id = integerArg(args[++i]);
        if (id === null) throw respErrors.invalidClientId();
        ids.add(id); // 0 or below matches no client, as in Redis
      }
      clients = clients.filter((c) => ids.has(c.id));
    } else throw respErrors.syntax();
  }
  return bulk(clients.map(clientLine).join(''));
}

/**
 * CLIENT KILL addr:port (`+OK` or `-ERR No such client`), or CLIENT KILL with filters ID, ADDR,
 * LADDR, USER, SKIPME yes|no, MAXAGE: the number of clients closed. A closed client's commands
 * already read are answered first.
 */
export function clientKill(args: readonly Buffer[], ctx: RespContext): Reply {
  const all = ctx.clients.list();
  const self = ctx.session.id;
  if (args.length === 3) {
    const addr = args[2]!.toString('latin1');
    const c = all.find((x) => x.addr === addr);
    if (c === undefined || !ctx.clients.kill(c.id)) throw respErrors.noSuchClient();
    return { type: 'ok' };
  }
  if (args.length < 4 || args.length % 2 !== 0) throw respErrors.syntax();
  let skipMe = true;
  let match = all;
  for (let i = 2; i < args.length; i += 2) {
    const opt = keyword(args[i]);
    const raw = args[i + 1]!;
    const value = raw.toString('latin1');
    if (opt === 'ID') {
      const id = integerArg(raw);
      if (id === null || id < 1) throw respErrors.clientIdNotPositive();
      match = match.filter((c) => c.id === id);
    } else if (opt === 'ADDR') match = match.filter((c) => c.addr === value);
    else if (opt === 'LADDR') match = match.filter((c) => c.laddr === value);
    else if (opt === 'USER') match = value === 'default' ? match : [];
    else if (opt === 'MAXAGE') {
      // Redis 7 words a non-integer and a non-positive MAXAGE alike.
      const age = integerArg(raw);
      if (age === null || age < 1) throw respErrors.syntax();
      match = match.filter((c) => c.ageSeconds >= age);
    } else if (opt === 'SKIPME') {
      const v = keyword(raw);
      if (v !== 'YES' && v !== 'NO') throw respErrors.syntax();
      skipMe = v === 'YES';
    } else throw respErrors.syntax();
  }
  let killed = 0;
  for (const c of match) {
    if (skipMe && c.id === self) continue;
    if (ctx.clients.kill(c.id)) killed++;
  }
  return integer(killed);
}

/** Bytes charged per key by MEMORY USAGE on top of its key and value: the stored record's header and the B+tree's per-entry cost. */
export const RECORD_OVERHEAD = 48;

type Run = (
  cmd: { readonly type: 'get'; readonly key: Buffer },
  shape: (r: Reply) => Reply,
) => RespRequest;

/**
 * A GET whose answer is reshaped: the key-inspection commands. `f` gets the key's length, not the
 * key: the reshaping closure may be held (queued in MULTI) long after the read the key is a view
 * of, and must not keep that read alive (server/detach.ts copies the command, not closures).
 */
function inspect(
  args: readonly Buffer[],
  at: number,
  l: CommandLimits,
  run: Run,
  f: (value: Buffer | null, keyBytes: number) => Reply,
): RespRequest {
  const key = validateBinaryKey(args[at]!, l);
  const keyBytes = key.length;
  return run({ type: 'get', key }, (r) => f(r.type === 'value' ? r.value : null, keyBytes));
}

const NULL: Reply = { type: 'not_found' };

/** TYPE: `string`, or `none` when absent. */
export const typeOf = (a: readonly Buffer[], l: CommandLimits, run: Run) =>
  inspect(a, 1, l, run, (v) => status(v === null ? 'none' : 'string'));

/** STRLEN: the value's length in bytes, 0 when absent. */
export const strlen = (a: readonly Buffer[], l: CommandLimits, run: Run) =>
  inspect(a, 1, l, run, (v) => integer(v === null ? 0 : v.length));

/** MEMORY USAGE key [SAMPLES n]: key + value + RECORD_OVERHEAD bytes, null when absent. */
export function memory(a: readonly Buffer[], l: CommandLimits, run: Run): RespRequest {
  if (keyword(a[1]) !== 'USAGE') throw respErrors.unknownSubcommand(a[1]!, 'MEMORY');
  if (a.length !== 3 && a.length !== 5) throw respErrors.arity('memory|usage');
  if (a.length === 5) {
    if (keyword(a[3]) !== 'SAMPLES') throw respErrors.syntax();
    if (integerArg(a[4]) === null) throw respErrors.notInteger();
  }
  return inspect(a, 2, l, run, (v, keyBytes) =>
    v === null ? NULL : integer(keyBytes + v.length + RECORD_OVERHEAD),
  );
}

/** OBJECT ENCODING key: `raw` (kvstore keeps every value as bytes), null when absent. */
export function object(a: readonly Buffer[], l: CommandLimits, run: Run): RespRequest {
  if (keyword(a[1]) !== 'ENCODING') throw respErrors.unknownSubcommand(a[1]!, 'OBJECT');
  if (a.length !== 3) throw respErrors.arity('object|encoding');
  return inspect(a, 2, l, run, (v) => (v === null ? NULL : bulk('raw')));
}
