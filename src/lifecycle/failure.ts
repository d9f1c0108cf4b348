// Start-up failures as one line and an exit code: 2 for what the operator must fix, 1 otherwise;
// and the exit code of a node whose storage failed while it ran.

import { KvError } from '../errors/index.ts';

/**
 * The exit code of a node whose storage failed for good (a sync of LMDB's file failed:
 * docs/storage.md, "When the disk fails"): it exits at once, without a drain, and a restart
 * replays the write-ahead log.
 */
export const EXIT_STORAGE_FAILED = 3;

/** Codes whose failure is the operator's to fix before a restart can help: exit 2. */
const OPERATOR_CODES: ReadonlySet<string> = new Set([
  'KV_ERR_CONFIG',
  'KV_ERR_INVALID_ARGUMENT',
  'KV_ERR_DATA_DIR_LOCKED',
  'KV_ERR_CORRUPT', // a damaged data directory: restarting will not help
]);

/**
 * The line (prefixed with `program`) and exit code for an error that stopped the start. Bad
 * configuration (a flag, a variable, a file it names), a data directory held by another process
 * and a damaged one exit 2; a system error (a port in use) exits 1 with its message; anything else is a
 * bug, so its stack follows.
 */
export function startFailure(program: string, err: unknown): { text: string; code: number } {
  if (err instanceof KvError) {
    const config = err.code === 'KV_ERR_CONFIG' || err.code === 'KV_ERR_INVALID_ARGUMENT';
    const message =
      config && !err.message.startsWith('config: ') ? `config: ${err.message}` : err.message;
    return {
      text: `${program}: ${message}${causeCode(err)}`,
      code: OPERATOR_CODES.has(err.code) ? 2 : 1,
    };
  }
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') {
    return { text: `${program}: ${err.message}`, code: 1 };
  }
  return { text: `${program}: ${err instanceof Error ? err.stack : String(err)}`, code: 1 };
}

/**
 * ` (ENOENT)` when the cause is a system error, so the line says why a file could not be read
 * (unless the message says it already).
 */
function causeCode(err: KvError): string {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && !err.message.includes(`(${code})`) ? ` (${code})` : '';
}
