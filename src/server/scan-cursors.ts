// SCAN cursors: numeric tokens standing for the key a scan resumes after, held by this node.

import type { ScanCursors } from '../protocol/index.ts';

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

export interface ScanCursorOptions {
  /** Cursors kept at most; the oldest are forgotten first. */
  readonly max: number;
  /** How long a cursor stays valid after it was issued. */
  readonly ttlMs: number;
  /** Clock (tests pass their own). */
  readonly now?: () => number;
}

/**
 * Redis clients parse SCAN cursors as unsigned integers (redis-cli as a 64-bit one, some
 * JavaScript clients as a double), so a cursor cannot carry a key of up to --max-key-bytes.
 * This table maps random integers in [1, 2^48) to resume keys. A cursor is valid on the node
 * that issued it, for `ttlMs`, among the `max` most recent, and may be reused (a client may
 * retry a page); an unknown or expired one resolves to undefined.
 */
export class ScanCursorTable implements ScanCursors {
  readonly #entries = new Map<string, { readonly key: Buffer; readonly expires: number }>();
  readonly #o: ScanCursorOptions;
  readonly #now: () => number;

  constructor(opts: ScanCursorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  issue(key: Buffer): string {
    const now = this.#now();
    // Insertion order is expiry order: drop expired entries from the front, then the oldest.
    for (const [token, e] of this.#entries) {
      if (e.expires > now && this.#entries.size < this.#o.max) break;
      this.#entries.delete(token);
    }
    let token: string;
    do token = String(nodeCrypto().randomInt(1, 2 ** 48 - 1));
    while (this.#entries.has(token));
    // A copy in memory of its own: a small Buffer.from is a slice of Node's shared 64 KiB pool,
    // which a cursor kept for its ttl would keep whole (10,000 cursors: 640 MiB).
    const own = Buffer.allocUnsafeSlow(key.length);
    own.set(key);
    this.#entries.set(token, { key: own, expires: now + this.#o.ttlMs });
    return token;
  }

  resolve(token: string): Buffer | undefined {
    const e = this.#entries.get(token);
    if (e === undefined || e.expires <= this.#now()) return undefined;
    return e.key;
  }
}
