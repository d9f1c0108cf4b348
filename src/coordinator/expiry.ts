// Expiry commands: each reads the key's newest record, then writes a record with a new version.

import type { Command, ExpirySpec, Reply } from '../protocol/index.ts';
import {
  type HybridClock,
  isLive,
  MAX_EXPIRES_AT,
  type StoredRecord,
  type Version,
} from '../storage/index.ts';

type ExpiryCommand = Extract<Command, { type: 'expire' | 'persist' | 'ttl' | 'getex' | 'put' }>;

/** How the expiry commands reach the key's replicas (the coordinator's quorum read and write). */
export interface RecordAccess {
  readonly clock: HybridClock;
  /**
   * A new version from `clock`, checked in the same turn that this node may make versions (its
   * clock agrees with its peers'); throws KV_ERR_CLOCK_OFFSET otherwise. Every write's version
   * comes from here: one made after a read came back is checked again, as the clock may have
   * been stepped while the read waited.
   */
  version(): Version;
  /** The newest record of `key` among a read quorum (tombstones included), or null. */
  read(key: Buffer): Promise<StoredRecord | null>;
  /**
   * Writes `record` to the key's replicas; resolves once a write quorum made it durable.
   * `readAt`: when the read began whose value `record` writes back (an expiry change): its
   * copies must then land within the repair window of it (ClusterOptions.repairWithinMs), or the
   * write fails and nothing of it is hinted.
   */
  write(key: Buffer, record: StoredRecord, readAt?: number): Promise<void>;
  /**
   * Deletes `key`, which the read found absent: a tombstone at `version` to its replicas, as
   * REMOVE writes one (a write that failed may sit on a replica the read did not ask, and would
   * come back after the delete was answered). Nothing when this node is the key's only replica.
   */
  deleteAbsent(key: Buffer, version: Version): Promise<void>;
}

const NOT_FOUND: Reply = { type: 'not_found' };
const OK: Reply = { type: 'ok' };
const EMPTY = Buffer.alloc(0);
const int = (value: number): Reply => ({ type: 'integer', value });
const tombstone = (version: Version): StoredRecord => ({ version, tombstone: true, value: EMPTY });

/** The absolute expiry of `spec` for a write made at `version`, within MAX_EXPIRES_AT. */
export function resolveExpiry(spec: ExpirySpec, version: Version): number {
  const at = spec.relative ? version.wall + spec.ms : spec.ms;
  return Math.min(at, MAX_EXPIRES_AT);
}

/**
 * A write of `value` at `version` that expires at `at` (undefined: never); an expiry at or before
 * the write's own time is a delete, so an already expired value is never stored.
 */
function valueRecord(version: Version, value: Buffer, at: number | undefined): StoredRecord {
  if (at === undefined) return { version, tombstone: false, value };
  if (at <= version.wall) return tombstone(version);
  return { version, tombstone: false, value, expiresAt: at };
}

/**
 * `rec`'s value again at a new `version` with expiry `at` (undefined: none): an expiry change.
 * It keeps `base`, the version of the value, so it never wins over a later write of another
 * value or a delete, even one with a lower version than its own (compareRecords).
 */
function expiryChange(rec: StoredRecord, version: Version, at: number | undefined): StoredRecord {
  const base = rec.base ?? rec.version;
  if (at === undefined) return { version, tombstone: false, value: rec.value, base };
  return { version, tombstone: false, value: rec.value, expiresAt: at, base };
}

/**
 * Reads the key's newest record and takes a version above it. The record counts only if live
 * at that version's time: a key that expired before the write's time is absent for it.
 */
async function readForWrite(
  io: RecordAccess,
  key: Buffer,
): Promise<{ rec: StoredRecord | null; version: Version; arrived: Version; readAt: number }> {
  // Made before the read: the version of a delete of a key the read found absent (whenAbsent).
  const arrived = io.version();
  // An expiry change writes back the value read: its copies land within the window of this.
  const readAt = Date.now();
  const rec = await io.read(key);
  if (rec) io.clock.observe(rec.version);
  const version = io.version();
  return { rec: rec && isLive(rec, version.wall) ? rec : null, version, arrived, readAt };
}

