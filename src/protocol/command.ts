// The command table shared by every framing: a read-only tagged union and its validation.

import { KvError } from '../errors/index.ts';

/** Scan pagination: at most `limit` keys, strictly after `cursor` when one is given. */
export interface ScanPage {
  /** Keys to return at most; null when the client gave no LIMIT (the node's cap applies). */
  readonly limit: number | null;
  /** Resume strictly after this key (the cursor a previous paged reply returned). */
  readonly cursor: Buffer | null;
}

/**
 * When a key expires: `ms` after the write's own time (relative: EX, PX, EXPIRE, ...) or at `ms`
 * since the epoch (EXAT, PXAT, EXPIREAT, ...). The coordinator resolves it against its clock.
 * Parsers have checked it the way Redis does; it may be zero or negative (already expired) only
 * for the EXPIRE family, which then deletes the key.
 */
export interface ExpirySpec {
  readonly relative: boolean;
  readonly ms: number;
}

/** What GETEX does to the key's expiry after reading it. */
export type ExpiryChange =
  | { readonly kind: 'none' }
  | { readonly kind: 'persist' }
  | { readonly kind: 'set'; readonly expiry: ExpirySpec }
  /** An option Redis only checks once the key is found: answered with `error` then. */
  | { readonly kind: 'invalid'; readonly error: KvError };

/** Which TTL query: seconds or ms left (TTL, PTTL), or the absolute expiry (EXPIRETIME, ...). */
export type TtlForm = 'ttl' | 'pttl' | 'expiretime' | 'pexpiretime';

export type Command =
  /**
   * A write of a value. `expiry`: the value expires then (an expiry already past deletes the
   * key); `keepTtl`: the value keeps the expiry the key has (read first); neither: no expiry.
   */
  | {
      readonly type: 'put';
      readonly key: Buffer;
      readonly value: Buffer;
      readonly expiry?: ExpirySpec;
      readonly keepTtl?: boolean;
    }
  | { readonly type: 'get'; readonly key: Buffer }
  | { readonly type: 'remove'; readonly key: Buffer }
  /** Keys k with start <= k <= end in byte order. */
  | {
      readonly type: 'range';
      readonly start: Buffer;
      readonly end: Buffer;
      readonly page: ScanPage;
    }
  /**
   * Keys that start with prefix: the range [prefix, successor(prefix)). An empty prefix (only
   * from RESP's SCAN and KEYS) is every key.
   */
  | { readonly type: 'prefix'; readonly prefix: Buffer; readonly page: ScanPage }
  /**
   * PONG, or `message` as a bulk reply (RESP's PING with an argument). The message is the
   * command's data, not a closure's: a PING queued in MULTI is copied and counted with it.
   */
  | { readonly type: 'ping'; readonly message?: Buffer }
  | { readonly type: 'quit' }
  /** Cluster state as one JSON line: members, states, ring shares, transfers. */
  | { readonly type: 'cluster' }
  /** Authenticates the connection; handled by the server, never by the coordinator. */
  | {
      readonly type: 'auth';
      readonly password: Buffer;
      /** Sent as `AUTH default <password>` (RESP's two-argument form). */
      readonly named: boolean;
    }
  // Multi-key and server commands; only RESP produces them.
  /** REMOVE of each distinct key; answers the integer count of keys that were live. */
  | { readonly type: 'del'; readonly keys: readonly Buffer[] }
  /** GET of each key; answers the integer count of live keys (a key given twice counts twice). */
  | { readonly type: 'exists'; readonly keys: readonly Buffer[] }
  /** GET of each key; answers an array of values, not_found for absent keys. */
  | { readonly type: 'mget'; readonly keys: readonly Buffer[] }
  /** PUT of each pair, concurrently; OK once every one is durable, else the first error. */
  | { readonly type: 'mset'; readonly entries: readonly (readonly [Buffer, Buffer])[] }
  /** The cluster's number of live keys (an estimate, see the coordinator). */
  | { readonly type: 'dbsize' }
  /**
   * INFO's cluster-side sections (`replication`, `keyspace`); `sections` are the lower-case
   * names asked for, empty for all.
   */
  | { readonly type: 'info'; readonly sections: readonly string[] }
  // Expiry (see docs/redis.md, Expiry). Each reads the key (a quorum read), then writes.
  /**
   * Sets the key's expiry (an expiry already past deletes it). Answers integer 1, or not_found
   * when the key is absent or expired (nothing written).
   */
  | { readonly type: 'expire'; readonly key: Buffer; readonly expiry: ExpirySpec }
  /** Removes the expiry. Answers integer 1 when it had one, 0 when not, not_found when absent. */
  | { readonly type: 'persist'; readonly key: Buffer }
  /** The key's expiry: integer (see TtlForm), -1 when it has none, not_found when absent. */
  | { readonly type: 'ttl'; readonly key: Buffer; readonly form: TtlForm }
  /** GET that may change the expiry: the value (read before the change), or not_found. */
  | { readonly type: 'getex'; readonly key: Buffer; readonly change: ExpiryChange };

export type CommandType = Command['type'];

