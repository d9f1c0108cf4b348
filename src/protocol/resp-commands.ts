// The RESP2 command table: a request's arguments -> a Command for the coordinator, or an answer.

import { KvError } from '../errors/index.ts';
import {
  type Command,
  type CommandLimits,
  parseScanPage,
  type ScanPage,
  type ScanPageRules,
  validateBinaryKey,
  validateValue,
} from './command.ts';
import type { Reply } from './reply.ts';
import { adminCommands } from './resp-admin.ts';
import { NOT_ATOMIC, notAtomic, respErrors, UNSUPPORTED, unsupported } from './resp-errors.ts';
import { EXPIRY_COMMANDS, parseSet } from './resp-expiry.ts';
import { memory, object, strlen, typeOf } from './resp-inspect.ts';
import {
  bulk,
  integerArg,
  keyword,
  type RespContext,
  type RespRequest,
  type RespSpec,
  reply,
  type ScanCursors,
} from './resp-spec.ts';

const upper = keyword;
const run = (cmd: Command, shape?: (r: Reply) => Reply): RespRequest =>
  shape ? { kind: 'command', cmd, shape } : { kind: 'command', cmd };
const key = (b: Buffer, l: CommandLimits, what?: string) => validateBinaryKey(b, l, what);

/** `[LIMIT n [CURSOR key]]` after RANGE/PREFIX arguments: the cursor binary-safe. */
const RESP_PAGE: ScanPageRules = { key: validateBinaryKey, malformed: () => respErrors.syntax() };
const scanPage = (args: readonly Buffer[], l: CommandLimits) => parseScanPage(args, l, RESP_PAGE);

/**
 * The literal prefix of a MATCH/KEYS pattern: glob escapes (`\x`) allowed, exactly one
 * unescaped `*`, at the end; anything else (`?`, `[`, a `*` elsewhere, no `*`) is refused.
 */
export function patternPrefix(pattern: Buffer): Buffer {
  const out: number[] = [];
  const refuse = () =>
    new KvError(
      'KV_ERR_INVALID_ARGUMENT',
      "protocol: MATCH supports only a literal prefix followed by '*'",
    );
  for (let i = 0; i < pattern.length; i++) {
    const b = pattern[i]!;
    if (b === 0x5c) {
      if (i + 1 === pattern.length) throw refuse();
      out.push(pattern[++i]!);
    } else if (b === 0x2a) {
      if (i + 1 !== pattern.length) throw refuse();
      return Buffer.from(out);
    } else if (b === 0x3f || b === 0x5b) {
      throw refuse();
    } else {
      out.push(b);
    }
  }
  throw refuse();
}

/** SCAN's cursor: `0` to start, else a token the node issued (see ScanCursors). */
export function decodeScanCursor(raw: Buffer, cursors: ScanCursors): Buffer | null {
  const text = raw.toString('latin1');
  if (text === '0') return null;
  const key = /^[1-9][0-9]{0,15}$/.test(text) ? cursors.resolve(text) : undefined;
  if (key === undefined) throw respErrors.invalidCursor();
  return key;
}

/**
 * SCAN cursor [MATCH prefix*] [COUNT n] [TYPE type]: a paged PREFIX over the whole cluster. Every
 * key holds a string: TYPE string filters nothing, and any other type (Redis 7.0 takes any name)
 * finds no key, so the iteration ends at once (cursor 0, no keys).
 */
function scan(args: readonly Buffer[], ctx: RespContext): RespRequest {
  const l = ctx.limits;
  const cursor = decodeScanCursor(args[1]!, ctx.cursors);
  let prefix: Buffer = Buffer.alloc(0);
  let count = 100;
  let noKeyOfType = false;
  for (let i = 2; i < args.length; i += 2) {
    const opt = upper(args[i]);
    if (i + 1 >= args.length) throw respErrors.syntax();
    if (opt === 'MATCH') prefix = patternPrefix(args[i + 1]!);
    else if (opt === 'TYPE') noKeyOfType = upper(args[i + 1]) !== 'STRING';
    else if (opt === 'COUNT') {
      const n = integerArg(args[i + 1]);
      if (n === null) throw respErrors.notInteger();
      if (n < 1) throw respErrors.syntax();
      count = Math.min(n, l.maxScanKeys); // COUNT is a hint in Redis too
    } else throw respErrors.syntax();
  }
  if (prefix.length > l.maxKeyBytes) key(prefix, l, 'prefix');
  if (noKeyOfType)
    return reply({ type: 'array', items: [bulk(Buffer.from('0')), { type: 'array', items: [] }] });
  const shape = (r: Reply): Reply => {
    if (r.type !== 'keys') return r;
    const next = Buffer.from(r.next === null ? '0' : ctx.cursors.issue(r.next));
    return { type: 'array', items: [bulk(next), { type: 'array', items: r.keys.map(bulk) }] };
  };
  return run({ type: 'prefix', prefix, page: { limit: count, cursor } }, shape);
}

const READ = ['readonly', 'fast'];
const WRITE = ['write'];
const NONE = ['fast'];
const ONE: readonly [number, number, number] = [1, 1, 1];
const ALL: readonly [number, number, number] = [1, -1, 1];
const NO_KEYS: readonly [number, number, number] = [0, 0, 0];

function put(args: readonly Buffer[], l: CommandLimits): RespRequest {
  return run({ type: 'put', key: key(args[1]!, l), value: validateValue(args[2]!, l) });
}

