// Reaches a replica by name: this node's storage directly, any other node over the peer port.

import { KvError } from '../errors/index.ts';
import {
  type ApplyReply,
  type GetReply,
  localScan,
  METHODS,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from '../replica/index.ts';
import { decodeRecord, type Storage } from '../storage/index.ts';

/** Sends one peer request; rejects with a KvError (unavailable, timeout, remote code). */
export type PeerCall = (name: string, method: string, body: unknown) => Promise<unknown>;

/** The replica operations the coordinator needs, whatever node holds the replica. */
export class Replicas {
  readonly self: string;
  readonly #storage: Storage;
  readonly #call: PeerCall;

  constructor(self: string, storage: Storage, call: PeerCall) {
    this.self = self;
    this.#storage = storage;
    this.#call = call;
  }

  /** The record stored at `key` on `name` (encodeRecord bytes, tombstones included), or null. */
  async get(name: string, key: Buffer): Promise<Buffer | null> {
    if (name === this.self) return this.#storage.getRaw(key) ?? null;
    const reply = (await this.#call(name, METHODS.get, { k: key })) as GetReply;
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
    const reply = (await this.#call(name, METHODS.scan, req)) as ScanReply;
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
