// The incarnation of a data directory: a random id made when the directory is new, kept in it.

import { randomHex } from '../lifecycle/index.ts';
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
