// The incarnation of a data directory: a random id made when the directory is new, kept in it.

import { randomBytes } from 'node:crypto';
import type { StateStore } from './address-book.ts';

const INCARNATION_KEY = 'incarnation';

/**
 * This data directory's incarnation: the id saved in it, or a new random one (16 hex digits)
 * saved durably before it is returned, with `created` true. A node back under the same name on
 * a new, empty directory (a lost volume, a deleted PVC) thus has a new incarnation, which tells
 * the others it does not hold the data its name held.
 */
export async function loadIncarnation(
  store: StateStore,
): Promise<{ readonly id: string; readonly created: boolean }> {
  const saved = store.readState<unknown>(INCARNATION_KEY);
  if (typeof saved === 'string' && /^[0-9a-f]{16}$/.test(saved)) {
    return { id: saved, created: false };
  }
  const id = randomBytes(8).toString('hex');
  await store.writeState(INCARNATION_KEY, id);
  return { id, created: true };
}
