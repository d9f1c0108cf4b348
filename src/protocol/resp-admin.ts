// RESP2 connection and server commands: HELLO, CLIENT, COMMAND, CONFIG, INFO, SELECT, ECHO, AUTH.

import { errorReply, type Reply, type RespVersion } from './reply.ts';
import { clientAttrTooLong, MAX_CLIENT_ATTR_BYTES, respErrors } from './resp-errors.ts';
import { clientKill, clientList, serverSections } from './resp-inspect.ts';
import {
  array,
  bulk,
  integer,
  integerArg,
  keyword,
  type RespContext,
  type RespRequest,
  type RespSession,
  type RespSpec,
  reply,
  type ServerFacts,
  type SessionOp,
  status,
} from './resp-spec.ts';

const OK: Reply = { type: 'ok' };
const NULL: Reply = { type: 'not_found' };
const NO_KEYS: readonly [number, number, number] = [0, 0, 0];

/** HELLO [protover [AUTH username password] [SETNAME clientname]]: what the connection does. */
function hello(args: readonly Buffer[]): SessionOp {
  let proto: RespVersion | null = null;
  if (args.length > 1) {
    const v = integerArg(args[1]);
    if (v === null) throw respErrors.protoNotInteger();
    if (v !== 2 && v !== 3) throw respErrors.noProto();
    proto = v;
  }
  let user: string | null = null;
  let password: Buffer | null = null;
  let name: string | null = null;
  for (let i = 2; i < args.length; i++) {
    const opt = keyword(args[i]);
    if (opt === 'AUTH' && i + 2 < args.length) {
      user = args[i + 1]!.toString('latin1');
      password = args[i + 2]!;
      i += 2;
    } else if (opt === 'SETNAME' && i + 1 < args.length) {
      name = clientName(args[++i]!);
    } else {
      throw respErrors.helloOption(args[i]!);
    }
  }
  return { op: 'hello', proto, user, password, name };
}

/** HELLO's answer: the server map (a flat array of names and values in RESP2). */
export function helloReply(session: RespSession, facts: ServerFacts): Reply {
  const entries: [string, Reply][] = [
    ['server', bulk('kvstore')],
    ['version', bulk(facts.version)],
    ['proto', integer(session.proto)],
    ['id', integer(session.id)],
    ['mode', bulk('standalone')],
    ['role', bulk('master')],
    ['modules', array([])],
  ];
  return { type: 'map', entries: entries.map(([k, v]) => [bulk(k), v]) };
}

/** Printable ASCII without spaces (what CLIENT LIST can show on its one line per client). */
function printableWord(raw: Buffer): boolean {
  for (const b of raw) if (b < 0x21 || b > 0x7e) return false;
  return true;
}

/**
 * A CLIENT SETNAME / HELLO SETNAME argument: printable ASCII without spaces, at most
 * MAX_CLIENT_ATTR_BYTES; '' clears. A name (and lib-name, lib-ver) is kept for the connection's
 * life, outside every bound on requests: unbounded, 300 connections that each set 1 MiB of
 * each grew a node by 620 MiB, and 10,000 could hold 30 GiB.
 */
function clientName(raw: Buffer): string {
  if (!printableWord(raw)) throw respErrors.badClientName();
  if (raw.length > MAX_CLIENT_ATTR_BYTES) throw clientAttrTooLong('name', raw.length);
  return raw.toString('latin1');
}

/** `+OK`, and the change to the connection's state made when the request runs. */
function okThen(effect: () => void): RespRequest {
  return { kind: 'reply', reply: OK, effect };
}

/** A subcommand that takes no arguments (`name` as Redis words it: `client|id`) got some. */
function noArgs(args: readonly Buffer[], name: string): void {
  if (args.length !== 2) throw respErrors.arity(name);
}

function client(args: readonly Buffer[], ctx: RespContext): RespRequest {
  const sub = keyword(args[1]);
  const s = ctx.session;
  if (sub === 'GETNAME' || sub === 'ID' || sub === 'INFO')
    noArgs(args, `client|${sub.toLowerCase()}`);
  switch (sub) {
    case 'SETNAME': {
      if (args.length !== 3) throw respErrors.arity('client|setname');
      const name = clientName(args[2]!);
      return okThen(() => {
        s.name = name === '' ? null : name;
      });
    }
    case 'GETNAME':
      return reply(s.name === null ? NULL : bulk(s.name));
    case 'ID':
      return reply(integer(s.id));
    case 'SETINFO': {
      if (args.length !== 4) throw respErrors.arity('client|setinfo');
      const attr = keyword(args[2]);
      if (attr !== 'LIB-NAME' && attr !== 'LIB-VER') throw respErrors.unrecognizedOption(args[2]!);
      // As Redis: what CLIENT LIST shows on one line cannot break that line.
      if (!printableWord(args[3]!)) throw respErrors.badClientAttr(args[2]!);
      if (args[3]!.length > MAX_CLIENT_ATTR_BYTES) throw clientAttrTooLong(attr, args[3]!.length);
      const value = args[3]!.length === 0 ? null : args[3]!.toString('latin1');
      return okThen(() => {
        if (attr === 'LIB-NAME') s.libName = value;
        else s.libVer = value;
      });
    }
    case 'INFO': {
      const text = `id=${s.id} name=${s.name ?? ''} db=0 lib-name=${s.libName ?? ''} lib-ver=${s.libVer ?? ''}\n`;
      return reply(bulk(text));
    }
    default:
      throw respErrors.unknownSubcommand(args[1]!, 'CLIENT');
  }
}

