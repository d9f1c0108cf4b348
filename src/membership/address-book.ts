// Durable address -> name memory of the DNS source, so a restarted node can still name a silent peer.

import { readStateDoc, type StateStore, writeStateDoc } from '../storage/index.ts';

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

/**
 * An address book kept as the `dns-names` document of `store` (the node's data directory,
 * written in one transaction; its schema leaves out entries that are not an IP address and a
 * node name). Saves are written in call order; a failed save is passed to `onError` and the
 * next save writes the whole map again.
 */
export function stateAddressBook(
  store: StateStore,
  onError: (err: unknown) => void,
): AddressBook & {
  /**
   * Waits for the saves asked so far; later ones are dropped. For a node that stops: a resolve
   * still out when its member source stopped would otherwise save to a store closed meanwhile.
   */
  close(): Promise<void>;
} {
  let last: Promise<void> = Promise.resolve();
  let closed = false;
  return {
    load() {
      return new Map(Object.entries(readStateDoc(store, 'dns-names') ?? {}));
    },
    save(names) {
      if (closed) return;
      const doc = Object.fromEntries([...names].sort(([a], [b]) => (a < b ? -1 : 1)));
      last = last.then(() => writeStateDoc(store, 'dns-names', doc)).catch(onError);
    },
    close() {
      closed = true;
      return last;
    },
  };
}
