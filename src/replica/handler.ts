// Serves peer requests against this node's storage: the replica side of every quorum operation.

import { KvError } from '../errors/index.ts';
import type { PeerRequestContext } from '../peer/index.ts';
import { decodeRecord, type Entry, type Storage } from '../storage/index.ts';
import { checkPeerProof } from './auth.ts';
import {
  type ApplyReply,
  type ApplyRequest,
  type GetReply,
  type GetRequest,
  type HelloReply,
  METHODS,
  type ScanReply,
  type ScanRequest,
  type WireEntry,
} from './messages.ts';

export interface ReplicaHandlerOptions {
  readonly storage: Storage;
  /** This node's hello answer (status and ring progress come from above). */
  readonly hello: () => HelloReply;
  /** This node's data-directory incarnation: `get` and `scan` expecting another one are refused. */
  readonly incarnation: string;
  /** Largest `l` a scan request may ask for. */
  readonly maxScanEntries: number;
  /** When set, every connection must first prove it knows this secret (`auth`). */
  readonly clusterSecret?: string | null;
}

function asBuffer(v: unknown, what: string): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new KvError('KV_ERR_INVALID_ARGUMENT', `replica: ${what} must be bytes`);
}

/** Scans local storage for a peer: at most `l` entries and whether more remain. */
export function localScan(storage: Storage, req: ScanRequest): ScanReply {
  const entries: WireEntry[] = [];
  let more = false;
  const bounds = { start: req.s, end: req.e, inclusiveEnd: req.ie, exclusiveStart: req.xs };
  for (const { key, raw } of storage.scan(bounds)) {
    if (entries.length === req.l) {
      more = true;
      break;
    }
    entries.push([key, raw]);
  }
  return { e: entries, more };
}

/** Decodes wire entries into storage entries, checking their shape. */
export function toEntries(wire: unknown): Entry[] {
  if (!Array.isArray(wire))
    throw new KvError('KV_ERR_INVALID_ARGUMENT', 'replica: e must be a list');
  return wire.map((pair: unknown) => {
    if (!Array.isArray(pair) || pair.length !== 2) {
      throw new KvError('KV_ERR_INVALID_ARGUMENT', 'replica: entry must be [key, record]');
    }
    return { key: asBuffer(pair[0], 'key'), record: decodeRecord(asBuffer(pair[1], 'record')) };
  });
}

/** The peer-method handler: `(method, body) => reply` for the peer server. */
export function createReplicaHandler(opts: ReplicaHandlerOptions) {
  const { storage, incarnation } = opts;
  /** Refuses a read addressed to a settled-ring holder this data directory is not. */
  const checkIncarnation = (expected: unknown) => {
    if (expected === undefined || expected === null || expected === incarnation) return;
    throw new KvError(
      'KV_ERR_WRONG_INCARNATION',
      `replica: asked as incarnation ${String(expected)}, this data directory is ${incarnation}`,
    );
  };
  const secret = opts.clusterSecret || null;
  return (method: string, body: unknown, ctx?: PeerRequestContext): unknown => {
    if (secret !== null) {
      if (method === METHODS.auth) {
        checkPeerProof(secret, body);
        if (ctx) ctx.session.authenticated = true;
        return { ok: true };
      }
      if (!ctx?.session.authenticated) {
        throw new KvError('KV_ERR_NOAUTH', 'replica: peer did not authenticate');
      }
    } else if (method === METHODS.auth) {
      return { ok: true };
    }
    return serve(method, body);
  };

  async function serve(method: string, body: unknown): Promise<unknown> {
    const req = (body ?? {}) as Record<string, unknown>;
    switch (method) {
      case METHODS.hello:
        return opts.hello();
      case METHODS.get: {
        checkIncarnation(req.i);
        const r = storage.getRaw(asBuffer((req as unknown as GetRequest).k, 'k'));
        return { r: r ?? null } satisfies GetReply;
      }
      case METHODS.apply: {
        const n = await storage.applyBatch(toEntries((req as unknown as ApplyRequest).e));
        return { n } satisfies ApplyReply;
      }
      case METHODS.scan: {
        checkIncarnation(req.i);
        const l = Number(req.l);
        if (!Number.isInteger(l) || l < 1 || l > opts.maxScanEntries) {
          throw new KvError('KV_ERR_INVALID_ARGUMENT', `replica: scan limit ${String(req.l)}`);
        }
        return localScan(storage, {
          s: asBuffer(req.s, 's'),
          e: req.e === null || req.e === undefined ? null : asBuffer(req.e, 'e'),
          ie: req.ie === true,
          xs: req.xs === true,
          l,
        });
      }
      default:
        throw new KvError('KV_ERR_UNKNOWN_COMMAND', `replica: unknown peer method '${method}'`);
    }
  }
}