/** COMMAND's entry: name, arity, flags, first key, last key, step, then Redis 7's four lists. */
function commandEntry(name: string, spec: RespSpec): Reply {
  return array([
    bulk(name),
    integer(spec.arity),
    { type: 'set', items: spec.flags.map(status) },
    integer(spec.keys[0]),
    integer(spec.keys[1]),
    integer(spec.keys[2]),
    array([]),
    array([]),
    array([]),
    array([]),
  ]);
}

function command(args: readonly Buffer[], table: () => Readonly<Record<string, RespSpec>>): Reply {
  const all = table();
  const sub = keyword(args[1]);
  switch (sub) {
    case '':
      return array(Object.entries(all).map(([n, s]) => commandEntry(n, s)));
    case 'COUNT':
      noArgs(args, 'command|count');
      return integer(Object.keys(all).length);
    case 'LIST':
      // FILTERBY is not supported; anything after LIST is Redis's syntax error.
      if (args.length !== 2) throw respErrors.syntax();
      return array(Object.keys(all).map((n) => bulk(n)));
    case 'INFO':
      return array(
        args.slice(2).map((raw) => {
          const n = raw.toString('latin1').toLowerCase();
          return Object.hasOwn(all, n) ? commandEntry(n, all[n]!) : { type: 'array', items: null };
        }),
      );
    case 'DOCS':
      return array([]); // no documentation: redis-cli then simply shows no hints
    default:
      throw respErrors.unknownSubcommand(args[1]!, 'COMMAND');
  }
}

/**
 * CONFIG GET with the parameters clients ask about (redis-benchmark reads `save` and
 * `appendonly`): kvstore has neither snapshots nor an AOF; every OK is an LMDB commit.
 */
const CONFIG: Readonly<Record<string, string>> = { save: '', appendonly: 'no', databases: '1' };

function config(args: readonly Buffer[]): Reply {
  if (keyword(args[1]) !== 'GET') throw respErrors.unknownSubcommand(args[1]!, 'CONFIG');
  if (args.length < 3) throw respErrors.arity('config|get');
  const entries: [Reply, Reply][] = [];
  for (const [name, value] of Object.entries(CONFIG)) {
    const wanted = args.slice(2).some((raw) => {
      const p = raw.toString('latin1').toLowerCase();
      return p === '*' || p === name;
    });
    if (wanted) entries.push([bulk(name), bulk(value)]);
  }
  return { type: 'map', entries };
}

const clientsOp = (name: string, run: () => Reply): RespRequest => ({
  kind: 'session',
  op: { op: 'clients', name, run },
});

/** The connection and server commands, given the whole table (for COMMAND). */
export function adminCommands(
  table: () => Readonly<Record<string, RespSpec>>,
): Record<string, RespSpec> {
  const local = (arity: number, f: (a: readonly Buffer[], c: RespContext) => Reply): RespSpec => ({
    arity,
    flags: ['fast'],
    keys: NO_KEYS,
    run: (a, c) => reply(f(a, c)),
  });
  const session = (arity: number, f: (a: readonly Buffer[]) => SessionOp): RespSpec => ({
    arity,
    flags: ['fast'],
    keys: NO_KEYS,
    run: (a) => ({ kind: 'session', op: f(a) }),
  });
  return {
    echo: local(2, (a) => bulk(a[1]!)),
    select: local(2, (a) => {
      const db = integerArg(a[1]);
      if (db === null) throw respErrors.notInteger();
      if (db !== 0) throw respErrors.dbOutOfRange();
      return OK;
    }),
    auth: {
      arity: -2,
      flags: ['fast'],
      keys: NO_KEYS,
      run: (a) => {
        if (a.length > 3) throw respErrors.syntax();
        // AUTH <password>, or AUTH <username> <password> where the only user is `default`.
        if (a.length === 3 && a[1]!.toString('latin1') !== 'default')
          return reply(errorReply(respErrors.wrongPass()));
        return {
          kind: 'command' as const,
          cmd: { type: 'auth' as const, password: a[a.length - 1]!, named: a.length === 3 },
        };
      },
    },
    hello: session(-1, hello),
    multi: session(1, () => ({ op: 'multi' })),
    exec: session(1, () => ({ op: 'exec' })),
    discard: session(1, () => ({ op: 'discard' })),
    // Nothing is ever watched (WATCH is refused), so UNWATCH has nothing to undo.
    unwatch: local(1, () => OK),
    client: {
      arity: -2,
      flags: ['fast'],
      keys: NO_KEYS,
      run: (a, c) => {
        const sub = keyword(a[1]);
        if (sub === 'LIST') return clientsOp('client|list', () => clientList(a, c));
        if (sub === 'KILL') return clientsOp('client|kill', () => clientKill(a, c));
        return client(a, c);
      },
    },
    command: local(-1, (a) => command(a, table)),
    config: local(-2, config),
    info: {
      arity: -1,
      flags: ['readonly'],
      keys: NO_KEYS,
      run: (a, c) => {
        const want: readonly string[] = a.slice(1).map((s) => s.toString('latin1').toLowerCase());
        const shape = (r: Reply): Reply => {
          if (r.type !== 'sections') return r;
          return {
            type: 'sections',
            sections: [...serverSections(c.server(), want), ...r.sections],
          };
        };
        return { kind: 'command' as const, cmd: { type: 'info' as const, sections: want }, shape };
      },
    },
  };
}
