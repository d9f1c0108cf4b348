// Whether the store takes writes, why not, and getting back to taking them: free space, LMDB
// commit failures and a broken log, with a repair on the next write and every second.

import { KvError } from '../errors/index.ts';
import { LmdbHealth, SpaceCheck } from './health.ts';

export interface WritabilityOptions {
  readonly dir: string;
  /** Refuse writes below this much free space (0: never). */
  readonly minFreeBytes: number;
  /** Why the log cannot write (null while it can). */
  readonly walBroken: () => KvError | null;
  /** A sync of the log: with nothing appended, a broken log only tries to start a new segment. */
  readonly walSync: () => Promise<void>;
  /** Queues to LMDB again what it did not commit; LMDB's health says how that went. */
  readonly repairLmdb: () => Promise<void>;
  /** Called when writes start being refused (with why) and when they are taken again. */
  readonly onWritable: (failure: string | null) => void;
  /** Syncs LMDB's file (fdatasync, mdb_env_sync): the last commit's meta page is durable after. */
  readonly syncLmdb: () => Promise<void>;
  /** Called once when LMDB failed for good (LmdbHealth.fatal), also while the store closes. */
  readonly onFatal?: (failure: string) => void;
}

export class Writability {
  readonly health: LmdbHealth;
  readonly space: SpaceCheck;
  readonly #o: WritabilityOptions;
  #reported: string | null = null;
  #repairing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: WritabilityOptions) {
    this.#o = opts;
    this.space = new SpaceCheck(opts.dir, opts.minFreeBytes);
    this.health = new LmdbHealth(
      opts.dir,
      (failure) => this.#lmdbChanged(failure),
      // Told while the store closes too: a stop whose last commit or sync failed did not stop
      // cleanly (the node exits 3, not 0), and its log keeps the segments for the next start.
      (failure) => opts.onFatal?.(failure),
    );
  }

  /** Why writes are refused now, or null (see Storage.writeFailure). */
  failure(): string | null {
    const space = this.space.short();
    if (space !== null) return space;
    const lmdb = this.health.failure;
    if (lmdb !== null) return `LMDB: ${lmdb}`;
    const wal = this.#o.walBroken();
    return wal ? wal.message.replace(/^storage: /, '') : null;
  }

  /** True when a write has to go through `ensure` first (cheap: the space check is cached). */
  refusing(): boolean {
    return this.space.short() !== null || this.health.failure !== null || !!this.#o.walBroken();
  }

  /** Repairs what it can; throws KV_ERR_STORAGE (with the reason) if writes are still refused. */
  async ensure(): Promise<void> {
    if (this.space.short(true) !== null) {
      this.report();
      throw this.refusal();
    }
    // No retried commit before lmdb-js said why the last one failed, and none after a fatal one.
    if (this.health.failure !== null) await this.health.judged();
    if (this.health.fatal !== null) {
      this.report();
      throw this.refusal();
    }
    if (this.health.failure !== null) {
      this.#repairing ??= this.#o.repairLmdb().finally(() => {
        this.#repairing = null;
      });
      await this.#repairing;
    }
    if (this.health.failure === null) await this.#o.walSync().catch(() => {});
    this.report();
    if (this.failure() !== null) throw this.refusal();
  }

  /** Tells `onWritable` when writes start being refused or accepted. */
  report(): void {
    const failure = this.failure();
    if ((failure === null) === (this.#reported === null)) return;
    this.#reported = failure;
    this.#o.onWritable(failure);
  }

  refusal(): KvError {
    return new KvError(
      'KV_ERR_STORAGE',
      `storage: not writable: ${this.failure() ?? 'LMDB commit failed'}; reads work, writes resume once that is fixed`,
    );
  }

  /**
   * Resolves once LMDB has committed every write queued before the call and its file is synced
   * (LMDB runs with noMetaSync: a commit syncs its data pages, not its meta page; see
   * LMDB_ENV_OPTIONS), rejects when a commit or the sync fails meanwhile (LMDB's own `flushed`
   * never resolves for a failed transaction). A failed sync is fatal (LmdbHealth.syncFailed).
   */
  async flushed(root: { flushed: PromiseLike<unknown> }, generation = this.health.generation) {
    const ok = await this.health.unlessFailed(
      Promise.resolve(root.flushed).then(() => true),
      false,
    );
    if (ok && this.health.generation === generation) {
      try {
        await this.#o.syncLmdb();
      } catch (err) {
        // Fatal also while closing: the log keeps its segments for the next start, which a
        // checkpoint after a failed sync must not drop.
        this.health.syncFailed(err);
      }
    }
    if (!ok || this.health.generation !== generation) {
      throw new KvError('KV_ERR_STORAGE', `storage: LMDB flush failed: ${this.failure()}`);
    }
  }

  /**
   * The log's checkpoint: resolves once every write queued before the call is flushed in
   * LMDB, waiting through failures for the repair that queues them again. Rejects once the
   * store closes with LMDB failed (the segment then stays for the next start to replay).
   */
  async checkpoint(root: { flushed: PromiseLike<unknown> }): Promise<void> {
    for (;;) {
      if ((this.#closed || this.health.fatal !== null) && this.health.failure !== null) {
        throw this.refusal();
      }
      try {
        if (this.health.failure === null) return await this.flushed(root);
      } catch {
        // A failure while flushing: wait for the repair, then flush again.
      }
      await this.health.healthy();
    }
  }

  /** Stops the retries and wakes whoever waits for LMDB to be healthy. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.health.wake();
  }

  /** While LMDB refuses writes, retries the repair every second (unref'd). */
  #lmdbChanged(failure: string | null): void {
    this.report();
    if (failure !== null && this.#timer === null && !this.#closed) {
      this.#timer = setInterval(() => {
        void this.ensure().catch(() => {});
      }, 1000).unref();
    } else if (failure === null && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}
