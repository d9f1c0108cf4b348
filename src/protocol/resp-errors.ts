// The one table of RESP error forms: Redis's own lines where clients match on them, and kvstore's refusals.

import { type ErrorCode, KvError } from '../errors/index.ts';
import { echo } from './echo.ts';
import { RespError } from './reply.ts';

/** Where the docs explain a refusal (docs/redis.md, relative to the repository). */
const DOCS = 'docs/redis.md';

const err = (code: ErrorCode, resp: string, message?: string) => new RespError(code, resp, message);

/** Redis-defined error lines, each written once. Every RESP error kvstore sends comes from here. */
export const respErrors = {
  syntax: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR syntax error'),
  notInteger: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR value is not an integer or out of range'),
  arity: (name: string) =>
    err('KV_ERR_WRONG_ARITY', `ERR wrong number of arguments for '${name}' command`),
  unknownCommand(args: readonly Buffer[]): RespError {
    const show = (b: Buffer) => echo(b, 128);
    let rest = '';
    for (let i = 1; i < args.length && rest.length < 128; i++) rest += `'${show(args[i]!)}' `;
    const line = `ERR unknown command '${show(args[0]!)}', with args beginning with: ${rest.slice(0, 128)}`;
    return err('KV_ERR_UNKNOWN_COMMAND', line);
  },
  unknownSubcommand: (sub: Buffer, cmd: string) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR unknown subcommand '${echo(sub, 64)}'. Try ${cmd} HELP.`),
  unrecognizedOption: (opt: Buffer) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR Unrecognized option '${echo(opt, 64)}'`),
  invalidCursor: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR invalid cursor'),
  /** An expiry out of range (`name`: the command, lower case). */
  invalidExpire: (name: string) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR invalid expire time in '${name}' command`),
  /** An option EXPIRE does not know. */
  unsupportedOption: (opt: Buffer) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR Unsupported option ${echo(opt, 128)}`),
  clusterDisabled: () =>
    err('KV_ERR_INVALID_ARGUMENT', 'ERR This instance has cluster support disabled'),
  dbOutOfRange: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR DB index is out of range'),
  protoNotInteger: () =>
    err('KV_ERR_INVALID_ARGUMENT', 'ERR Protocol version is not an integer or out of range'),
  noProto: () => err('KV_ERR_INVALID_ARGUMENT', 'NOPROTO unsupported protocol version'),
  badClientName: () =>
    err(
      'KV_ERR_INVALID_ARGUMENT',
      'ERR Client names cannot contain spaces, newlines or special characters.',
    ),
  /** CLIENT SETINFO LIB-NAME/LIB-VER with a space or control byte (`attr` as the client sent it). */
  badClientAttr: (attr: Buffer) =>
    err(
      'KV_ERR_INVALID_ARGUMENT',
      `ERR ${echo(attr, 32)} cannot contain spaces, newlines or special characters.`,
    ),
  noSuchClient: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR No such client'),
  /** CLIENT LIST TYPE with a type Redis does not know. */
  unknownClientType: (type: Buffer) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR Unknown client type '${echo(type, 64)}'`),
  /** CLIENT LIST ID with an id that is not an integer. */
  invalidClientId: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR Invalid client ID'),
  /** CLIENT KILL ID with an id that is not a positive integer. */
  clientIdNotPositive: () =>
    err('KV_ERR_INVALID_ARGUMENT', 'ERR client-id should be greater than 0'),
  /** HELLO with an option it does not know, or one missing its arguments. */
  helloOption: (opt: Buffer) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR Syntax error in HELLO option '${echo(opt, 64)}'`),
  /** A malformed frame (`what` is the decoder's `Protocol error: ...`); the connection closes. */
  protocol: (what: string) => err('KV_ERR_PROTOCOL', `ERR ${what}`),
  noAuth: () =>
    err('KV_ERR_NOAUTH', 'NOAUTH Authentication required.', 'server: authentication required'),
  /**
   * Sent as a connection that had not authenticated (with no password: sent no request) is closed
   * at --max-connections to make room for a new one (net/slots.ts).
   */
  displaced: () =>
    err(
      'KV_ERR_MAX_CLIENTS',
      'ERR max number of clients reached: this connection, idle since it connected, was closed for a new one',
      'server: too many client connections: this one, silent or not authenticated since it connected, was closed for a new one',
    ),
  /** Sent as a connection is closed for not authenticating in time (server's AUTH_TIMEOUT_MS). */
  authTimeout: () =>
    err(
      'KV_ERR_NOAUTH',
      'NOAUTH not authenticated within 10 seconds of connecting, connection closed',
      'server: not authenticated within 10 s of connecting, connection closed',
    ),
  /** HELLO without AUTH on a connection that has not authenticated. */
  noAuthHello: () =>
    err(
      'KV_ERR_NOAUTH',
      'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
      'server: authentication required',
    ),
  wrongPass: () =>
    err(
      'KV_ERR_WRONGPASS',
      'WRONGPASS invalid username-password pair or user is disabled.',
      'server: invalid password',
    ),
  /** AUTH on a node without a password (ioredis then only warns). */
  noPassword: () =>
    err(
      'KV_ERR_INVALID_ARGUMENT',
      'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
      'server: AUTH called without any password configured',
    ),
  multiNested: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR MULTI calls can not be nested'),
  execWithoutMulti: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR EXEC without MULTI'),
  discardWithoutMulti: () => err('KV_ERR_INVALID_ARGUMENT', 'ERR DISCARD without MULTI'),
  execAbort: () =>
    err('KV_ERR_EXECABORT', 'EXECABORT Transaction discarded because of previous errors.'),
  /** A command refused inside MULTI because it acts on the connection, not on data. */
  notInMulti: (name: string) =>
    err('KV_ERR_INVALID_ARGUMENT', `ERR Command not allowed inside a transaction: '${name}'`),
} as const;

