// Durable address -> name memory of the DNS source, so a restarted node can still name a silent peer.

import { isIP } from 'node:net';
import { NODE_NAME } from './sources.ts';

/**
 * Where the DNS source keeps the names it learned for A/AAAA addresses (by PTR or by asking the
 * peer), so that after a restart an address that does not answer yet is still named.
 */
export interface AddressBook {
  /** The names saved by an earlier run (address -> node name); empty when there are none. */
  load(): Map<string, string>;
  /**
   * Replaces the saved names with `names`. Atomic (the saved map is the old one or the new one,
   * never a mix) and durable soon after; never throws (a failure is the book's to report).
   */
  save(names: ReadonlyMap<string, string>): void;
}

/** The small durable JSON state a node keeps in its data directory (Storage implements it). */
export interface StateStore {
  readState<T>(name: string): T | undefined;
  /** Stores a JSON document atomically; resolves once durable. */
  writeState(name: string, value: unknown): Promise<void>;
}

/**
 * An address book kept as one JSON document `{ address: name }` under `key` of `store` (the
 * node's data directory, written in one transaction). Entries that are not an IP address and a
 * node name are ignored on load. Saves are written in call order; a failed save is passed to
 * `onError` and the next save writes the whole map again.
 */
export function stateAddressBook(
  store: StateStore,
  key: string,
  onError: (err: unknown) => void,
): AddressBook {
  let last: Promise<void> = Promise.resolve();
  return {
    load() {
      const saved = store.readState<unknown>(key);
      const names = new Map<string, string>();
      if (saved === null || typeof saved !== 'object' || Array.isArray(saved)) return names;
      for (const [host, name] of Object.entries(saved)) {
        if (isIP(host) !== 0 && typeof name === 'string' && NODE_NAME.test(name)) {
          names.set(host, name);
        }
      }
      return names;
    },
    save(names) {
      const doc = Object.fromEntries([...names].sort(([a], [b]) => (a < b ? -1 : 1)));
      last = last.then(() => store.writeState(key, doc)).catch(onError);
    },
  };
}
