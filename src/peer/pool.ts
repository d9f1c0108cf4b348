// A pool of peer clients: a fixed number of persistent connections per peer address.

import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import { PeerClient, type PeerClientOptions } from './client.ts';

export interface PeerPoolOptions {
  readonly logger: Logger;
  readonly registry?: Registry;
  /** PeerClients (so TCP connections) per address; requests round-robin over them. */
  readonly connectionsPerAddress?: number;
  /** Options given to every client (timeouts, limits, backoff); see PeerClientOptions. */
  readonly client?: Omit<PeerClientOptions, 'address' | 'logger' | 'registry'>;
  /**
   * The clients of an address no `get` asked for in this long, with no request outstanding, are
   * closed and forgotten (after between one and two times this); undefined: never.
   */
  readonly idleCloseMs?: number;
}

export const PEER_POOL_DEFAULTS = {
  /** One multiplexed connection carries thousands of requests; more only if measured. */
  connectionsPerAddress: 1,
} as const;

interface Entry {
  readonly clients: readonly PeerClient[];
  next: number;
  /** A `get` asked for it since the last idle sweep. */
  used: boolean;
}

/**
 * Long-lived PeerClients keyed by address (`host:port`, compared as strings). Clients are
 * created on the first `get` of an address and connect lazily on their first request; nothing
 * is allocated per request beyond what PeerClient.request itself needs. With `idleCloseMs`, an
 * address nobody asks for any more (one a member source listed for a while and then stopped
 * listing, and that was never a member to be `remove`d) is closed and forgotten: the addresses
 * a node ever saw, and their connections, do not pile up over months of churn.
 */
export class PeerPool {
  readonly #opts: PeerPoolOptions;
  readonly #size: number;
  readonly #entries = new Map<string, Entry>();
  readonly #sweep: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: PeerPoolOptions) {
    this.#opts = opts;
    this.#size = opts.connectionsPerAddress ?? PEER_POOL_DEFAULTS.connectionsPerAddress;
    if (!Number.isInteger(this.#size) || this.#size < 1) {
      throw new KvError('KV_ERR_INVALID_ARGUMENT', 'peer: connectionsPerAddress must be >= 1');
    }
    const idle = opts.idleCloseMs;
    if (idle !== undefined) {
      if (!Number.isFinite(idle) || idle <= 0) {
        throw new KvError('KV_ERR_INVALID_ARGUMENT', 'peer: idleCloseMs must be > 0');
      }
      this.#sweep = setInterval(() => this.#closeIdle(), idle);
      this.#sweep.unref();
    }
  }

  /** Addresses that have clients now. */
  get addresses(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * A client for `address`: the same one every time when `connectionsPerAddress` is 1, else the
   * next of that address's clients in round-robin order. Throws KvError KV_ERR_INVALID_ARGUMENT
   * for a malformed address and KV_ERR_PEER_UNAVAILABLE after close().
   */
  get(address: string): PeerClient {
    if (this.#closed) throw new KvError('KV_ERR_PEER_UNAVAILABLE', 'peer: pool closed');
    let entry = this.#entries.get(address);
    if (entry === undefined) {
      entry = { clients: this.#create(address), next: 0, used: true };
      this.#entries.set(address, entry);
    }
    entry.used = true;
    if (entry.clients.length === 1) return entry.clients[0]!;
    const client = entry.clients[entry.next]!;
    entry.next = (entry.next + 1) % entry.clients.length;
    return client;
  }

  /**
   * Closes and forgets the clients of `address` (their outstanding requests reject with
   * KV_ERR_PEER_UNAVAILABLE); a later `get` creates new ones. No-op for an unknown address.
   */
  async remove(address: string): Promise<void> {
    const entry = this.#entries.get(address);
    if (entry === undefined) return;
    this.#entries.delete(address);
    await Promise.all(entry.clients.map((c) => c.close()));
  }

  /** Closes every client; `get` throws afterwards. Resolves when every socket is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep !== null) clearInterval(this.#sweep);
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.flatMap((e) => e.clients.map((c) => c.close())));
  }

  /** Forgets the addresses not asked for since the last sweep and with nothing outstanding. */
  #closeIdle(): void {
    for (const [address, entry] of this.#entries) {
      if (entry.used) entry.used = false;
      else if (entry.clients.every((c) => c.inFlight === 0)) void this.remove(address);
    }
  }

  #create(address: string): PeerClient[] {
    const { logger, registry, client } = this.#opts;
    const clients: PeerClient[] = [];
    for (let i = 0; i < this.#size; i++) {
      clients.push(new PeerClient({ ...client, address, logger, registry }));
    }
    return clients;
  }
}