/** Every command RESP understands, by lower-case name. */
export const RESP_COMMANDS: Readonly<Record<string, RespSpec>> = {
  get: {
    arity: 2,
    flags: READ,
    keys: ONE,
    run: (a, c) => run({ type: 'get', key: key(a[1]!, c.limits) }),
  },
  set: { arity: -3, flags: WRITE, keys: ONE, run: (a, c) => parseSet(a, c.limits) },
  put: { arity: 3, flags: WRITE, keys: ONE, run: (a, c) => put(a, c.limits) },
  remove: {
    arity: 2,
    flags: WRITE,
    keys: ONE,
    run: (a, c) => run({ type: 'remove', key: key(a[1]!, c.limits) }),
  },
  del: {
    arity: -2,
    flags: WRITE,
    keys: ALL,
    run: (a, c) => run({ type: 'del', keys: a.slice(1).map((k) => key(k, c.limits)) }),
  },
  exists: {
    arity: -2,
    flags: READ,
    keys: ALL,
    run: (a, c) => run({ type: 'exists', keys: a.slice(1).map((k) => key(k, c.limits)) }),
  },
  mget: {
    arity: -2,
    flags: READ,
    keys: ALL,
    run: (a, c) => run({ type: 'mget', keys: a.slice(1).map((k) => key(k, c.limits)) }),
  },
  mset: {
    arity: -3,
    flags: WRITE,
    keys: [1, -1, 2],
    run: (a, c) => {
      if (a.length % 2 !== 1) throw respErrors.arity('mset');
      const entries: [Buffer, Buffer][] = [];
      for (let i = 1; i < a.length; i += 2) {
        entries.push([key(a[i]!, c.limits), validateValue(a[i + 1]!, c.limits)]);
      }
      return run({ type: 'mset', entries });
    },
  },
  range: {
    arity: -3,
    flags: ['readonly'],
    keys: NO_KEYS,
    run: (a, c) =>
      run({
        type: 'range',
        start: key(a[1]!, c.limits, 'start'),
        end: key(a[2]!, c.limits, 'end'),
        page: scanPage(a.slice(3), c.limits),
      }),
  },
  prefix: {
    arity: -2,
    flags: ['readonly'],
    keys: NO_KEYS,
    run: (a, c) =>
      run({
        type: 'prefix',
        prefix: key(a[1]!, c.limits, 'prefix'),
        page: scanPage(a.slice(2), c.limits),
      }),
  },
  scan: { arity: -2, flags: ['readonly'], keys: NO_KEYS, run: (a, c) => scan(a, c) },
  type: { arity: 2, flags: READ, keys: ONE, run: (a, c) => typeOf(a, c.limits, run) },
  strlen: { arity: 2, flags: READ, keys: ONE, run: (a, c) => strlen(a, c.limits, run) },
  memory: {
    arity: -2,
    flags: ['readonly'],
    keys: [2, 2, 1],
    run: (a, c) => memory(a, c.limits, run),
  },
  object: {
    arity: -2,
    flags: ['readonly'],
    keys: [2, 2, 1],
    run: (a, c) => object(a, c.limits, run),
  },
  keys: {
    arity: 2,
    flags: ['readonly'],
    keys: NO_KEYS,
    run: (a) => run({ type: 'prefix', prefix: patternPrefix(a[1]!), page: NO_PAGE }),
  },
  ping: {
    arity: -1,
    flags: NONE,
    keys: NO_KEYS,
    run: (a) => {
      if (a.length > 2) throw respErrors.arity('ping');
      const msg = a[1];
      return run(msg === undefined ? { type: 'ping' } : { type: 'ping', message: msg });
    },
  },
  quit: { arity: -1, flags: NONE, keys: NO_KEYS, run: () => run({ type: 'quit' }) },
  dbsize: { arity: 1, flags: ['readonly'], keys: NO_KEYS, run: () => run({ type: 'dbsize' }) },
  cluster: {
    arity: -1,
    flags: NONE,
    keys: NO_KEYS,
    run: (a) => {
      // redis-cli -c and cluster-aware clients probe CLUSTER INFO/NODES/SLOTS: say no cluster.
      if (a.length > 1) {
        throw respErrors.clusterDisabled();
      }
      return run({ type: 'cluster' });
    },
  },
  ...EXPIRY_COMMANDS,
  ...adminCommands(() => RESP_COMMANDS),
};

const NO_PAGE: ScanPage = { limit: null, cursor: null };

/**
 * The command name in lower case ('' when over 32 bytes); GET and SET, in any case, without
 * making a string (`b | 0x20` is `e` only for `E` and `e`, and so on).
 */
function commandName(b: Buffer): string {
  if (b.length === 3 && (b[1]! | 0x20) === 0x65 && (b[2]! | 0x20) === 0x74) {
    const first = b[0]! | 0x20;
    if (first === 0x67) return 'get';
    if (first === 0x73) return 'set';
  }
  return b.length <= 32 ? b.toString('latin1').toLowerCase() : '';
}

/**
 * Turns one decoded request into what to do. Throws KvError (a RespError for Redis-defined
 * forms: unknown command, wrong arity, syntax error) when the request is malformed; the
 * connection answers it and stays usable.
 */
export function parseRespRequest(args: readonly Buffer[], ctx: RespContext): RespRequest {
  const name = commandName(args[0]!);
  const spec = Object.hasOwn(RESP_COMMANDS, name) ? RESP_COMMANDS[name] : undefined;
  if (spec === undefined) {
    const reason = UNSUPPORTED.get(name);
    if (reason !== undefined) throw unsupported(name, reason);
    if (NOT_ATOMIC.has(name)) throw notAtomic(name.toUpperCase());
    throw respErrors.unknownCommand(args);
  }
  ctx.session.lastCommand = name;
  if (spec.arity >= 0 ? args.length !== spec.arity : args.length < -spec.arity) {
    throw respErrors.arity(name);
  }
  return spec.run(args, ctx);
}
