// RESP commands of expiring keys, parsed and checked exactly as Redis 7 does: SET's EX/PX/EXAT/
// PXAT/KEEPTTL, SETEX, PSETEX, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME,
// PEXPIRETIME, PERSIST and GETEX.

import type { KvError } from '../errors/index.ts';
import {
  type Command,
  type CommandLimits,
  type ExpiryChange,
  type ExpirySpec,
  type TtlForm,
  validateBinaryKey,
  validateValue,
} from './command.ts';
import type { Reply } from './reply.ts';
import { notAtomic, respErrors } from './resp-errors.ts';
import { integer, keyword, type RespRequest, type RespSpec } from './resp-spec.ts';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/**
 * Redis's string2ll: `0`, or an optional `-` and digits without a leading zero, within a signed
 * 64-bit integer (at most 20 characters); null for anything else (`+1`, `01`, `-0`, ` 1`, `1.5`).
 */
export function int64Arg(raw: Buffer): bigint | null {
  if (raw.length > 20) return null;
  const text = raw.toString('latin1');
  if (!/^(0|-?[1-9][0-9]*)$/.test(text)) return null;
  const v = BigInt(text);
  return v >= INT64_MIN && v <= INT64_MAX ? v : null;
}

const invalidExpire = respErrors.invalidExpire;

/** SET's options that make it conditional (or read the old value): refused, see notAtomic. */
const CONDITIONAL_SET = new Set(['NX', 'XX', 'GET', 'IFEQ', 'IFNE', 'IFDEQ', 'IFDNE']);

/** The options that carry an expiry, and how: seconds or ms, relative or absolute. */
const TTL_OPTIONS: Readonly<Record<string, { seconds: boolean; relative: boolean }>> = {
  EX: { seconds: true, relative: true },
  PX: { seconds: false, relative: true },
  EXAT: { seconds: true, relative: false },
  PXAT: { seconds: false, relative: false },
};

/**
 * An expiry of SET, SETEX, PSETEX or GETEX (Redis's getExpireMillisecondsOrReply): an integer
 * (else `ERR value is not an integer or out of range`) above 0 whose milliseconds, plus the
 * time now for EX/PX, fit in a signed 64-bit integer (else `ERR invalid expire time in '<name>'
 * command`). An EXAT/PXAT in the past is valid: the key is deleted.
 */
export function setExpiry(raw: Buffer, option: string, name: string, now: number): ExpirySpec {
  const o = TTL_OPTIONS[option]!;
  const v = int64Arg(raw);
  if (v === null) throw respErrors.notInteger();
  if (v <= 0n || (o.seconds && v > INT64_MAX / 1000n)) throw invalidExpire(name);
  const ms = o.seconds ? v * 1000n : v;
  if (o.relative && ms + BigInt(now) > INT64_MAX) throw invalidExpire(name);
  return { relative: o.relative, ms: Number(ms) };
}

/**
 * SET's and GETEX's options (Redis's parseExtendedStringArgumentsOrReply): one of EX/PX/EXAT/
 * PXAT with its number (the same option again replaces it; two different ones are a syntax
 * error), or KEEPTTL (SET) or PERSIST (GETEX) instead. Returns the option given (or null) and
 * its raw number.
 */
function ttlOptions(
  args: readonly Buffer[],
  from: number,
  allowed: 'KEEPTTL' | 'PERSIST',
): { option: string | null; raw: Buffer | null } {
  let option: string | null = null;
  let raw: Buffer | null = null;
  for (let i = from; i < args.length; i++) {
    const opt = keyword(args[i]);
    if (opt === allowed && (option === null || option === allowed)) {
      option = opt;
    } else if (
      TTL_OPTIONS[opt] !== undefined &&
      (option === null || option === opt) &&
      i + 1 < args.length
    ) {
      option = opt;
      raw = args[++i]!;
    } else {
      throw respErrors.syntax();
    }
  }
  return { option, raw };
}

const run = (cmd: Command, shape?: (r: Reply) => Reply): RespRequest =>
  shape ? { kind: 'command', cmd, shape } : { kind: 'command', cmd };
const key = (b: Buffer, l: CommandLimits) => validateBinaryKey(b, l);

/**
 * SET key value [EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL]. NX, XX, GET (and Redis 8's
 * IFEQ and the like) anywhere among the options make it conditional: refused first.
 */
