// Moves data when the ring changes, hands a node's data off on decommission, cleans up after.

import { EventEmitter } from 'node:events';
import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import type { Logger } from '../observability/index.ts';
import type { NodeStatus, Replicas } from '../replica/index.ts';
import { Ring } from '../ring/index.ts';
import { readStateDoc, type ScanBounds, type Storage, type Version } from '../storage/index.ts';
import { dropAll } from './drop.ts';
import { KeptSave } from './kept-save.ts';
import type { RebalanceMetrics } from './metrics.ts';
import { runStream, type StreamJob, type StreamProgress } from './stream.ts';
import { CursorSaves } from './stream-hold.ts';

export interface RebalancerOptions {
  readonly self: string;
  readonly storage: Storage;
  readonly topology: Topology;
  readonly replicas: Replicas;
  readonly rateBytes: number;
  /** The peer request timeout (StreamContext.timeoutMs). */
  readonly timeoutMs: number;
  readonly metrics: RebalanceMetrics;
  readonly logger: Logger;
}

interface Running {
  readonly kind: 'rebalance' | 'decommission';
  readonly ringId: string;
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

/**
 * One stream at a time. When the target or the settled ring changes, sends every local record to
 * the target owners that do not hold it under the settled ring (not owners there, or lost), then
 * reports that transfer (Topology.transferId) as `rebalanced` (which the other nodes see in
 * hello). After the ring settles, drops records this node no longer owns.
 * `decommission()` instead sends every local record to its owners in the ring without this node
 * and then reports the node `decommissioned`; both survive restarts (cursor and status are
 * stored). Emits `change` when the reported state changes.
 */
export class Rebalancer extends EventEmitter<{ change: [] }> {
  readonly #o: RebalancerOptions;
  #running: Running | null = null;
  #rebalanced: string | null = null;
  #status: NodeStatus;
  #progress: StreamProgress | null = null;
  #stopped = false;
  /** The latest save of #status: true once on disk, false while the disk refuses it. */
  #statusSaved: Promise<boolean> = Promise.resolve(true);
  readonly #cursors: CursorSaves;
  readonly #statusSave: KeptSave<'status'>;

