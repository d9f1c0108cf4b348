// Decoders of every peer message body: each method's request and reply, checked field by field.

import { KvError } from '../errors/index.ts';
import { decodeRecord, type Entry, MAX_KEY_BYTES, type StoredRecord } from '../storage/index.ts';
import {
  type ApplyReply,
  GET_MANY_MAX_KEYS,
  type HelloRequest,
  MAX_PLACEMENT_CHARS,
  type RingFence,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from './messages.ts';

/**
 * Hand-written rather than zod: they run on every peer request and reply, and a zod parse of an
 * `apply` body cost several times the request's own decode when measured (docs/security.md).
 * Every decoder takes the msgpack-decoded body (`unknown`), returns a typed copy holding only the
 * known fields, and throws a KvError naming the field:
 * - KV_ERR_INVALID_ARGUMENT for a wrong shape or type (in a request), KV_ERR_PEER_PROTOCOL for
 *   the same in a reply;
 * - KV_ERR_INVALID_KEY for a key that is empty or longer than MAX_KEY_BYTES;
 * - KV_ERR_BAD_RECORD for a record decodeRecord refuses.
 * Versions are checked against the clock separately (RemoteVersions), after the shape.
 */

/** Longest incarnation id accepted (they are 32 hex characters). */

const MAX_INCARNATION_CHARS = 128;

type Side = 'request' | 'reply';

function fail(side: Side, message: string): KvError {
  const code = side === 'request' ? 'KV_ERR_INVALID_ARGUMENT' : 'KV_ERR_PEER_PROTOCOL';
  return new KvError(code, `replica: ${message}`);
}

function object(v: unknown, side: Side, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw fail(side, `${what} must be a map`);
  }
  return v as Record<string, unknown>;
}

function bytes(v: unknown, side: Side, what: string): Buffer {
  if (!(v instanceof Uint8Array)) throw fail(side, `${what} must be bytes`);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** A key: 1 to MAX_KEY_BYTES bytes (`empty` allows 0, for scan bounds). */
function key(v: unknown, side: Side, what: string, empty = false): Buffer {
  const k = bytes(v, side, what);
  if ((k.length === 0 && !empty) || k.length > MAX_KEY_BYTES) {
    throw new KvError(
      'KV_ERR_INVALID_KEY',
      `replica: ${what} of ${k.length} bytes (must be ${empty ? 0 : 1} to ${MAX_KEY_BYTES})`,
    );
  }
  return k;
}

function flag(v: unknown, side: Side, what: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw fail(side, `${what} must be a boolean`);
  return v;
}

function record(v: unknown, side: Side, what: string): StoredRecord {
  const raw = bytes(v, side, what);
  try {
    return decodeRecord(raw);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new KvError('KV_ERR_BAD_RECORD', `replica: ${what}: ${msg}`, { cause: err });
  }
}

/** The optional expected incarnation `i` of a read request. */
function incarnation(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > MAX_INCARNATION_CHARS) {
    throw fail('request', 'i must be an incarnation id');
  }
  return v;
}

/** A list of `[key, record]` pairs, decoded: the body of `apply` and of a scan reply. */
function entries(v: unknown, side: Side): { entries: Entry[]; wire: WireEntry[] } {
  if (!Array.isArray(v)) throw fail(side, 'e must be a list');
  const out: Entry[] = [];
  const wire: WireEntry[] = [];
  for (let i = 0; i < v.length; i++) {
    const pair: unknown = v[i];
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw fail(side, `entry ${i} must be [key, record]`);
    }
    const k = key(pair[0], side, `entry ${i} key`);
    const raw = bytes(pair[1], side, `entry ${i} record`);
    out.push({ key: k, record: record(raw, side, `entry ${i} record`), raw });
    wire.push([k, raw]);
  }
  return { entries: out, wire };
}

/** A read's terms (ExpectIncarnation) as parsed: `o` absent reads as false. */
export interface ReadTermsIn {
  readonly i: string | undefined;
  readonly ir: number | undefined;
  readonly o: boolean;
}

/** `ir` of a read request: absent, or the epoch of the ring that recorded `i`. */
function recordedIn(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail('request', 'ir must be an epoch');
  return v as number;
}

/** `o` of a read request: absent, or 1 (the asker does not count this replica in its target). */
function outOfTarget(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (v !== 1) throw fail('request', 'o must be 1 when present');
  return true;
}

