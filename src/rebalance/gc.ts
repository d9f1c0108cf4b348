// Tombstone collection: remove a delete marker once no member holds anything older and the grace passed.

import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import { FailureLog, type Logger } from '../observability/index.ts';
import type { Replicas, Synced } from '../replica/index.ts';
import {
  compareRecords,
  decodeRecord,
  deletedAt,
  type Storage,
  type StoredRecord,
  type Version,
} from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';

export interface GcOptions {
  readonly self: string;
  readonly storage: Storage;
  readonly topology: Topology;
  readonly replicas: Replicas;
  /**
   * True when the whole cluster is at rest, as this node sees it: every member up, active (none
   * decommissioning), routing by this node's target ring, holding this node's settled ring and
   * reporting the transfer to it finished. Then no stream, hand-off or ring change is under way
   * that could carry a record older than a tombstone to a member after the tombstone went.
   */
  readonly quiet: () => boolean;
  readonly graceMs: number;
  /**
   * An expired record's age counts from the later of its expiry and its version plus this
   * (transfer.ts expiredLaterMs: a copy of its value may have landed that much later than a
   * tombstone's). Absent: 0.
   */
  readonly expiredAfterMs?: number;
  /**
   * Hints this node holds now, queued ones included (Hints.held). Collection goes on only when
   * neither it nor any member (its `synced` answer) holds one: see collectTombstones. Absent: 0.
   */
  readonly hintsHeld?: () => number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
}

const BATCH = 256;

/**
 * One collection pass, only while the cluster is quiet (GcOptions.quiet), and only as long as it
 * stays quiet and on the same rings (checked again after every round of questions). A tombstone
 * older than the grace period is removed from this node when every member, owner of its key or
 * not, answers with the same tombstone, something newer, or nothing: then no member holds an
 * older value that could come back (a member holding a copy it does not own drops it in its own
 * clean-up, Rebalancer.onSettled, and the tombstone goes in a later pass). Each node collects its
 * own copy. Returns how many it removed.
 */
export async function collectTombstones(o: GcOptions): Promise<number> {
  if (o.topology.moving || !o.quiet()) return 0;
  o.metrics.gcPasses.inc();
  const transfer = o.topology.transferId;
  const epoch = o.topology.settledRing.epoch;
  const unchanged = () =>
    !o.topology.moving &&
    o.topology.transferId === transfer &&
    o.topology.settledRing.epoch === epoch &&
    o.quiet();
  const members = o.topology.target.members.filter((n) => n !== o.self);
  const cutoff = Date.now() - o.graceMs;
  let removed = 0;
  let after: Buffer | null = null;
  /** What each member answered to the last `synced` (syncedBy), once asked. */
  let started: Synced[] | null = null;
  for (;;) {
    const batch: { key: Buffer; version: Version; record: StoredRecord }[] = [];
    for (const key of o.storage.tombstoneKeys(after)) {
      after = Buffer.from(key);
      const rec = o.storage.get(key);
      // An expired record's tombstone counts its age from the expiry (deletedAt).
      if (rec?.tombstone && collectedAfter(rec, o.expiredAfterMs ?? 0) < cutoff)
        batch.push({ key: after, version: rec.version, record: rec });
      if (batch.length === BATCH) break;
    }
    if (batch.length === 0) break;
    // Each member's process before the questions (see below).
    started ??= await syncedBy(o, members);
    if (started === null) break;
    const safe = await Promise.all(batch.map((t) => noOlderCopy(o, members, t, cutoff)));
    // The answers count only for the rings they were asked under, and only once each member's
    // are on its disk: a replica answers writes it has not synced yet (a tombstone a read
    // repair just gave it), which a power cut there would take back. And only when the process
    // that synced them is the one that answered them: the same one answered `synced` before
    // the questions and after (a member restarted between its answer and its sync, its power
    // cut meanwhile, synced nothing of what it answered).
    // And only while no member holds a hint, as it answers after the questions: a hint is a
    // write (or a read repair) made before this pass began, perhaps of a record older than the
    // tombstone, which its delivery would bring back once the tombstone is gone. The hellos
    // that quiet() reads say so only a probe later: a hint made just before the grace ran out
    // was not seen (older members do not say: their hellos alone count).
    if (safe.some(Boolean)) {
      const now = await syncedBy(o, members);
      if (now === null || now.some((b, i) => b.process !== started![i]!.process)) break;
      if ((o.hintsHeld?.() ?? 0) > 0 || now.some((b) => (b.hints ?? 0) > 0)) break;
      started = now;
    }
    if (!unchanged()) break;
    removed += await o.storage.discard(batch.filter((_, i) => safe[i]));
    if (batch.length < BATCH) break;
  }
  o.metrics.tombstonesCollected.inc(removed);
  if (removed > 0) o.logger.info({ removed }, 'tombstones collected');
  return removed;
}

