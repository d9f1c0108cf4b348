// A pool of peer clients: a fixed number of persistent data connections per peer address, and one for control.

import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import { PeerClient, type PeerClientOptions } from './client.ts';

export interface PeerPoolOptions {
  readonly logger: Logger;
  readonly registry?: Registry;
  /**
   * Data PeerClients (so TCP connections) per address; data requests round-robin over them. The
   * control lane's one connection is on top of these.
   */
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

/**
 * Which connection a request to a peer takes. `data`: replica reads and writes, hints, streams,
 * scans (frames up to the 64 MiB limit, both ways). `control`: the failure detector's probes and
 * other small, urgent requests with small answers, on a connection of their own so that they
 * never wait behind the data queued to the peer (up to `maxQueuedBytes` in this process, the
 * socket buffers, a frame the peer is still receiving, the peer's per-connection in-flight
 * window) nor their answers behind large answers the other way. A probe then times out when the
 * peer does not answer, not when the link is busy carrying its data.
 */
export type PeerLane = 'data' | 'control';

interface Entry {
  readonly clients: readonly PeerClient[];
  /** The control lane's client, made on the first `get(address, 'control')`. */
  control: PeerClient | null;
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
   * A client for `address` on `lane` (see PeerLane). `data`: the same one every time when
   * `connectionsPerAddress` is 1, else the next of that address's clients in round-robin order;
   * `control`: the address's one control client. Throws KvError KV_ERR_INVALID_ARGUMENT for a
   * malformed address and KV_ERR_PEER_UNAVAILABLE after close().
   */
  get(address: string, lane: PeerLane = 'data'): PeerClient {
    if (this.#closed) throw new KvError('KV_ERR_PEER_UNAVAILABLE', 'peer: pool closed');
    let entry = this.#entries.get(address);
    if (entry === undefined) {
      entry = { clients: this.#create(address, this.#size), control: null, next: 0, used: true };
      this.#entries.set(address, entry);
    }
    entry.used = true;
    if (lane === 'control') {
      entry.control ??= this.#create(address, 1)[0]!;
      return entry.control;
    }
    if (entry.clients.length === 1) return entry.clients[0]!;
    const client = entry.clients[entry.next]!;
    entry.next = (entry.next + 1) % entry.clients.length;
    return client;
  }

  /**
   * Starts connecting the data clients of `address` that have no connection (PeerClient.warm):
   * the connection a member's first write or read takes is then made and authenticated ahead of
   * it, as it was when probes went on it. No-op for an address without clients.
   */
  warm(address: string): void {
    const entry = this.#entries.get(address);
    if (entry !== undefined) for (const c of entry.clients) c.warm();
  }

  /**
   * Closes and forgets the clients of `address` (their outstanding requests reject with
   * KV_ERR_PEER_UNAVAILABLE); a later `get` creates new ones. No-op for an unknown address.
   */
  async remove(address: string): Promise<void> {
    const entry = this.#entries.get(address);
    if (entry === undefined) return;
    this.#entries.delete(address);
    await Promise.all(clientsOf(entry).map((c) => c.close()));
  }

  /** Closes every client; `get` throws afterwards. Resolves when every socket is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep !== null) clearInterval(this.#sweep);
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.flatMap((e) => clientsOf(e).map((c) => c.close())));
  }

  /** Forgets the addresses not asked for since the last sweep and with nothing outstanding. */
  #closeIdle(): void {
    for (const [address, entry] of this.#entries) {
      if (entry.used) entry.used = false;
      else if (clientsOf(entry).every((c) => c.inFlight === 0)) void this.remove(address);
    }
  }

  #create(address: string, count: number): PeerClient[] {
    const { logger, registry, client } = this.#opts;
    const clients: PeerClient[] = [];
    for (let i = 0; i < count; i++) {
      clients.push(new PeerClient({ ...client, address, logger, registry }));
    }
    return clients;
  }
}

/** Every client of an address, both lanes. */
function clientsOf(entry: Entry): PeerClient[] {
  return entry.control === null ? [...entry.clients] : [...entry.clients, entry.control];
}
