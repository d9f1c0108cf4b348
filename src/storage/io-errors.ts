// What a failed disk operation means, in words a client or an operator can act on.

import { statfsSync } from 'node:fs';

const REASONS: Readonly<Record<string, string>> = {
  ENOSPC: 'disk full (ENOSPC)',
  EDQUOT: 'disk quota exceeded (EDQUOT)',
  EIO: 'I/O error (EIO)',
  EMFILE: 'out of file descriptors (EMFILE)',
  ENFILE: 'out of file descriptors system-wide (ENFILE)',
  EROFS: 'read-only file system (EROFS)',
  EACCES: 'permission denied (EACCES)',
  EPERM: 'operation not permitted (EPERM)',
};

// lmdb-js reports errno numbers (`code: 28`) rather than names.
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  5: 'EIO',
  12: 'ENOMEM',
  13: 'EACCES',
  23: 'ENFILE',
  24: 'EMFILE',
  28: 'ENOSPC',
  30: 'EROFS',
  122: 'EDQUOT',
};

/** The errno name of an error or of one of its causes (`ENOSPC`), or null. */
export function errnoName(err: unknown): string | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('E')) return code;
    if (typeof code === 'number' && ERRNO_NAMES[code]) return ERRNO_NAMES[code]!;
    const inMessage = /\b(E[A-Z]{2,})\b/.exec(e.message)?.[1];
    if (inMessage && REASONS[inMessage]) return inMessage;
    if (/No space left on device/i.test(e.message)) return 'ENOSPC';
    if (/Input\/output error/i.test(e.message)) return 'EIO';
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/** Below this many free bytes an I/O error or a short write in a directory is a full disk. */
const FULL_BYTES = 1024 * 1024;

/**
 * A short reason for a storage failure: `disk full (ENOSPC)`, else the error's message. With
 * `dir`, an EIO or an error without errno (LMDB reports a full disk as EIO, a write as short)
 * on a file system with next to no space left is reported as a full disk.
 */
export function describeIoError(err: unknown, dir?: string): string {
  const name = errnoName(err);
  if (dir !== undefined && name !== 'ENOSPC' && (name === 'EIO' || name === null)) {
    if (nearlyFull(dir)) return `disk full (no space left on ${dir})`;
  }
  if (name !== null) return REASONS[name] ?? name;
  return err instanceof Error ? err.message : String(err);
}

function nearlyFull(dir: string): boolean {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize < FULL_BYTES;
  } catch {
    return false;
  }
}
