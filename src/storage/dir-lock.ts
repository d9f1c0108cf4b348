// One process per data directory: an exclusive lock on `<dataDir>/LOCK`, held until exit.

import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tryLock } from 'fs-native-extensions';
import { KvError } from '../errors/index.ts';

/** The lock file inside the data directory; it holds the owner's pid (for the message only). */
export const LOCK_FILE = 'LOCK';

/** A held data directory lock. */
export interface DirLock {
  /** Releases the lock (closing the file). Idempotent. */
  release(): void;
}

/**
 * Takes the exclusive lock of `dir` (which must exist), the way etcd locks its directory: an
 * open-file-description lock (fcntl F_OFD_SETLK on Linux) on `<dir>/LOCK`. The kernel drops it
 * when the process exits by any means, SIGKILL included, so a stale file never blocks a start.
 * It works across processes and containers sharing the directory on one machine.
 *
 * Throws KvError KV_ERR_DATA_DIR_LOCKED naming the holder's pid when another process holds it.
 */
export function lockDataDir(dir: string): DirLock {
  const path = join(dir, LOCK_FILE);
  const fd = openSync(path, 'a+'); // never truncates: the holder's pid stays readable
  let held = false;
  try {
    held = tryLock(fd);
  } finally {
    if (!held) closeSync(fd);
  }
  if (!held) {
    const holder = readFileSync(path, 'utf8').trim();
    throw new KvError(
      'KV_ERR_DATA_DIR_LOCKED',
      `storage: data directory ${dir} is in use by ${/^\d+$/.test(holder) ? `pid ${holder}` : 'another process'} (${path} is locked)`,
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let open = true;
  return {
    release() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
