// Bulk transfers over a link of any speed: a request's time for its bytes, and batches that shrink after a timeout.

import { KvError } from '../errors/index.ts';
import { FLOOR_RATE } from '../peer/index.ts';
import { COALESCE_MAX_BYTES } from '../replica/index.ts';
import { MAX_KEY_BYTES } from '../storage/index.ts';

/**
 * The timeout (and deadline window) of a bulk request of `bytes` (hint delivery, a stream batch,
 * an anti-entropy repair): the peer timeout plus its bytes at FLOOR_RATE (4 Mbit/s, 10 s for
 * 4 MiB). With the peer timeout alone, a batch the link carried in more than 2 s timed out,
 * arrived past its deadline and was refused, and went again, for good: behind a link of
 * 8 Mbit/s, 57 hints of 4 MiB stayed undelivered, and the link carried nothing but their
 * refused copies.
 */
export function transferTimeoutMs(peerTimeoutMs: number, bytes: number): number {
  return peerTimeoutMs + Math.ceil((bytes * 1000) / FLOOR_RATE);
}

/**
 * The timeout (and deadline window) of a copy of a client write (or a read repair) of `bytes`:
 * transferTimeoutMs, but less than `freshWithinMs` (--tombstone-grace-ms minus
 * --max-clock-offset-ms, more than the peer timeout), so that no copy lands after a tombstone
 * that could be over it was collected. With the peer timeout alone, a 4 MiB copy that took over
 * 2 s (a link of 8 Mbit/s, a loaded machine) failed its write whenever the write needed it.
 */
export function copyTimeoutMs(peerTimeoutMs: number, freshWithinMs: number, bytes: number): number {
  return Math.min(transferTimeoutMs(peerTimeoutMs, bytes), freshWithinMs - 1);
}

/**
 * How long a peer request is waited for at most, from when it was sent, while answers arrive past
 * its timeout (PeerClientOptions.maxWaitMs). What a read got can be written back: a read repair
 * sends the newest record to the owners that hold older ones, after up to `hops` requests one
 * after the other (the read, then the fetch of the newest record whole from each owner that
 * returned its header, in turn), then as a copy (copyTimeoutMs of the largest record,
 * `maxRecordBytes`). All of that fits in `freshWithinMs` (--tombstone-grace-ms minus
 * --max-clock-offset-ms), so that the copy lands before a tombstone written just after the read
 * could be collected. Never less than the peer timeout: reads are then waited for no longer than
 * before answers were waited for.
 */
export function readWaitMs(
  peerTimeoutMs: number,
  freshWithinMs: number,
  hops: number,
  maxRecordBytes: number,
): number {
  const copy = copyTimeoutMs(peerTimeoutMs, freshWithinMs, maxRecordBytes);
  return Math.max(peerTimeoutMs, Math.floor((freshWithinMs - 1 - copy) / hops));
}

/**
 * Bytes of the request a tombstone's copy goes in at most, which its timeout and deadline go by:
 * the longest key and a record's header alone, or the other small writes of its turn with it
 * (Replicas coalesces them, up to COALESCE_MAX_BYTES). With the tombstone's own bytes alone, a
 * DEL copied with a 54 KiB SET of the same turn carried a deadline 101 ms past what the window
 * allowed for (repair-window.test).
 */
const TOMBSTONE_BYTES = Math.max(MAX_KEY_BYTES + 512, COALESCE_MAX_BYTES);

/**
 * How long after a read began what it read may still land on a replica (a read repair, a hint
 * made of one that failed, an anti-entropy push or pull): sooner than any tombstone over it that
 * the read did not see can be collected. Such a tombstone T was not on the replica asked when it
 * answered (no earlier than the read's start less the clock offset), so it landed there later,
 * by its copy's deadline (T's version, made in the turn its copies go, plus a tombstone's copy
 * timeout) plus the offset a replica allows: T's version is later than the read's start less
 * two offsets and that copy timeout. T is collected once --tombstone-grace-ms passed since, on a
 * clock within the offset; a copy with deadline d lands by d plus the offset. Hence the grace
 * less three offsets, a tombstone's copy timeout and 1 ms. At the default grace (1 h) that is
 * 3,596 s; at 10 s 6.4 s; a grace under the peer timeout plus three offsets leaves none (read
 * repair off: anti-entropy, hints and later reads' quorums still bring replicas in step).
 * A tombstone that lands later than that (a failed delete's hint, a REMOVE's that found nothing
 * live, versioned as it arrived, before its read) is kept as having taken effect when it landed
 * (lateLandingMs), and collection waits for every member's copy to be past the grace.
 */
