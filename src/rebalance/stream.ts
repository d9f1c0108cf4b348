// Streams local records to the replicas that need them: throttled, resumable, cancellable.

import type { Logger } from '../observability/index.ts';
import type { Replicas, WireEntry } from '../replica/index.ts';
import { readStateDoc, type Storage, validWall } from '../storage/index.ts';
import type { RebalanceMetrics } from './metrics.ts';
import { ProgressCounter, type StreamProgress } from './progress.ts';
import { type CursorSaves, StreamHold } from './stream-hold.ts';
import { BatchSizes, transferTimeoutMs } from './transfer.ts';

export type { StreamProgress } from './progress.ts';

export interface StreamJob {
  readonly kind: 'rebalance' | 'decommission';
  /**
   * What the stream moves data toward (a transfer id for a rebalance, the remaining ring's id
   * for a decommission); the resume cursor is kept per id.
   */
  readonly ringId: string;
  /** Replicas (other than this node) that must receive `key`. */
  readonly targets: (key: Buffer) => readonly string[];
  /**
   * Start from the first key, ignoring a saved cursor of the same ring: the ring became the
   * target anew, and records written since an earlier stream to it may need sending. False
   * resumes (after a restart or a failed attempt of this same stream).
   */
  readonly fresh?: boolean;
}

export interface StreamContext {
  readonly storage: Storage;
  /** Where the cursors are saved (one per node: a newer stream's cursor replaces an older one's). */
  readonly cursors: CursorSaves;
  readonly replicas: Replicas;
  readonly rateBytes: number;
  /** The peer request timeout: a batch request may take this plus its bytes (transfer.ts). */
  readonly timeoutMs: number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
}

/** Records read (and then sent, and the cursor stored) per chunk at most. */
const READ_CHUNK = 256;
/**
 * Bytes of keys and records after which a chunk ends (at the record that reaches it: at least
 * one). Counted in records alone, a chunk of 1 MiB values was 256 MiB held at once, sent at full
 * speed before the throttle's first wait, and reported as progress only once all of it was sent.
 */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes of one batch request, at most (at least one record): halved per timeout, see BatchSizes. */
const BATCH_BYTES = 256 * 1024;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

/**
 * Runs a stream to completion or until `signal` aborts. Reads local records in key order in
 * chunks, sends each to the replicas `job.targets` names (retrying a replica until it takes the
 * batch; each request on the peer's large lane with time for its bytes, and a batch that took too
 * long halves for that replica, down to one record, growing back after each success), throttled
 * to `rateBytes`, and stores the cursor after every batch under `job.kind`,
 * so a restart of this node resumes where it stopped. A store that refuses writes (its disk
 * full) keeps the cursor in memory and a receiver whose store refuses the batches is waited for
 * (StreamHold). Resolves true once every record was acknowledged by every target.
 */
export async function runStream(
  job: StreamJob,
  ctx: StreamContext,
  signal: AbortSignal,
  progress: (p: StreamProgress) => void,
): Promise<boolean> {
  let counter: ProgressCounter | null = null;
  const hold = new StreamHold(
    job.kind,
    ctx,
    () => {
      if (counter !== null) progress(withWaits(counter.now(), hold));
    },
    signal,
  );
  try {
    if (job.fresh) {
      // From the first key, reported at once (not after the reset, a disk write: progress would
      // show the stream before it meanwhile). A reset the store refuses still starts there.
      counter = new ProgressCounter(job, ctx.storage, null);
      progress(counter.now());
      await hold.save(null);
      return await streamFrom(null, job, ctx, signal, counter, hold, progress);
    }
    // A resume trusts the saved cursor only while the store takes writes: one that refuses them
    // may have refused the reset of a later stream's start, so the cursor saved can be an
    // earlier stream's of this same transfer (rings A -> B -> A), past records written under B.
    // (Once the store takes writes again, the running stream's next batch saves its own.)
    const takesWrites = ctx.storage.writeFailure() === null && ctx.storage.stalled() === null;
    const saved = takesWrites ? readStateDoc(ctx.storage, `stream:${job.kind}`) : undefined;
    const resumed = saved?.ringId === job.ringId ? saved : null;
    counter = new ProgressCounter(job, ctx.storage, resumed);
    if (resumed?.done) {
      progress(counter.finish());
      return true;
    }
    const after = resumed?.after ? Buffer.from(resumed.after, 'base64') : null;
    return await streamFrom(after, job, ctx, signal, counter, hold, progress);
  } finally {
    hold.end();
  }
}