/** A whole number from 0 to Number.MAX_SAFE_INTEGER. */
function count(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/** Longest member name a hello request may give (a DNS name's bound). */
const MAX_NAME_CHARS = 253;

/**
 * A hello request's fields that read (`{}` from older versions, and for anything malformed: the
 * hello is answered all the same, as before).
 */
export function readHelloRequest(body: unknown): HelloRequest {
  if (typeof body !== 'object' || body === null) return {};
  const { name, serving, epoch, probeMs } = body as Partial<Record<keyof HelloRequest, unknown>>;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_CHARS) return {};
  return {
    name,
    ...(typeof serving === 'boolean' ? { serving } : {}),
    // Both or neither: a member's probes tell how current its ring is only with their interval.
    ...(count(epoch) && count(probeMs) && probeMs > 0 ? { epoch, probeMs } : {}),
  };
}

/** `get` request: `{k: key, i?: incarnation, o?: 1, h?: boolean}`. */
export function readGetRequest(body: unknown): { k: Buffer; h: boolean } & ReadTermsIn {
  const b = object(body, 'request', 'get body');
  return {
    k: key(b.k, 'request', 'k'),
    h: flag(b.h, 'request', 'h'),
    i: incarnation(b.i),
    ir: recordedIn(b.ir),
    o: outOfTarget(b.o),
  };
}

/**
 * `getMany` request: `{ks: [key, ...], i?: incarnation, o?: 1, h?: boolean}`, 1 to
 * GET_MANY_MAX_KEYS keys.
 */
export function readGetManyRequest(body: unknown): { ks: Buffer[]; h: boolean } & ReadTermsIn {
  const b = object(body, 'request', 'getMany body');
  if (!Array.isArray(b.ks) || b.ks.length === 0 || b.ks.length > GET_MANY_MAX_KEYS) {
    throw fail('request', `ks must be a list of 1 to ${GET_MANY_MAX_KEYS} keys`);
  }
  const ks = b.ks.map((k: unknown, n) => key(k, 'request', `ks[${n}]`));
  return {
    ks,
    h: flag(b.h, 'request', 'h'),
    i: incarnation(b.i),
    ir: recordedIn(b.ir),
    o: outOfTarget(b.o),
  };
}

/** `apply` request: `{e: [[key, record], ...]}`, every record decoded. */
export function readApplyRequest(body: unknown): Entry[] {
  return entries(object(body, 'request', 'apply body').e, 'request').entries;
}

/** An `apply` request's deadline `d` (ms since the epoch), or undefined when it has none. */
export function readApplyDeadline(body: unknown): number | undefined {
  const d = object(body, 'request', 'apply body').d;
  if (d === undefined || d === null) return undefined;
  if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
    throw fail('request', 'apply deadline d must be a non-negative integer');
  }
  return d;
}

/** An `apply` request's placement `p` (ApplyRequest.p), or undefined when it has none. */
export function readApplyPlacement(body: unknown): string | undefined {
  const p = object(body, 'request', 'apply body').p;
  if (p === undefined || p === null) return undefined;
  if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PLACEMENT_CHARS) {
    throw fail('request', 'apply placement p must be a ring id');
  }
  return p;
}

/**
 * `scan` request: a start `s` of 0 to MAX_KEY_BYTES bytes, an end `e` of 1 to MAX_KEY_BYTES or
 * null (to the end; an empty one, the empty key, is KV_ERR_INVALID_KEY: no member sends it, and
 * LMDB would read it as no end), booleans `ie`/`xs`/`h` (absent: false) and a limit `l` of 1 to
 * `maxEntries`.
 */
export function readScanRequest(
  body: unknown,
  maxEntries: number,
): Omit<ScanRequest, 'i' | 'ir' | 'o'> & ReadTermsIn {
  const b = object(body, 'request', 'scan body');
  const l = b.l;
  if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > maxEntries) {
    const got = typeof l === 'number' ? l : typeof l;
    throw fail('request', `scan limit ${got} (must be 1 to ${maxEntries})`);
  }
  return {
    s: key(b.s, 'request', 's', true),
    e: b.e === null || b.e === undefined ? null : key(b.e, 'request', 'e'),
    ie: flag(b.ie, 'request', 'ie'),
    xs: flag(b.xs, 'request', 'xs'),
    l,
    h: flag(b.h, 'request', 'h'),
    i: incarnation(b.i),
    ir: recordedIn(b.ir),
    o: outOfTarget(b.o),
  };
}

