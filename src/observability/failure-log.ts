// Says a task that keeps failing (a store refusing writes on a full disk) once, not every try.

import type { Logger } from './logger.ts';

/** How often a failure that goes on unchanged is said again (with how many tries it stands for). */
export const FAILURE_LOG_EVERY_MS = 60_000;

export interface FailureLogOptions {
  readonly logger: Logger;
  /** The message of a failure (`tombstone collection failed`). */
  readonly failed: string;
  /** The message once the task works again after failing (`tombstone collection works again`). */
  readonly worked: string;
  /** The failure's level (default error). */
  readonly level?: 'warn' | 'error';
  readonly everyMs?: number;
  readonly now?: () => number;
}

/**
 * One task's failures, said once per episode: the first failure of a run is logged (with
 * `diskFull: true` when its error says the disk is full or over quota), later ones only when
 * the kind of failure changes (a full disk, else the error's message) or `everyMs` passed since
 * the last line, each line with `repeats`, how many failures it did not say since the one
 * before. The first success after failures logs `worked` (info) with `failures`, how many the run
 * had. Metrics that count failures are the caller's: every failure still counts there.
 */
export class FailureLog {
  readonly #o: FailureLogOptions;
  /** The run of failures going on: its kind, when it was last said, what it has not said. */
  #run: { kind: string; saidAt: number; failures: number; unsaid: number } | null = null;

  constructor(o: FailureLogOptions) {
    this.#o = o;
  }

  get failing(): boolean {
    return this.#run !== null;
  }

  /** Counts a failure; logs it (with `fields`) and returns true when it is said. */
  failed(err: unknown, fields: Record<string, unknown> = {}): boolean {
    const now = (this.#o.now ?? Date.now)();
    const diskFull = isDiskFull(err);
    const kind = diskFull ? 'disk full' : err instanceof Error ? err.message : String(err);
    const run = this.#run;
    if (run !== null) run.failures++;
    if (
      run !== null &&
      run.kind === kind &&
      now - run.saidAt < (this.#o.everyMs ?? FAILURE_LOG_EVERY_MS)
    ) {
      run.unsaid++;
      return false;
    }
    const line = { err, ...(diskFull ? { diskFull } : {}), repeats: run?.unsaid ?? 0, ...fields };
    this.#o.logger[this.#o.level ?? 'error'](line, this.#o.failed);
    this.#run = { kind, saidAt: now, failures: run?.failures ?? 1, unsaid: 0 };
    return true;
  }

  /** The task worked: ends a run of failures, said once (info, with `fields`). */
  worked(fields: Record<string, unknown> = {}): void {
    const run = this.#run;
    if (run === null) return;
    this.#run = null;
    this.#o.logger.info({ failures: run.failures, ...fields }, this.#o.worked);
  }
}

/** Whether `err` (or a cause) says the disk is full or over quota. */
function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (/disk full|ENOSPC|EDQUOT|no space left|quota exceeded/i.test(e.message)) return true;
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
