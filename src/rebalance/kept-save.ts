// A state document saved as soon as the store takes it: one the store refuses (its disk full) is kept in memory and tried again every second.

import { KvError } from '../errors/index.ts';
import { type StateDoc, type StateKey, type StateStore, writeStateDoc } from '../storage/index.ts';

/** How often a refused save is tried again (the store checks its free space as often). */
export const KEPT_SAVE_RETRY_MS = 1000;

/** Whether `err` is a store refusing writes (its disk full or stalled, LMDB or the log failed). */
export function storageRefused(err: unknown): err is KvError {
  return (
    err instanceof KvError &&
    (err.code === 'KV_ERR_STORAGE' || err.code === 'KV_ERR_STORAGE_STALLED')
  );
}

/** A refusal's reason without the module prefix and the advice (`not writable: disk full (...)`). */
export function reasonOf(err: KvError): string {
  return err.message.replace(/^storage: /, '').replace(/; reads work, writes resume.*$/, '');
}

export interface KeptSaveOptions {
  readonly storage: StateStore;
  /** A save was refused (`reason`, see reasonOf): called once until a save works again. */
  readonly onRefused: (reason: string) => void;
  /** A save worked after one was refused. */
  readonly onSavedAgain: () => void;
  /** How often a refused save is tried again (default KEPT_SAVE_RETRY_MS). */
  readonly retryMs?: number;
}

/**
 * Saves one state document in order, the newest value asked for winning. A save the store
 * refuses is kept in memory and tried again every retryMs until a save works: as soon as there
 * is room, not at the next change (a restart meanwhile would find the value saved before, which
 * may be stale). Writes never overlap, and each writes the newest value asked for by then.
 */
export class KeptSave<K extends StateKey> {
  readonly #key: K;
  readonly #o: KeptSaveOptions;
  #value: StateDoc<K> | undefined;
  /** A value was asked for and is not durable yet. */
  #unsaved = false;
  #refused = false;
  /** The last refusal (what saveOrThrow rejects with). */
  #refusal: KvError | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(key: K, o: KeptSaveOptions) {
    this.#key = key;
    this.#o = o;
  }

  /**
   * Saves `value` after every save asked before; resolves true once it (or a newer value) is
   * durable, false when the store refuses it (kept: tried again). Other failures reject.
   */
  save(value: StateDoc<K>): Promise<boolean> {
    this.#value = value;
    this.#unsaved = true;
    return this.#write();
  }

  /** save() that rejects with the store's refusal (the value is kept and tried again all the same). */
  async saveOrThrow(value: StateDoc<K>): Promise<void> {
    if (!(await this.save(value))) throw this.#refusal;
  }

  /** Stops the retries (a value not saved yet stays unsaved, as after a crash). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #write(): Promise<boolean> {
    const run = this.#chain.then(() => this.#writeNewest());
    this.#chain = run.catch(() => {});
    return run;
  }

  async #writeNewest(): Promise<boolean> {
    // An earlier write in the chain wrote the newest value already.
    if (!this.#unsaved) return true;
    const value = this.#value as StateDoc<K>;
    try {
      await writeStateDoc(this.#o.storage, this.#key, value);
    } catch (err) {
      if (!storageRefused(err)) throw err;
      this.#refusal = err;
      if (!this.#refused) {
        this.#refused = true;
        this.#o.onRefused(reasonOf(err));
      }
      this.#retryLater();
      return false;
    }
    if (this.#value === value) this.#unsaved = false;
    if (this.#refused) {
      this.#refused = false;
      this.#o.onSavedAgain();
    }
    return true;
  }

  #retryLater(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      // Any other failure (the store closed) ends the retries.
      if (!this.#stopped && this.#unsaved) this.#write().catch(() => {});
    }, this.#o.retryMs ?? KEPT_SAVE_RETRY_MS);
    this.#timer.unref();
  }
}