/** Every command type, for metrics that pre-create one series per command. */
export const COMMAND_TYPES: readonly CommandType[] = [
  'put',
  'get',
  'remove',
  'range',
  'prefix',
  'ping',
  'quit',
  'cluster',
  'auth',
  'del',
  'exists',
  'mget',
  'mset',
  'dbsize',
  'info',
  'expire',
  'persist',
  'ttl',
  'getex',
];

/**
 * How a command may overlap with its neighbours on one connection: consecutive `write`s (PUT,
 * MSET) or consecutive `read`s may run together; an `exclusive` command (REMOVE, DEL, EXPIRE,
 * PERSIST, GETEX with an option, SET KEEPTTL: they read, then write) runs alone, after
 * everything before it and before anything after it.
 */
export type Ordering = 'read' | 'write' | 'exclusive';

export function orderingOf(cmd: Command): Ordering {
  switch (cmd.type) {
    case 'put':
      return cmd.keepTtl ? 'exclusive' : 'write';
    case 'mset':
      return 'write';
    case 'remove':
    case 'del':
    case 'expire':
    case 'persist':
      return 'exclusive';
    case 'getex':
      return cmd.change.kind === 'none' ? 'read' : 'exclusive';
    default:
      return 'read';
  }
}

/** Limits every command is validated against; from the node's configuration. */
export interface CommandLimits {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** The largest LIMIT a client may ask for. */
  readonly maxScanKeys: number;
}

/** The index of the first ASCII control character, space or DEL in `key`, or -1 when none. */
export function controlByteAt(key: Buffer): number {
  for (let i = 0; i < key.length; i++) {
    const b = key[i]!;
    if (b <= 0x20 || b === 0x7f) return i;
  }
  return -1;
}

/**
 * Checks a key as the text protocol carries it: a binary-safe key (validateBinaryKey) with no
 * ASCII control characters, space or DEL. Throws KV_ERR_INVALID_KEY.
 */
export function validateKey(key: Buffer, limits: CommandLimits, what = 'key'): Buffer {
  validateBinaryKey(key, limits, what);
  const at = controlByteAt(key);
  if (at !== -1) {
    throw new KvError(
      'KV_ERR_INVALID_KEY',
      `protocol: ${what} has a control or whitespace character at byte ${at}`,
    );
  }
  return key;
}

/**
 * Checks a key as RESP carries it: binary-safe, any bytes, but non-empty and at most
 * maxKeyBytes. Throws KV_ERR_INVALID_KEY.
 */
export function validateBinaryKey(key: Buffer, limits: CommandLimits, what = 'key'): Buffer {
  if (key.length === 0) throw new KvError('KV_ERR_INVALID_KEY', `protocol: ${what} is empty`);
  if (key.length > limits.maxKeyBytes) {
    throw new KvError(
      'KV_ERR_INVALID_KEY',
      `protocol: ${what} is ${key.length} bytes, the limit is ${limits.maxKeyBytes}`,
    );
  }
  return key;
}

/** Checks a value against maxValueBytes. Throws KV_ERR_VALUE_TOO_LARGE. */
export function validateValue(value: Buffer, limits: CommandLimits): Buffer {
  if (value.length > limits.maxValueBytes) {
    throw new KvError(
      'KV_ERR_VALUE_TOO_LARGE',
      `protocol: value is ${value.length} bytes, the limit is ${limits.maxValueBytes}`,
    );
  }
  return value;
}

/** Parses a LIMIT argument: a positive integer no larger than maxScanKeys. */
export function parseLimit(raw: Buffer, limits: CommandLimits): number {
  const text = raw.toString('latin1');
  if (!/^[1-9][0-9]{0,9}$/.test(text)) {
    throw new KvError('KV_ERR_INVALID_ARGUMENT', `protocol: LIMIT must be a positive integer`);
  }
  const n = Number(text);
  if (n > limits.maxScanKeys) {
    throw new KvError(
      'KV_ERR_INVALID_ARGUMENT',
      `protocol: LIMIT ${n} is above the node's cap of ${limits.maxScanKeys}`,
    );
  }
  return n;
}

/** How a framing checks the scan options: its key rule and its error for malformed options. */
export interface ScanPageRules {
  readonly key: (key: Buffer, limits: CommandLimits, what: string) => Buffer;
  readonly malformed: () => KvError;
}

/**
 * Parses the optional scan options after RANGE/PREFIX arguments: `LIMIT n` then optionally
 * `CURSOR key`, keywords case-insensitive. CURSOR needs LIMIT. The cursor is checked with the
 * framing's key rule; anything else malformed throws `rules.malformed()`.
 */
export function parseScanPage(
  args: readonly Buffer[],
  limits: CommandLimits,
  rules: ScanPageRules,
): ScanPage {
  if (args.length === 0) return { limit: null, cursor: null };
  const kw = (i: number) => args[i]?.toString('latin1').toUpperCase();
  if (kw(0) !== 'LIMIT' || (args.length !== 2 && args.length !== 4)) throw rules.malformed();
  const limit = parseLimit(args[1]!, limits);
  if (args.length === 2) return { limit, cursor: null };
  if (kw(2) !== 'CURSOR') throw rules.malformed();
  return { limit, cursor: rules.key(args[3]!, limits, 'cursor') };
}
