// Drops every record of this node's store (a recommissioned node's stale copies), and its hints.

import type { Hint, HintStore, Storage, Version } from '../storage/index.ts';

const CHUNK = 1024;

/**
 * Discards every record, in key order, a chunk at a time; a key written again meanwhile (a newer
 * version than the one read) is kept. Resolves with how many were dropped.
 */
export async function dropAll(storage: Storage): Promise<number> {
  let dropped = 0;
  let after: Buffer | null = null;
  for (;;) {
    const chunk: { key: Buffer; version: Version }[] = [];
    const bounds = after
      ? { start: after, end: null, exclusiveStart: true }
      : { start: Buffer.alloc(0), end: null };
    for (const { key, record } of storage.scan(bounds)) {
      chunk.push({ key: Buffer.from(key), version: record.version });
      if (chunk.length === CHUNK) break;
    }
    if (chunk.length === 0) return dropped;
    dropped += await storage.discard(chunk);
    after = chunk[chunk.length - 1]!.key;
  }
}

/**
 * Deletes every hint the store holds but those `keep` says to keep, a chunk at a time (a node
 * taken out of the ring drops them with its records: they may hold values deleted since; it keeps
 * those of records too recent for that, recentRecord). Resolves with how many were deleted.
 */
export async function dropHints(
  store: HintStore,
  keep: (h: Hint) => boolean = () => false,
): Promise<number> {
  let dropped = 0;
  for (const target of store.targets()) {
    let after: Buffer | null = null;
    for (;;) {
      const chunk = store.list(target, CHUNK, Number.POSITIVE_INFINITY, after);
      if (chunk.length === 0) break;
      after = chunk[chunk.length - 1]!.id;
      const gone = chunk.filter((h) => !keep(h));
      await store.remove(gone);
      dropped += gone.length;
    }
  }
  return dropped;
}