/**
 * A conditional or read-modify-write command (SET NX/XX/GET, SETNX, INCR, GETSET, WATCH, ...):
 * refused, never applied, because making it atomic needs consensus that a leaderless
 * last-write-wins store does not have.
 */
export function notAtomic(what: string): KvError {
  return new KvError(
    'KV_ERR_NOT_ATOMIC',
    `protocol: ${what} needs an atomic read-modify-write, which kvstore (leaderless, last-write-wins) cannot give without consensus; nothing was applied. See ${DOCS}#conditional-writes`,
  );
}

/** Longest client name, lib-name or lib-ver (resp-admin.ts). */
export const MAX_CLIENT_ATTR_BYTES = 1024;

/**
 * A client name, lib-name or lib-ver longer than MAX_CLIENT_ATTR_BYTES (Redis takes any length,
 * and counts it in its client memory). `what`: `name`, `LIB-NAME`, `LIB-VER`.
 */
export function clientAttrTooLong(what: string, bytes: number): KvError {
  return new KvError(
    'KV_ERR_INVALID_ARGUMENT',
    `protocol: a client ${what} is at most ${MAX_CLIENT_ATTR_BYTES} bytes, not ${bytes}`,
  );
}

/** A Redis command kvstore does not have, with the reason. */
export function unsupported(name: string, reason: string): KvError {
  return new KvError(
    'KV_ERR_UNSUPPORTED',
    `protocol: '${name}' is not supported: ${reason}. See ${DOCS}#unsupported-commands`,
  );
}

/** Reasons for Redis commands kvstore refuses, by lower-case command name. */
export const UNSUPPORTED: ReadonlyMap<string, string> = (() => {
  const groups: [string, string][] = [
    [
      'kvstore stores strings only (no lists, hashes, sets, sorted sets, streams, geo or HyperLogLog)',
      'lpush rpush lpushx rpushx lpop rpop lrange llen lindex lset lrem ltrim linsert lpos lmove blmove lmpop blmpop blpop brpop brpoplpush rpoplpush ' +
        'hset hsetnx hget hmset hmget hgetall hdel hexists hkeys hvals hlen hincrby hincrbyfloat hscan hstrlen hrandfield hgetdel hgetex hsetex ' +
        'sadd srem smembers sismember smismember scard spop srandmember sinter sintercard sinterstore sunion sunionstore sdiff sdiffstore smove sscan ' +
        'zadd zrem zrange zrangebyscore zrangebylex zrevrange zrevrangebyscore zrevrangebylex zrank zrevrank zscore zmscore zcard zcount zlexcount zincrby zscan zpopmin zpopmax bzpopmin bzpopmax zmpop bzmpop zunionstore zinterstore zdiffstore zrangestore zrandmember zdiff zunion zinter zintercard zremrangebyscore zremrangebyrank zremrangebylex ' +
        'xadd xrange xrevrange xread xreadgroup xlen xdel xtrim xgroup xack xpending xclaim xautoclaim xinfo xsetid ' +
        'pfadd pfcount pfmerge geoadd geodist geohash geopos georadius georadiusbymember geosearch geosearchstore ' +
        'sort sort_ro',
    ],
    [
      'kvstore reads and writes whole values (GET, SET, STRLEN)',
      'getbit bitcount bitpos bitop bitfield_ro getrange substr lcs',
    ],
    [
      'kvstore has no publish/subscribe',
      'subscribe unsubscribe psubscribe punsubscribe publish pubsub ssubscribe sunsubscribe spublish',
    ],
    [
      'kvstore runs no scripts or functions',
      'eval evalsha eval_ro evalsha_ro script function fcall fcall_ro',
    ],
    [
      'kvstore persists every write before OK and replicates by itself (no snapshots, AOF or Redis replication)',
      'save bgsave bgrewriteaof lastsave replicaof slaveof sync psync failover wait waitaof',
    ],
    [
      'kvstore has no database-wide or server-wide destructive commands; delete keys with DEL, remove a node with kvctl decommission',
      'flushdb flushall swapdb shutdown debug',
    ],
    ['kvstore has one password and no users (AUTH <password>)', 'acl'],
    ['kvstore has no Redis Cluster mode: any node answers any key', 'readonly readwrite asking'],
    ['kvstore does not export or import serialized values', 'dump restore migrate'],
    [
      'kvstore has no command monitor or slow log; use the Prometheus metrics and logs',
      'monitor slowlog latency',
    ],
  ];
  const out = new Map<string, string>();
  for (const [reason, names] of groups) for (const n of names.split(' ')) out.set(n, reason);
  return out;
})();

/**
 * Conditional and read-modify-write commands, refused with notAtomic. SET's NX/XX/GET options
 * are refused by SET itself.
 */
export const NOT_ATOMIC: ReadonlySet<string> = new Set(
  (
    'setnx msetnx getset getdel incr incrby incrbyfloat decr decrby append setrange setbit ' +
    'bitfield copy rename renamenx move watch'
  ).split(' '),
);