/**
 * The time after which, plus the grace, tombstone `rec` may be collected: when it took effect
 * (deletedAt), and for an expired record no earlier than its version plus `expiredAfterMs`.
 */
export function collectedAfter(rec: StoredRecord, expiredAfterMs: number): number {
  const at = deletedAt(rec);
  return rec.expiresAt === undefined ? at : Math.max(at, rec.version.wall + expiredAfterMs);
}

/** Per collector (its options): members said to answer no `synced` (an older version). */
const olderSaid = new WeakMap<GcOptions, Set<string>>();

/**
 * Once every one of `members` has every record write it answered before on its disk: the id of
 * the process that answered, each (Replicas.synced); null when one did not answer. A member of a
 * version before `synced` (KV_ERR_UNKNOWN_COMMAND, in a rolling upgrade) never answers it: no
 * tombstone is collected until it is upgraded, said once per member (warn), and once when it
 * answers (info).
 */
async function syncedBy(o: GcOptions, members: readonly string[]): Promise<Synced[] | null> {
  const answers = await Promise.allSettled(members.map((n) => o.replicas.synced(n)));
  const said = olderSaid.get(o) ?? new Set<string>();
  olderSaid.set(o, said);
  answers.forEach((a, i) => {
    const member = members[i]!;
    if (a.status === 'fulfilled') {
      if (said.delete(member)) {
        o.logger.info({ member }, 'tombstone collection goes on: the member answers synced');
      }
    } else if (
      a.reason instanceof KvError &&
      a.reason.code === 'KV_ERR_UNKNOWN_COMMAND' &&
      !said.has(member)
    ) {
      said.add(member);
      o.logger.warn(
        { member },
        'tombstone collection waits: the member does not answer synced (an older version); no tombstone is collected until it does',
      );
    }
  });
  const ids: Synced[] = [];
  for (const a of answers) {
    if (a.status === 'rejected') return null;
    ids.push(a.value);
  }
  return ids;
}

/**
 * True when every one of `members` answers with `t`'s record or one that wins over it
 * (compareRecords), or with nothing; and its copy of `t`'s record, if it holds one, is as old as
 * `cutoff` asks too: a copy that landed late there counts its age from when it landed
 * (StorageOptions.lateLandingMs), and a read that missed it there may have found a value this
 * tombstone deleted, whose write-back lands within the repair window of that read.
 */
async function noOlderCopy(
  o: GcOptions,
  members: readonly string[],
  t: { key: Buffer; record: StoredRecord },
  cutoff: number,
): Promise<boolean> {
  try {
    const answers = await Promise.all(members.map((n) => o.replicas.get(n, t.key)));
    return answers.every((raw) => {
      if (raw === null) return true;
      const there = decodeRecord(raw);
      const order = compareRecords(there, t.record);
      return order > 0 || (order === 0 && collectedAfter(there, o.expiredAfterMs ?? 0) < cutoff);
    });
  } catch {
    return false;
  }
}

export interface CollectorOptions extends GcOptions {
  /** Time between passes (--gc-interval-ms). */
  readonly intervalMs: number;
  /** Drops copies of keys this node does not own (Rebalancer.onSettled), before each pass. */
  readonly dropUnowned: () => Promise<unknown>;
}

/**
 * Every `intervalMs` while the cluster is quiet: first drops copies of keys this node does not
 * own (left by a late hint, hand-off batch or write from a coordinator that had not seen the
 * ring change yet), then collects tombstones, which waits for every member to hold no older
 * copy. A pass still running when the next is due skips that one; a pass the cluster is not
 * quiet for counts in kvstore_gc_skipped_total. Returns the stop function.
 */
export function startCollector(o: CollectorOptions): () => void {
  let collecting = false;
  // A pass the store refuses (a full disk) fails every interval: said once until one works.
  const failures = new FailureLog({
    logger: o.logger,
    failed: 'tombstone collection failed',
    worked: 'tombstone collection works again',
  });
  const timer = setInterval(() => {
    if (collecting) return;
    if (!o.quiet()) {
      o.metrics.gcSkipped.inc();
      return;
    }
    collecting = true;
    o.dropUnowned()
      .then(() => collectTombstones(o))
      .then(
        () => failures.worked(),
        (err: unknown) => failures.failed(err),
      )
      .finally(() => {
        collecting = false;
      });
  }, o.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
