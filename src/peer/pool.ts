// A pool of peer clients: per peer address, persistent connections for small requests, one for large ones, one for control.

import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import {
  encodeFrame,
  PeerClient,
  type PeerClientOptions,
  type PeerRequestOptions,
} from './client.ts';
import { FRAME_HEADER_BYTES } from './frame.ts';
import type { PeerLane } from './metrics.ts';
import { PeerRefusals } from './refusals.ts';

export type { PeerLane } from './metrics.ts';

export interface PeerPoolOptions {
  readonly logger: Logger;
  readonly registry?: Registry;
  /**
   * `small` lane PeerClients (so TCP connections) per address; its requests round-robin over
   * them. The `large` and `control` lanes' one connection each are on top of these.
   */
  readonly connectionsPerAddress?: number;
  /** Options given to every client (timeouts, limits, backoff); see PeerClientOptions. */
  readonly client?: Omit<
    PeerClientOptions,
    'address' | 'logger' | 'registry' | 'lane' | 'refusals'
  >;
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
 * Request frames over this many bytes take the `large` lane (PeerPool.request): the threshold
 * Cassandra uses for its large-message connections. A 64 KiB frame is half a millisecond on a
 * 1 Gbit/s link; a 4 MiB hint batch or a 64 MiB value is seconds on a slow one, and a quorum
 * read queued behind it on one connection waited all of that.
 */
export const LARGE_FRAME_BYTES = 64 * 1024;

/** Requests that go on the large lane whatever their size (see PeerPool.request). */
export interface RequestOptions extends PeerRequestOptions {
  /**
   * A bulk transfer (hint delivery, streams, anti-entropy): on the `large` lane even when small,
   * so that it never queues ahead of the small lane's requests, its large replies come back
   * behind no small reply, and its requests to a peer keep their order (a retry follows the
   * copy that timed out on the same connection).
   */
  readonly bulk?: boolean;
}

interface Entry {
  /** The small lane's clients. */
  readonly clients: readonly PeerClient[];
  /** The large lane's client, made on its first request. */
  large: PeerClient | null;
  /** The control lane's client, made on the first `get(address, 'control')`. */
  control: PeerClient | null;
  next: number;
  /** A `get` asked for it since the last idle sweep. */
  used: boolean;
  /** Its refused handshakes, every lane's: logged once per episode, not once per lane. */
  readonly refusals: PeerRefusals;
}

/**
 * Which connection a request to a peer takes: every address has connections of its own per lane,
 * each with its own queue, so that a request waits only behind its own lane's requests (in this
 * process's queue, the socket buffers, a frame the peer is still receiving, the peer's
 * per-connection in-flight window), and its answer only behind its lane's answers. `small`:
 * requests whose frame is at most LARGE_FRAME_BYTES (quorum reads and writes of small values,
 * deletes, scans). `large`: the bigger ones (writes of large values, batches) and bulk transfers
 * (RequestOptions.bulk). `control`: the failure detector's probes, so that a probe times out
 * when the peer does not answer, not when the link is busy carrying its data.
 *
 * Requests of different lanes are not ordered with each other: two writes of one key, one large
 * and one small, may arrive in either order, and the versions decide (last write wins), as they
 * do for writes from two coordinators. A reply comes back on its request's connection: a small
 * request with a large answer (a get of a large value) still holds the small lane's answers
 * behind it while it crosses.
 */
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
   * A client for `address` on `lane` (see PeerLane). `small`: the same one every time when
   * `connectionsPerAddress` is 1, else the next of that address's clients in round-robin order;
   * `large`, `control`: the address's one client of that lane. Throws KvError
   * KV_ERR_INVALID_ARGUMENT for a malformed address and KV_ERR_PEER_UNAVAILABLE after close().
   */
  get(address: string, lane: PeerLane = 'small'): PeerClient {
    if (this.#closed) throw new KvError('KV_ERR_PEER_UNAVAILABLE', 'peer: pool closed');
    let entry = this.#entries.get(address);
    if (entry === undefined) {
      const refusals = new PeerRefusals(this.#opts.logger);
      const clients = this.#create(address, this.#size, 'small', refusals);
      entry = { clients, large: null, control: null, next: 0, used: true, refusals };
      this.#entries.set(address, entry);
    }
    entry.used = true;
    if (lane === 'control') {
      entry.control ??= this.#create(address, 1, 'control', entry.refusals)[0]!;
      return entry.control;
    }
    if (lane === 'large') {
      entry.large ??= this.#create(address, 1, 'large', entry.refusals)[0]!;
      return entry.large;
    }
    if (entry.clients.length === 1) return entry.clients[0]!;
    const client = entry.clients[entry.next]!;
    entry.next = (entry.next + 1) % entry.clients.length;
    return client;
  }

  /**
   * PeerClient.request on the lane the request's size (or `opts.bulk`) chooses: the body is
   * encoded once, and a frame over LARGE_FRAME_BYTES goes on the `large` lane, any other on the
   * `small` one. Throws as get() does.
   */
  request<T>(
    address: string,
    method: string,
    body: unknown,
    opts: RequestOptions = {},
  ): Promise<T> {
    const frame = encodeFrame(method, body);
    const large =
      opts.bulk === true ||
      (frame instanceof Buffer && frame.length - FRAME_HEADER_BYTES > LARGE_FRAME_BYTES);
    return this.get(address, large ? 'large' : 'small').requestFrame<T>(method, frame, opts);
  }

  /**
   * Starts connecting the small and large lanes' clients of `address` that have no connection
   * (PeerClient.warm): the connections a member's first write or read takes are then made and
   * authenticated ahead of it, as they were when probes went on them. No-op for an address
   * without clients.
   */
  warm(address: string): void {
    const entry = this.#entries.get(address);
    if (entry === undefined) return;
    entry.large ??= this.#create(address, 1, 'large', entry.refusals)[0]!;
    for (const c of entry.clients) c.warm();
    entry.large.warm();
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

  #create(address: string, count: number, lane: PeerLane, refusals: PeerRefusals): PeerClient[] {
    const { logger, registry, client } = this.#opts;
    const clients: PeerClient[] = [];
    for (let i = 0; i < count; i++) {
      clients.push(new PeerClient({ ...client, address, logger, registry, lane, refusals }));
    }
    return clients;
  }
}

/** Every client of an address, every lane. */
function clientsOf(entry: Entry): PeerClient[] {
  const all = [...entry.clients];
  if (entry.large !== null) all.push(entry.large);
  if (entry.control !== null) all.push(entry.control);
  return all;
}