/**
 * The reply of an expiry command whose read found the key absent (not_found). An expiry `at` or
 * before `version`'s time asked to delete the key: that delete is written all the same
 * (RecordAccess.deleteAbsent), so a failed write sent before it cannot come back after it was
 * answered. An expiry change (a later time, PERSIST) writes nothing: it yields to any value
 * written after the one its read found (expiryChange), so a tombstone here could only delete
 * another client's write that this read missed, as an expiry change of a value never would.
 */
async function whenAbsent(
  io: RecordAccess,
  key: Buffer,
  at: number | undefined,
  { version, arrived }: { version: Version; arrived: Version },
): Promise<Reply> {
  // Versioned as the command arrived, as REMOVE's: above every write made before it, below a
  // write made after it arrived that its read missed, which a delete answering 0 must not undo.
  if (at !== undefined && at <= version.wall) await io.deleteAbsent(key, arrived);
  return NOT_FOUND;
}

/**
 * Runs an expiry command (and PUT with an expiry or KEEPTTL). A write that only changes the
 * expiry carries the value it read; see expiryChange for why a racing write of another value
 * still wins.
 */
export async function executeExpiry(cmd: ExpiryCommand, io: RecordAccess): Promise<Reply> {
  switch (cmd.type) {
    case 'put': {
      if (!cmd.keepTtl) {
        const version = io.version();
        const at = cmd.expiry && resolveExpiry(cmd.expiry, version);
        await io.write(cmd.key, valueRecord(version, cmd.value, at));
        return OK;
      }
      const { rec, version } = await readForWrite(io, cmd.key);
      await io.write(cmd.key, valueRecord(version, cmd.value, rec?.expiresAt));
      return OK;
    }
    case 'expire': {
      const read = await readForWrite(io, cmd.key);
      const { rec, version } = read;
      const at = resolveExpiry(cmd.expiry, version);
      if (!rec) return whenAbsent(io, cmd.key, at, read);
      if (at <= version.wall) await io.write(cmd.key, tombstone(version));
      else await io.write(cmd.key, expiryChange(rec, version, at), read.readAt);
      return int(1);
    }
    case 'persist': {
      const { rec, version, readAt } = await readForWrite(io, cmd.key);
      if (!rec) return NOT_FOUND;
      if (rec.expiresAt === undefined) return int(0);
      await io.write(cmd.key, expiryChange(rec, version, undefined), readAt);
      return int(1);
    }
    case 'getex': {
      const c = cmd.change;
      // A read (no expiry change): no version made, so not refused while the clock is.
      if (c.kind === 'none') {
        const rec = await io.read(cmd.key);
        return rec && isLive(rec, io.clock.wallNow())
          ? { type: 'value', value: rec.value }
          : NOT_FOUND;
      }
      const read = await readForWrite(io, cmd.key);
      const { rec, version } = read;
      if (!rec) {
        // Redis checks the number only once it found the key: nil for an invalid one.
        const at = c.kind === 'set' ? resolveExpiry(c.expiry, version) : undefined;
        return whenAbsent(io, cmd.key, at, read);
      }
      if (c.kind === 'invalid') throw c.error;
      const value: Reply = { type: 'value', value: rec.value };
      if (c.kind === 'persist' && rec.expiresAt === undefined) return value;
      const at = c.kind === 'set' ? resolveExpiry(c.expiry, version) : undefined;
      if (at !== undefined && at <= version.wall) await io.write(cmd.key, tombstone(version));
      else await io.write(cmd.key, expiryChange(rec, version, at), read.readAt);
      return value;
    }
    case 'ttl': {
      const rec = await io.read(cmd.key);
      const now = io.clock.wallNow();
      if (!rec || !isLive(rec, now)) return NOT_FOUND;
      const at = rec.expiresAt;
      if (at === undefined) return int(-1);
      switch (cmd.form) {
        case 'pttl':
          return int(at - now);
        case 'ttl':
          return int(Math.floor((at - now + 500) / 1000));
        case 'pexpiretime':
          return int(at);
        case 'expiretime':
          return int(Math.floor(at / 1000));
        default: {
          const never: never = cmd.form;
          throw new Error(`coordinator: unhandled TTL form ${String(never)}`);
        }
      }
    }
    default: {
      const never: never = cmd;
      throw new Error(`coordinator: unhandled command ${JSON.stringify(never)}`);
    }
  }
}
