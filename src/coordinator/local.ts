// Executes commands against this node's own storage (one node, or the local replica's share).

import { KvError } from '../errors/index.ts';
import type { Command, Reply, ScanPage } from '../protocol/index.ts';
import type { ScanBounds, Storage } from '../storage/index.ts';
import { successorOfPrefix } from './keyspace.ts';

export interface CoordinatorOptions {
  /** Cap on keys a RANGE/PREFIX without LIMIT may return; above it the reply is an error. */
  readonly maxScanKeys: number;
}

/** Turns commands into replies. A reply that needs durable storage comes as a promise. */
export interface Coordinator {
  execute(cmd: Command): Reply | Promise<Reply>;
}

const OK: Reply = { type: 'ok' };
const PONG: Reply = { type: 'pong' };
const NOT_FOUND: Reply = { type: 'not_found' };

/**
 * The single-node coordinator: every key is local. PUT and REMOVE resolve after the write is
 * durable; GET, RANGE and PREFIX read the memory-mapped store synchronously.
 */
export class LocalCoordinator implements Coordinator {
  readonly #storage: Storage;
  readonly #opts: CoordinatorOptions;

  constructor(storage: Storage, opts: CoordinatorOptions) {
    this.#storage = storage;
    this.#opts = opts;
  }

  execute(cmd: Command): Reply | Promise<Reply> {
    switch (cmd.type) {
      case 'put':
        return this.#put(cmd.key, cmd.value);
      case 'get': {
        const rec = this.#storage.get(cmd.key);
        return rec && !rec.tombstone ? { type: 'value', value: rec.value } : NOT_FOUND;
      }
      case 'remove':
        return this.#remove(cmd.key);
      case 'range':
        if (Buffer.compare(cmd.start, cmd.end) > 0) return scanReply([], cmd.page, false);
        return this.#scan({ start: cmd.start, end: cmd.end, inclusiveEnd: true }, cmd.page);
      case 'prefix':
        return this.#scan({ start: cmd.prefix, end: successorOfPrefix(cmd.prefix) }, cmd.page);
      case 'ping':
        return PONG;
      case 'quit':
        return OK;
      default: {
        const never: never = cmd;
        throw new Error(`coordinator: unhandled command ${JSON.stringify(never)}`);
      }
    }
  }

  async #put(key: Buffer, value: Buffer): Promise<Reply> {
    const version = this.#storage.clock.now();
    await this.#storage.apply(key, { version, tombstone: false, value });
    return OK;
  }

  async #remove(key: Buffer): Promise<Reply> {
    const removed = await this.#storage.removeIfLive(key, this.#storage.clock.now());
    return removed ? OK : NOT_FOUND;
  }

  #scan(bounds: ScanBounds, page: ScanPage): Reply {
    const effective = applyCursor(bounds, page.cursor);
    if (effective === null) return scanReply([], page, false);
    const cap = page.limit ?? this.#opts.maxScanKeys;
    const keys: Buffer[] = [];
    let more = false;
    for (const { key, record } of this.#storage.scan(effective)) {
      if (record.tombstone) continue;
      if (keys.length === cap) {
        more = true;
        break;
      }
      keys.push(key);
    }
    if (more && page.limit === null) {
      throw new KvError(
        'KV_ERR_LIMIT_EXCEEDED',
        `coordinator: more than ${cap} keys match; page with LIMIT n [CURSOR key]`,
      );
    }
    return scanReply(keys, page, more);
  }
}

/** Narrows bounds to keys strictly after `cursor`; null when nothing is left. */
export function applyCursor(bounds: ScanBounds, cursor: Buffer | null): ScanBounds | null {
  if (cursor === null || Buffer.compare(cursor, bounds.start) < 0) return bounds;
  // Nothing lies after a cursor at or past the end, whether the end is inclusive or not.
  if (bounds.end !== null && Buffer.compare(cursor, bounds.end) >= 0) return null;
  return { ...bounds, start: cursor, exclusiveStart: true };
}

function scanReply(keys: Buffer[], page: ScanPage, more: boolean): Reply {
  const last = keys[keys.length - 1];
  return {
    type: 'keys',
    keys,
    paged: page.limit !== null,
    next: more && last !== undefined ? last : null,
  };
}