/** `get` reply: `{r: record | null}`; the record decoded, or null. */
export function readGetReply(reply: unknown): { raw: Buffer; record: StoredRecord } | null {
  const r = object(reply, 'reply', 'get reply').r;
  if (r === null || r === undefined) return null;
  const raw = bytes(r, 'reply', 'get reply r');
  return { raw, record: record(raw, 'reply', 'get reply r') };
}

/**
 * `getMany` reply: `{rs: [record | null, ...]}`, the records of the first 1 to `asked` keys
 * asked, each checked as in `get`.
 */
export function readGetManyReply(
  reply: unknown,
  asked: number,
): ({ raw: Buffer; record: StoredRecord } | null)[] {
  const rs = object(reply, 'reply', 'getMany reply').rs;
  if (!Array.isArray(rs) || rs.length === 0 || rs.length > asked) {
    throw fail('reply', `getMany reply rs must be a list of 1 to ${asked} records`);
  }
  return rs.map((r: unknown, n) => {
    if (r === null || r === undefined) return null;
    const raw = bytes(r, 'reply', `getMany reply rs[${n}]`);
    return { raw, record: record(raw, 'reply', `getMany reply rs[${n}]`) };
  });
}

/** Longest sender name a ring fence may carry (a DNS name's bound). */
const MAX_FENCE_NAME_CHARS = 253;

/**
 * The ring fence `f` of a request body (RingFence), or undefined when it has none (older
 * senders, and bodies that are not maps). A malformed one is KV_ERR_INVALID_ARGUMENT.
 */
export function readRingFence(body: unknown): RingFence | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const f = (body as { f?: unknown }).f;
  if (f === undefined || f === null) return undefined;
  if (
    !Array.isArray(f) ||
    f.length !== 3 ||
    !Number.isSafeInteger(f[0]) ||
    (f[0] as number) < 0 ||
    typeof f[1] !== 'string' ||
    f[1].length > MAX_FENCE_NAME_CHARS ||
    (f[2] !== 0 && f[2] !== 1)
  ) {
    throw fail('request', 'f must be a ring fence [epoch, sender, 0 or 1]');
  }
  return f as unknown as RingFence;
}

/** `apply` reply: `{n: count}`. */
export function readApplyReply(reply: unknown): ApplyReply {
  const n = object(reply, 'reply', 'apply reply').n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw fail('reply', 'apply reply n must be a count');
  }
  return { n };
}

/** What a `synced` reply says: the answering process, and the hints it holds. */
export interface Synced {
  /** Its id (random, made when it started); undefined from the first members with `synced`. */
  readonly process: string | undefined;
  /** Hints it holds as it answers (`h`); undefined from members before it. */
  readonly hints: number | undefined;
}

/** `synced` reply: `{b, h}` (Synced). */
export function readSyncedReply(reply: unknown): Synced {
  const { b, h } = object(reply, 'reply', 'synced reply');
  if (b !== undefined && (typeof b !== 'string' || b.length === 0 || b.length > 64)) {
    throw fail('reply', 'synced reply b must be a process id');
  }
  if (h !== undefined && (typeof h !== 'number' || !Number.isSafeInteger(h) || h < 0)) {
    throw fail('reply', 'synced reply h must be a count of hints');
  }
  return { process: b as string | undefined, hints: h as number | undefined };
}

/** `scan` reply: `{e: [[key, record], ...], more: boolean}`; at most `limit` entries, keys ascending. */
export function readScanReply(
  reply: unknown,
  limit: number,
): ScanReply & { records: StoredRecord[] } {
  const b = object(reply, 'reply', 'scan reply');
  const { entries: decoded, wire } = entries(b.e, 'reply');
  if (wire.length > limit) throw fail('reply', `scan reply of ${wire.length} > ${limit} entries`);
  for (let i = 1; i < wire.length; i++) {
    if (Buffer.compare(wire[i - 1]![0], wire[i]![0]) >= 0) {
      throw fail('reply', `scan reply keys not ascending at entry ${i}`);
    }
  }
  if (typeof b.more !== 'boolean') throw fail('reply', 'scan reply more must be a boolean');
  return { e: wire, more: b.more, records: decoded.map((d) => d.record) };
}