export function repairWithinMs(
  peerTimeoutMs: number,
  graceMs: number,
  maxClockOffsetMs: number,
): number {
  const tombstone = tombstoneCopyMs(peerTimeoutMs, graceMs, maxClockOffsetMs);
  return graceMs - 3 * maxClockOffsetMs - tombstone - 1;
}

/** A tombstone copy's timeout: a small entry with the other small writes of its turn. */
function tombstoneCopyMs(peerTimeoutMs: number, graceMs: number, maxClockOffsetMs: number) {
  return copyTimeoutMs(peerTimeoutMs, graceMs - maxClockOffsetMs, TOMBSTONE_BYTES);
}

/**
 * How long after it took effect a tombstone (or an expired record) lands on a replica at the
 * latest when it comes by a copy: a tombstone copy's timeout plus the clock offset a replica
 * allows (StorageOptions.lateLandingMs). repairWithinMs counts on a tombstone that a read missed
 * on a replica it asked having landed there by then; one that lands later (a failed delete's
 * hint, a REMOVE's tombstone versioned before its read) where the replica held a record at its
 * key is kept as having taken effect when it landed, and collected the grace after that; where
 * it held nothing, as it was: a value a read found, and wrote back, was on a replica that held it
 * when the tombstone landed there.
 */
export function lateLandingMs(
  peerTimeoutMs: number,
  graceMs: number,
  maxClockOffsetMs: number,
): number {
  return tombstoneCopyMs(peerTimeoutMs, graceMs, maxClockOffsetMs) + maxClockOffsetMs;
}

/**
 * How much later than its version plus a tombstone copy's time an expired record is collected
 * at the earliest (GcOptions.expiredAfterMs): its age counts from the later of its expiry and its
 * version plus this. A record that expires takes its key's value away as a tombstone does, and a
 * read that did not see it was answered before one of its copies landed; but a copy of a value
 * has the timeout of its bytes (up to `maxRecordBytes`: 130 s at 64 MiB), not a tombstone's,
 * so its version can be that much older than the read, and repairWithinMs counts only a
 * tombstone's. Without it, a 1 MiB SET with PX 10 was collected 10 ms past the grace, while a
 * repair of the value it replaced, by a read that missed a copy of it, could land 1.9 s past it
 * (repair-window.test; this is 1,893 ms by default).
 */
export function expiredLaterMs(
  peerTimeoutMs: number,
  graceMs: number,
  maxClockOffsetMs: number,
  maxRecordBytes: number,
): number {
  const fresh = graceMs - maxClockOffsetMs;
  const tombstone = tombstoneCopyMs(peerTimeoutMs, graceMs, maxClockOffsetMs);
  return Math.max(0, copyTimeoutMs(peerTimeoutMs, fresh, maxRecordBytes) - tombstone);
}

/** Whether `err` says a bulk request took too long (for the link, or the member's disk). */
export function tooSlow(err: unknown): boolean {
  return (
    err instanceof KvError && (err.code === 'KV_ERR_PEER_TIMEOUT' || err.code === 'KV_ERR_EXPIRED')
  );
}

/**
 * The bytes of the next batch to each member: `max` until a request to it takes too long
 * (tooSlow), then half of that batch's limit after each one that does, down to `min` (a batch
 * still holds at least one record however small its limit); doubled back after each one that
 * succeeds. A record the link carries in more than the timeout a full batch gets is then sent
 * alone, with the time its own bytes need, instead of timing out in its batch for good.
 */
export class BatchSizes {
  readonly #max: number;
  readonly #min: number;
  /** Limits below `max`, by member. */
  readonly #limits = new Map<string, number>();

  constructor(max: number, min: number) {
    this.#max = max;
    this.#min = min;
  }

  /** Bytes of the next batch to `target`. */
  limit(target: string): number {
    return this.#limits.get(target) ?? this.#max;
  }

  /** A batch to `target` sent with limit `used` failed with `err`: halves it if it was tooSlow. */
  failed(target: string, used: number, err: unknown): void {
    if (tooSlow(err)) this.#limits.set(target, Math.max(this.#min, Math.floor(used / 2)));
  }

  /** A batch to `target` sent with limit `used` succeeded: the limit doubles back toward `max`. */
  succeeded(target: string, used: number): void {
    if (used >= this.#max) return;
    const next = used * 2;
    if (next >= this.#max) this.#limits.delete(target);
    else this.#limits.set(target, next);
  }

  /** Forgets the members not in `keep`. */
  retain(keep: readonly string[]): void {
    for (const target of this.#limits.keys())
      if (!keep.includes(target)) this.#limits.delete(target);
  }
}
