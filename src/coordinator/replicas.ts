// Reaches a replica by name: this node's storage directly, any other node over the peer port.

import { KvError } from '../errors/index.ts';
import {
  type ApplyReply,
  type GetReply,
  type GetRequest,
  localScan,
  METHODS,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from '../replica/index.ts';
import { decodeRecord, type Storage } from '../storage/index.ts';

/** Sends one peer request; rejects with a KvError (unavailable, timeout, remote code). */
export type PeerCall = (name: string, method: string, body: unknown) => Promise<unknown>;

/**
 * The incarnation a member must have for its data to count: the one the settled ring recorded
 * for it, or undefined (not a settled holder, or not recorded).
 */
export type ExpectedIncarnation = (name: string) => string | undefined;

/**
 * The replica operations the coordinator needs, whatever node holds the replica. Reads (`get`,
 * `scan`) of another member carry the incarnation `expected` gives for it: a member back with
 * another data directory refuses them (KV_ERR_WRONG_INCARNATION) instead of answering as a
 * holder of data it does not have. Writes carry none: a copy written there is real.
 */
export class Replicas {
  readonly self: string;
  readonly #storage: Storage;
  readonly #call: PeerCall;
  readonly #expected: ExpectedIncarnation;

  constructor(
    self: string,
    storage: Storage,
    call: PeerCall,
    expected: ExpectedIncarnation = () => undefined,
  ) {
    this.self = self;
    this.#storage = storage;
    this.#call = call;
    this.#expected = expected;
  }

  /** The record stored at `key` on `name` (encodeRecord bytes, tombstones included), or null. */
  async get(name: string, key: Buffer): Promise<Buffer | null> {
    if (name === this.self) return this.#storage.getRaw(key) ?? null;
    const i = this.#expected(name);
    const body: GetRequest = i === undefined ? { k: key } : { k: key, i };
    const reply = (await this.#call(name, METHODS.get, body)) as GetReply;
    return reply.r === null ? null : owned(reply.r);
  }

  /** Applies entries on `name` (last write wins); resolves once durable there. */
  async apply(name: string, entries: WireEntry[]): Promise<void> {
    if (name === this.self) {
      await this.#storage.applyBatch(
        entries.map(([key, raw]) => ({ key, record: decodeRecord(raw) })),
      );
      return;
    }
    const reply = (await this.#call(name, METHODS.apply, { e: entries })) as ApplyReply;
    if (typeof reply?.n !== 'number') {
      throw new KvError('KV_ERR_INTERNAL', `replication: bad apply reply from ${name}`);
    }
  }

  /** Scans `name`'s local records (tombstones included). */
  async scan(name: string, req: ScanRequest): Promise<ScanReply> {
    if (name === this.self) return localScan(this.#storage, req);
    const i = this.#expected(name);
    const body: ScanRequest = i === undefined ? req : { ...req, i };
    const reply = (await this.#call(name, METHODS.scan, body)) as ScanReply;
    return {
      e: reply.e.map(([k, r]) => [owned(k), owned(r)] as WireEntry),
      more: reply.more,
    };
  }
}

/** The peer codec decodes bytes as Buffers that own their memory: no copy unless it did not. */
function owned(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b);
}