/** runStream's loop, from the record after `after` (null: the first). */
async function streamFrom(
  from: Buffer | null,
  job: StreamJob,
  ctx: StreamContext,
  signal: AbortSignal,
  counter: ProgressCounter,
  hold: StreamHold,
  progress: (p: StreamProgress) => void,
): Promise<boolean> {
  let after = from;
  progress(counter.now());
  const started = Date.now();
  const sizes = new BatchSizes(BATCH_BYTES, 1);
  let sentBytes = 0;
  let leftOut = 0;
  for (;;) {
    const { chunk, scanned, last } = take(ctx.storage, after);
    if (last === null) break;
    leftOut += scanned - chunk.length;
    const batches = new Map<string, WireEntry[]>();
    let bytes = 0;
    for (const [key, raw] of chunk) {
      for (const t of job.targets(key)) {
        const b = batches.get(t);
        if (b) b.push([key, raw]);
        else batches.set(t, [[key, raw]]);
        bytes += key.length + raw.length;
      }
    }
    for (const [target, entries] of batches) {
      if (!(await sendUntilTaken(target, entries, ctx, sizes, hold, signal))) return false;
    }
    const sent = [...batches.values()].reduce((n, b) => n + b.length, 0);
    after = last;
    const p = counter.add(scanned, sent, bytes);
    // The cursor is durable before progress shows the chunk, unless this store refuses writes
    // (StreamHold): a restart then redoes what was reported (from the first key while the store
    // still refuses writes, else from the last cursor saved).
    await hold.save({
      ringId: job.ringId,
      after: last.toString('base64'),
      done: false,
      scanned: p.scanned,
      sent: p.sent,
      bytes: p.bytes,
      total: p.total,
    });
    ctx.metrics.scanned.inc(scanned);
    ctx.metrics.sentKeys.inc(sent);
    ctx.metrics.sentBytes.inc(bytes);
    progress(withWaits(p, hold));
    sentBytes += bytes;
    const due = (sentBytes / ctx.rateBytes) * 1000 - (Date.now() - started);
    if (due > 0) await sleep(due, signal);
    if (signal.aborted) return false;
  }
  if (leftOut > 0) {
    ctx.logger.warn(
      { ringId: job.ringId, kind: job.kind, records: leftOut },
      'stream left out records whose versions are out of range',
    );
  }
  await hold.save({ ringId: job.ringId, after: null, done: true, ...counter.counts() });
  progress(counter.finish());
  return true;
}

/** `p` with the members the stream waits for, when there are any. */
function withWaits(p: StreamProgress, hold: StreamHold): StreamProgress {
  const waitingFor = hold.waitingFor;
  return waitingFor === undefined ? p : { ...p, waitingFor };
}

/**
 * The next records after `after` (copied), READ_CHUNK of them or READ_CHUNK_BYTES at most, with
 * how many were scanned and the last key scanned (null: none was left, the stream is done). A record whose version is
 * out of range (written before versions were checked) is scanned but not taken: every member
 * refuses it (RemoteVersions), so sending it would retry its batch for ever and the ring would
 * never settle; reads, scans and anti-entropy leave it out too (replica/scan.ts).
 */
function take(
  storage: Storage,
  after: Buffer | null,
): { chunk: WireEntry[]; scanned: number; last: Buffer | null } {
  const chunk: WireEntry[] = [];
  let bytes = 0;
  let scanned = 0;
  let last: Buffer | null = null;
  const bounds = after
    ? { start: after, end: null, exclusiveStart: true }
    : { start: Buffer.alloc(0), end: null };
  for (const { key, raw } of storage.scan(bounds)) {
    scanned++;
    last = Buffer.from(key);
    if (validWall(raw)) {
      chunk.push([last, Buffer.from(raw)]);
      bytes += key.length + raw.length;
    }
    if (scanned >= READ_CHUNK || bytes >= READ_CHUNK_BYTES) break;
  }
  return { chunk, scanned, last };
}

async function sendUntilTaken(
  target: string,
  entries: WireEntry[],
  ctx: StreamContext,
  sizes: BatchSizes,
  hold: StreamHold,
  signal: AbortSignal,
): Promise<boolean> {
  let delay = 200;
  for (let from = 0; from < entries.length; ) {
    if (signal.aborted) return false;
    const limit = sizes.limit(target);
    const slice: WireEntry[] = [];
    let size = 0;
    for (let i = from; i < entries.length && (slice.length === 0 || size < limit); i++) {
      const e = entries[i]!;
      slice.push(e);
      size += e[0].length + e[1].length;
    }
    // Each attempt sends what is stored now, not what was read before: a retried batch must
    // not carry a value that a later write or delete here has replaced.
    const current = fresh(ctx.storage, slice);
    try {
      if (current.length > 0) {
        let bytes = 0;
        for (const [key, raw] of current) bytes += key.length + raw.length;
        const how = { timeoutMs: transferTimeoutMs(ctx.timeoutMs, bytes), bulk: true };
        await ctx.replicas.apply(target, current, undefined, how);
      }
      sizes.succeeded(target, limit);
      hold.taken(target);
      from += slice.length;
      delay = 200;
    } catch (err) {
      sizes.failed(target, limit, err);
      // A member that refuses writes is said once (StreamHold); other failures at each retry.
      if (!hold.refused(target, err)) {
        ctx.logger.warn(
          { target, err, records: slice.length, bytes: size },
          'stream batch not taken; retrying',
        );
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 5000);
    }
  }
  return true;
}

/** `entries` with each record as stored now (left out when it is gone or its version out of range). */
function fresh(storage: Storage, entries: readonly WireEntry[]): WireEntry[] {
  const out: WireEntry[] = [];
  for (const [key] of entries) {
    const raw = storage.getRaw(key);
    if (raw !== undefined && validWall(raw)) out.push([key, Buffer.from(raw)]);
  }
  return out;
}
