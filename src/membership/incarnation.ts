// The incarnation of a data directory: a random id made when the directory is new, kept in it.

import { closeSync, openSync, readSync } from 'node:fs';
import { readStateDoc, type StateStore, writeStateDoc } from '../storage/index.ts';

/**
 * This data directory's incarnation: the id saved in it, or a new random one (16 hex digits)
 * saved durably before it is returned, with `created` true. A node back under the same name on
 * a new, empty directory (a lost volume, a deleted PVC) thus has a new incarnation, which tells
 * the others it does not hold the data its name held.
 */
export async function loadIncarnation(
  store: StateStore,
): Promise<{ readonly id: string; readonly created: boolean }> {
  const saved = readStateDoc(store, 'incarnation');
  if (saved !== undefined) return { id: saved, created: false };
  const id = randomHex(8);
  await writeStateDoc(store, 'incarnation', id);
  return { id, created: true };
}

/**
 * `bytes` random bytes as hex, from the kernel's random source (/dev/urandom, what
 * crypto.randomBytes draws on too) when it is there: node:crypto would load OpenSSL's set-up and
 * 17 modules (about 1 MiB of RSS) into every new node for these 8 bytes alone.
 */
function randomHex(bytes: number): string {
  const b = Buffer.alloc(bytes);
  let fd: number | null = null;
  try {
    fd = openSync('/dev/urandom', 'r');
    if (readSync(fd, b) === bytes) return b.toString('hex');
  } catch {
    // No /dev/urandom (an unusual sandbox): node:crypto below.
  } finally {
    if (fd !== null) closeSync(fd);
  }
  return process.getBuiltinModule('node:crypto').randomBytes(bytes).toString('hex');
}
