// Syncs of LMDB's file, asked for by whoever needs a commit durable (the log's checkpoint, a
// write outside the log, synced()): LMDB runs with noMetaSync (LMDB_ENV_OPTIONS), so a commit's
// meta page reaches the disk with the next sync, and this is that sync.

/** What lmdb-js's root database offers: `sync(callback)` runs mdb_env_sync on a worker thread. */
export interface SyncableEnv {
  sync(callback: (error?: unknown) => void): unknown;
}

/**
 * One sync at a time; a caller that comes while one runs shares the next one, which starts
 * once the running one ends (the running one may have started before the caller's commit).
 */
export class LmdbSync {
  readonly #env: SyncableEnv;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(env: SyncableEnv) {
    this.#env = env;
  }

  /** Resolves once a sync that started after this call succeeded; rejects with its error. */
  sync(): Promise<void> {
    if (this.#running === null) return this.#start();
    this.#next ??= this.#running
      .catch(() => {})
      .then(() => {
        this.#next = null;
        return this.#start();
      });
    return this.#next;
  }

  #start(): Promise<void> {
    const run = new Promise<void>((resolve, reject) => {
      this.#env.sync((error) => (error ? reject(error) : resolve()));
    }).finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }
}
