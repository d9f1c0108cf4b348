// Reaches a replica by name: this node's storage directly, any other node over the peer port.

import { decodeRecord, type Storage, type StoredRecord, validWall } from '../storage/index.ts';
import {
  type ApplyRequest,
  type GetRequest,
  METHODS,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from './messages.ts';
import { localScan } from './scan.ts';
import { RemoteVersions } from './versions.ts';
import { readApplyReply, readGetReply, readScanReply } from './wire.ts';

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
 *
 * Every reply from another member is checked before it is used (replica/wire.ts), and so is
 * every version in it (RemoteVersions): a malformed reply rejects with KV_ERR_PEER_PROTOCOL or
 * KV_ERR_BAD_RECORD, a version too far ahead with KV_ERR_CLOCK_OFFSET, so a quorum counts it as
 * a failed replica and nothing of it is adopted or repaired onto others.
 */
export class Replicas {
  readonly self: string;
  readonly #storage: Storage;
  readonly #call: PeerCall;
  readonly #expected: ExpectedIncarnation;
  readonly #versions: RemoteVersions;
  readonly #applyTimeoutMs: number | null;

  constructor(
    self: string,
    storage: Storage,
    call: PeerCall,
    expected: ExpectedIncarnation = () => undefined,
    versions: RemoteVersions = new RemoteVersions({ clock: storage.clock }),
    applyTimeoutMs: number | null = null,
  ) {
    this.self = self;
    this.#storage = storage;
    this.#call = call;
    this.#expected = expected;
    this.#versions = versions;
    this.#applyTimeoutMs = applyTimeoutMs;
  }

  /**
   * The record stored at `key` on `name` (encodeRecord bytes, tombstones included), or null.
   * A local record whose version is out of range (stored before versions were checked) reads
   * as null, so any write replaces it.
   */
  async get(name: string, key: Buffer): Promise<Buffer | null> {
    if (name === this.self) {
      const raw = this.#storage.getRaw(key);
      return raw !== undefined && validWall(raw) ? raw : null;
    }
    const i = this.#expected(name);
    const body: GetRequest = i === undefined ? { k: key } : { k: key, i };
    const reply = readGetReply(await this.#call(name, METHODS.get, body));
    if (reply === null) return null;
    this.#versions.check(reply.record.version, 'reply', name);
    return reply.raw;
  }

  /**
   * Applies entries on `name` (last write wins); resolves once durable there. With
   * `applyTimeoutMs` (the peer request timeout) the request carries its deadline, and a replica
   * that reads it too late refuses it (ApplyRequest.d). `records`, when given, are the entries'
   * records decoded (in the same order): a local apply then neither decodes nor re-encodes them.
   */
  async apply(
    name: string,
    entries: WireEntry[],
    records?: readonly StoredRecord[],
  ): Promise<void> {
    if (name === this.self) {
      await this.#storage.applyBatch(
        entries.map(([key, raw], i) => ({ key, record: records?.[i] ?? decodeRecord(raw), raw })),
      );
      return;
    }
    const t = this.#applyTimeoutMs;
    const body: ApplyRequest = t === null ? { e: entries } : { e: entries, d: Date.now() + t };
    readApplyReply(await this.#call(name, METHODS.apply, body));
  }

  /** Scans `name`'s local records (tombstones included). */
  async scan(name: string, req: ScanRequest): Promise<ScanReply> {
    if (name === this.self) return localScan(this.#storage, req);
    const i = this.#expected(name);
    const body: ScanRequest = i === undefined ? req : { ...req, i };
    const reply = readScanReply(await this.#call(name, METHODS.scan, body), req.l);
    this.#versions.checkAll(reply.records, 'reply', name);
    return { e: reply.e, more: reply.more, records: reply.records };
  }
}