  constructor(opts: RebalancerOptions) {
    super();
    this.#o = opts;
    this.#cursors = new CursorSaves(opts.storage, opts.logger);
    // Refused while the disk is full: kept in memory and saved again every 5 s until a save works
    // (a restart before then reads the one saved last); the newest status wins.
    this.#statusSave = new KeptSave('status', {
      storage: opts.storage,
      onRefused: (reason) =>
        opts.logger.warn({ reason, status: this.#status }, 'node status not saved; retrying'),
      onSavedAgain: () => opts.logger.info({ status: this.#status }, 'node status saved'),
      retryMs: 5000,
    });
    this.#status = readStateDoc(opts.storage, 'status') ?? 'active';
  }

  get status(): NodeStatus {
    return this.#status;
  }

  /** The transfer (Topology.transferId) whose outbound stream finished, or null. */
  get rebalanced(): string | null {
    return this.#rebalanced;
  }

  get progress(): StreamProgress | null {
    return this.#progress;
  }

  /**
   * Starts what the current state needs: resume a decommission, or rebalance to the target
   * (from the saved cursor: at start-up, or after a failed attempt).
   */
  resume(): void {
    if (this.#status === 'decommissioning') this.#startDecommission();
    else this.#rebalance(false);
  }

  /**
   * Call when the target or the settled ring changed (a new target, a settled ring adopted from
   * a peer, an owner replaced): restarts the rebalance stream for the new transfer from the
   * first key. A transfer can come back (A -> B -> A): the cursor of an earlier stream of it
   * would skip records written since. While decommissioning, a hand-off toward a ring whose
   * members changed (one left, or decommissioned itself) restarts toward the members that remain
   * now, from the first key too: the old ring may name a member that will never take the data.
   */
  onRingsChanged(): void {
    if (this.#status === 'decommissioning') {
      if (!this.#stopped && this.#running?.ringId !== this.#remaining().id) {
        this.#startDecommission(true);
      }
      return;
    }
    this.#rebalance(true);
  }

  #rebalance(fresh: boolean): void {
    if (this.#stopped || this.#status !== 'active') return;
    const { topology, self } = this.#o;
    const target = topology.target;
    const transfer = topology.transferId;
    if (this.#running?.kind === 'rebalance' && this.#running.ringId === transfer) return;
    this.#cancel();
    if (!topology.moving) {
      // Nothing to send now; a later stream to any ring must not resume an old cursor. A store
      // that refuses writes (its disk full) refuses this one too: kept and saved as soon as
      // there is room (CursorSaves); meanwhile the cursor still names its own transfer: only a
      // stream of that same transfer resumed at a restart would start from it. Other failures
      // are logged, as an unhandled rejection would end the process.
      if (fresh) {
        this.#cursors
          .save('rebalance', null)
          .catch((err: unknown) => this.#o.logger.warn({ err }, 'stream cursor not reset'));
      }
      this.#setRebalanced(transfer);
      return;
    }
    const settled = topology.settled;
    const lost = topology.lost;
    const rfT = topology.rf(target);
    const rfS = topology.rf(settled);
    this.#start({
      kind: 'rebalance',
      ringId: transfer,
      fresh,
      // Target owners that do not hold the key yet: not its settled owners, or lost ones.
      targets: (key) => {
        const before = settled.owners(key, rfS).filter((n) => !lost.includes(n));
        return target.owners(key, rfT).filter((n) => n !== self && !before.includes(n));
      },
    });
  }

  /**
   * Call when the target became the settled ring: removes records this node owns in neither
   * ring (the settled ring is the target then, unless the target changed again meanwhile).
   */
  async onSettled(): Promise<number> {
    const ring = this.#o.topology.settled;
    const rf = this.#o.topology.rf(ring);
    const target = this.#o.topology.target;
    const transfer = this.#o.topology.transferId;
    const rfT = this.#o.topology.rf(target);
    const self = this.#o.self;
    // A ring whose every member holds every key (RF >= its size) with this node in it: no key can
    // be dropped, and the scan below would read the whole store for nothing (one node, or three
    // with RF=3: every --gc-interval-ms; 10M keys kept a core busy).
    const ownsAll = (r: typeof ring, n: number) =>
      n >= r.members.length && r.members.includes(self);
    if (ownsAll(ring, rf) || ownsAll(target, rfT)) return 0;
    let removed = 0;
    let after: Buffer | null = null;
    for (;;) {
      const drop: { key: Buffer; version: Version }[] = [];
      let last: Buffer | null = null;
      let n = 0;
      const bounds: ScanBounds = after
        ? { start: after, end: null, exclusiveStart: true }
        : { start: Buffer.alloc(0), end: null };
      for (const { key, record } of this.#o.storage.scan(bounds)) {
        if (n++ === 1024) break;
        last = Buffer.from(key);
        if (!ring.owners(key, rf).includes(self) && !target.owners(key, rfT).includes(self)) {
          drop.push({ key: last, version: record.version });
        }
      }
      if (last === null || this.#o.topology.transferId !== transfer) break;
      removed += await this.#o.storage.discard(drop);
      after = last;
    }
    this.#o.metrics.cleanedUp.inc(removed);
    if (removed > 0)
      this.#o.logger.info({ removed, ring: ring.id }, 'removed records no longer owned');
    return removed;
  }

  /**
   * Starts handing this node's data to the other members. Throws KV_ERR_INVALID_ARGUMENT when
   * no other member could take it. Idempotent while running or done. Resolves once the status
   * is on disk, so a decommission whose acceptance was answered survives a power cut (true), or
   * once the disk refused it (false: full; kept in memory and saved again every 5 s).
   */
  decommission(): Promise<boolean> {
    if (this.#status !== 'active') return this.#statusSaved;
    const others = this.#o.topology.target.members.filter((n) => n !== this.#o.self);
    if (others.length === 0) {
      throw new KvError('KV_ERR_INVALID_ARGUMENT', 'rebalance: no other member to hand data to');
    }
    // The status change may have started it already (the target without this node: a ring change).
    this.#setStatus('decommissioning');
    if (this.#running?.ringId !== this.#remaining().id) this.#startDecommission(true);
    return this.#statusSaved;
  }

  /**
   * Takes the node back after a decommission, its data directory (incarnation, settings) kept:
   * - decommissioning: the hand-off stops and the node keeps its records (they are current: it
   *   stayed a holder of the settled ring, and no tombstone is collected meanwhile);
   * - decommissioned: its records were all handed off and may be stale by now (tombstones
   *   collected since could let an old value come back), so they are dropped first; it then
   *   rejoins the target ring and a rebalance brings its share, as for a new member.
   * Resolves with how many records were dropped, once `active` is on disk (or the disk refused
   * it). Throws KV_ERR_INVALID_ARGUMENT when the node is active, or decommissioned while its
   * settled ring still lists it (not settled without it yet).
   */
  async recommission(): Promise<{ dropped: number }> {
    const { storage, topology, self, logger } = this.#o;
    if (this.#status === 'active') {
      throw new KvError('KV_ERR_INVALID_ARGUMENT', 'rebalance: this node is not decommissioned');
    }
    const decommissioned = this.#status === 'decommissioned';
    if (decommissioned && topology.settledRing.members.includes(self)) {
      throw new KvError(
        'KV_ERR_INVALID_ARGUMENT',
        'rebalance: the ring has not settled without this node yet; recommission it once it has (kvctl cluster: "moving": false)',
      );
    }
    this.#cancel();
    const dropped = decommissioned ? await dropAll(storage) : 0;
    await this.#cursors.reset('decommission');
    logger.info({ dropped }, 'recommissioned');
    this.#setStatus('active');
    this.#rebalance(true);
    // Answered once `active` is on disk, as decommission() is: a cut then keeps it.
    await this.#statusSaved;
    return { dropped };
  }

  /** The ring a hand-off goes to: the target without this node. */
  #remaining(): Ring {
    return new Ring(this.#o.topology.target.members.filter((n) => n !== this.#o.self));
  }

  /**
   * Starts (or restarts) the hand-off toward the remaining members; `fresh`: from the first key,
   * as after every ring change (a remaining ring can come back, A -> B -> A, and the cursor its
   * earlier stream saved would skip keys written since), else from the saved cursor (a restart).
   */
  #startDecommission(fresh = false): void {
    this.#cancel();
    const remaining = this.#remaining();
    if (remaining.members.length === 0) {
      // Nobody to hand the data to: keep it and wait until a member is back.
      this.#o.logger.warn({}, 'decommission waits: no other member to hand data to');
      return;
    }
    const rf = this.#o.topology.rf(remaining);
    this.#start(
      {
        kind: 'decommission',
        ringId: remaining.id,
        fresh,
        targets: (key) => remaining.owners(key, rf),
      },
      () => this.#setStatus('decommissioned'),
    );
  }

  #start(job: StreamJob, onDone?: () => void): void {
    const abort = new AbortController();
    const { storage, replicas, rateBytes, timeoutMs, metrics, logger } = this.#o;
    const ctx = {
      storage,
      cursors: this.#cursors,
      replicas,
      rateBytes,
      timeoutMs,
      metrics,
      logger,
    };
    logger.info({ kind: job.kind, ring: job.ringId }, 'stream started');
    metrics.active.set(1);
    const done = runStream(job, ctx, abort.signal, (p) => {
      this.#progress = p;
    }).then(
      (complete) => {
        if (this.#running?.abort === abort) {
          this.#running = null;
          metrics.active.set(0);
        }
        if (!complete) return;
        logger.info({ kind: job.kind, ring: job.ringId, ...this.#progress }, 'stream finished');
        if (job.kind === 'rebalance') this.#setRebalanced(job.ringId);
        onDone?.();
      },
      (err: unknown) => {
        logger.error({ err, kind: job.kind }, 'stream failed; retrying in 5 s');
        if (this.#running?.abort !== abort) return;
        this.#running = null;
        metrics.active.set(0);
        setTimeout(() => {
          if (!this.#stopped && this.#running === null) this.resume();
        }, 5000).unref();
      },
    );
    this.#running = { kind: job.kind, ringId: job.ringId, abort, done };
  }

  /**
   * Aborts the running stream: it no longer counts as active (its end, later, skips the gauge;
   * a stream started after this sets it again).
   */
  #cancel(): void {
    if (this.#running === null) return;
    this.#running.abort.abort();
    this.#running = null;
    this.#o.metrics.active.set(0);
  }

  #setRebalanced(id: string): void {
    if (this.#rebalanced === id) return;
    this.#rebalanced = id;
    this.emit('change');
  }

  #setStatus(status: NodeStatus): void {
    this.#status = status;
    // Another failure than a refusal (the store closed) is not saved either.
    this.#statusSaved = this.#statusSave.save(status).catch(() => false);
    this.#o.logger.info({ status }, 'node status');
    this.emit('change');
  }

  /** Cancels the running stream and waits for it to stop. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const r = this.#running;
    this.#cancel();
    await r?.done;
    this.#cursors.stop();
    this.#statusSave.stop();
  }
}