export function parseSet(args: readonly Buffer[], l: CommandLimits): RespRequest {
  for (let i = 3; i < args.length; i++) {
    const opt = keyword(args[i]);
    if (CONDITIONAL_SET.has(opt)) throw notAtomic(`SET ... ${opt}`);
  }
  const { option, raw } = ttlOptions(args, 3, 'KEEPTTL');
  const k = key(args[1]!, l);
  const value = validateValue(args[2]!, l);
  if (option === 'KEEPTTL') return run({ type: 'put', key: k, value, keepTtl: true });
  if (option === null) return run({ type: 'put', key: k, value });
  const expiry = setExpiry(raw!, option, 'set', Date.now());
  return run({ type: 'put', key: k, value, expiry });
}

/** SETEX key seconds value, PSETEX key ms value. */
function setex(option: 'EX' | 'PX', name: string): RespSpec {
  return {
    arity: 4,
    flags: ['write'],
    keys: [1, 1, 1],
    run: (a, c) => {
      const expiry = setExpiry(a[2]!, option, name, Date.now());
      return run({
        type: 'put',
        key: key(a[1]!, c.limits),
        value: validateValue(a[3]!, c.limits),
        expiry,
      });
    },
  };
}

/** not_found (absent) is 0; an integer stays. */
const zeroWhenAbsent = (r: Reply): Reply => (r.type === 'not_found' ? integer(0) : r);

/**
 * EXPIRE key n [NX|XX|GT|LT] and its variants (Redis's expireGenericCommand): options are read
 * first (anything else is `ERR Unsupported option <opt>`; NX/XX/GT/LT are conditional:
 * refused), then the integer; seconds beyond a 64-bit count of ms, or a time that does not fit
 * once the base is added, are `ERR invalid expire time`. Zero, negative and past times are valid
 * and delete the key.
 */
function expire(name: string, seconds: boolean, relative: boolean): RespSpec {
  return {
    arity: -3,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    run: (a, c) => {
      const conditions = ['NX', 'XX', 'GT', 'LT'];
      for (let i = 3; i < a.length; i++) {
        if (conditions.includes(keyword(a[i]))) continue;
        throw respErrors.unsupportedOption(a[i]!);
      }
      if (a.length > 3) throw notAtomic(`${name.toUpperCase()} ... ${keyword(a[3])}`);
      let v = int64Arg(a[2]!);
      if (v === null) throw respErrors.notInteger();
      if (seconds) {
        if (v > INT64_MAX / 1000n || v < INT64_MIN / 1000n) throw invalidExpire(name);
        v *= 1000n;
      }
      if (v > INT64_MAX - (relative ? BigInt(Date.now()) : 0n)) throw invalidExpire(name);
      const expiry = { relative, ms: Number(v) };
      return run({ type: 'expire', key: key(a[1]!, c.limits), expiry }, zeroWhenAbsent);
    },
  };
}

function ttl(form: TtlForm): RespSpec {
  return {
    arity: 2,
    flags: ['readonly', 'fast'],
    keys: [1, 1, 1],
    run: (a, c) =>
      run({ type: 'ttl', key: key(a[1]!, c.limits), form }, (r) =>
        r.type === 'not_found' ? integer(-2) : r,
      ),
  };
}

/** GETEX key [EX s | PX ms | EXAT ts | PXAT ts-ms | PERSIST]. */
function getex(args: readonly Buffer[], l: CommandLimits): RespRequest {
  const { option, raw } = ttlOptions(args, 2, 'PERSIST');
  let change: ExpiryChange = { kind: 'none' };
  if (option === 'PERSIST') change = { kind: 'persist' };
  else if (option !== null) {
    // Redis checks the number only once it found the key: a missing key is nil whatever it is.
    try {
      change = { kind: 'set', expiry: setExpiry(raw!, option, 'getex', Date.now()) };
    } catch (err) {
      change = { kind: 'invalid', error: err as KvError };
    }
  }
  return run({ type: 'getex', key: key(args[1]!, l), change });
}

/** The expiry commands, by lower-case name (SET itself stays in the main table). */
export const EXPIRY_COMMANDS: Readonly<Record<string, RespSpec>> = {
  setex: setex('EX', 'setex'),
  psetex: setex('PX', 'psetex'),
  expire: expire('expire', true, true),
  pexpire: expire('pexpire', false, true),
  expireat: expire('expireat', true, false),
  pexpireat: expire('pexpireat', false, false),
  ttl: ttl('ttl'),
  pttl: ttl('pttl'),
  expiretime: ttl('expiretime'),
  pexpiretime: ttl('pexpiretime'),
  persist: {
    arity: 2,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    run: (a, c) => run({ type: 'persist', key: key(a[1]!, c.limits) }, zeroWhenAbsent),
  },
  getex: {
    arity: -2,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    run: (a, c) => getex(a, c.limits),
  },
};
