// Serves peer requests against this node's storage: the replica side of every quorum operation.

import { answerPeerChallenge, checkPeerProof, type PeerChallengeState } from '../auth/index.ts';
import { KvError } from '../errors/index.ts';
import { randomHex } from '../lifecycle/index.ts';
import type { PeerRequestContext } from '../peer/index.ts';
import { type Entry, headerBytes, type Storage, validWall } from '../storage/index.ts';
import {
  type ApplyReply,
  GET_MANY_REPLY_BYTES,
  type GetManyReply,
  type GetReply,
  type HelloReply,
  type HelloRequest,
  METHODS,
  type RingFence,
} from './messages.ts';
import { localScan, ScanWork } from './scan.ts';
import { RemoteVersions } from './versions.ts';
import {
  readApplyDeadline,
  readApplyPlacement,
  readApplyRequest,
  readGetManyRequest,
  readGetRequest,
  readHelloRequest,
  readRingFence,
  readScanRequest,
} from './wire.ts';

export interface ReplicaHandlerOptions {
  readonly storage: Storage;
  /**
   * Hints this node holds now, queued ones included (Hints.held): said in `synced` answers, so
   * that tombstone collection sees a hint made since this node's last hello. Absent: not said.
   */
  readonly hintsHeld?: () => number;
  /**
   * This node's hello answer (status and ring progress come from above), given what the asker
   * said of itself (readHelloRequest: `{}` from older versions).
   */
  readonly hello: (asker: HelloRequest) => HelloReply;
  /** This node's data-directory incarnation: `get` and `scan` expecting another one are refused. */
  readonly incarnation: string;
  /**
   * The epoch of this node's settled ring while that ring records this node lost (a volume back,
   * being refilled), else null. A read expecting this very directory is then refused too
   * (KV_ERR_WRONG_INCARNATION) unless it was placed under a newer ring (ExpectIncarnation.ir): one no newer counts
   * this directory as a holder only because it predates the loss, and the directory may lack
   * writes taken while the member ran on another one (it came back on its old volume). A newer
   * ring that records it is a settle after its refill. null too for a member recorded lost for
   * its own hand-off (lostAt in membership/settled.ts): that directory holds all it held. Absent:
   * never.
   */
  readonly lostAt?: () => number | null;
  /** Largest `l` a scan request may ask for. */
  readonly maxScanEntries: number;
  /**
   * How long a scan request reads before it answers what it has, with more (localScan); absent:
   * unbounded. A share of the peer timeout (SCAN_REPLY_TIMEOUT_SHARE), which its asker waits.
   */
  readonly scanReplyMs?: number;
  /**
   * The node's scan work per event-loop turn, shared with its own scans (Replicas.scanWork);
   * absent: a bound of the handler's own.
   */
  readonly scanWork?: ScanWork;
  /** When set, every connection must first prove it knows this secret (`auth`). */
  readonly clusterSecret?: string | null;
  /**
   * Clock offset allowed between members (--max-clock-offset-ms): an `apply` read later than its
   * deadline plus this is refused with KV_ERR_EXPIRED. Default 0.
   */
  readonly maxClockOffsetMs?: number;
  /** The check of versions in `apply` requests (default: storage's clock, metrics unexported). */
  readonly versions?: RemoteVersions;
  /**
   * More peer methods by name (backup sessions), served after authentication like the others;
   * each checks its own body.
   */
  readonly methods?: Readonly<Record<string, (body: unknown) => unknown>>;
  /**
   * Writes placed under other rings than this node's (ApplyRequest.p): absent, every write is
   * stored here as it is.
   */
  readonly reroute?: Reroute;
  /**
   * True once this node's decommission hand-off finished: it refuses reads (get, getMany, scan)
   * with KV_ERR_HANDED_OFF. Its copies stop getting the writes of members that know it (they no
   * longer count it as a holder), so a member that has not learned it yet must not count them.
   */
  readonly handedOff?: () => boolean;
  /**
   * An error while this node takes and serves no data (get, getMany, apply, scan), as for a
   * stalled disk: starting, or dropping records it must not serve (the asker uses other owners,
   * a stream retries). Absent: never.
   */
  readonly refusing?: () => KvError | null;
  /**
   * Checks the ring fence of a request that carries one (RingFence; every method but `hello`):
   * the error it answers (KV_ERR_STALE_RING) refuses the request before its method runs. Absent:
   * never refused.
   */
  readonly fence?: (f: RingFence, oldest?: () => number | undefined) => KvError | null;
}

/**
 * What a digest read (GetRequest.h) is sent of a stored record: a copy of its header (the value
 * is neither copied nor sent), or null as for a whole read. `raw` is LMDB's own bytes
 * (Storage.withRaw): sliced with explicit ends only.
 */
function headerOf(raw: Buffer | undefined): Buffer | null {
  if (raw === undefined || !validWall(raw)) return null;
  return Buffer.from(raw.subarray(0, headerBytes(raw)));
}

/** How a replica passes on writes a coordinator placed under other rings than its own. */
export interface Reroute {
  /**
   * The rings this node routes by now (Topology.placementId); undefined while it has none yet
   * (starting up): a write is then stored as it is, and the rebalance stream, which starts
   * later, sends it on wherever it must go.
   */
  rings(): string | undefined;
  /**
   * Writes each entry to the key's owners under this node's rings (this node stores it only if
   * it is one), a write quorum in each; rejects when one of them does not reach its quorums.
   * `deadline`: the request's (ApplyRequest.d), which the copies carry on.
   */
  write(entries: readonly Entry[], deadline: number | undefined): Promise<void>;
}

/**
 * The peer-method handler: `(method, body, ctx) => reply` for the peer server. Every body is
 * checked by its method's decoder (wire.ts) before it reaches storage, and every version of an
 * `apply` by RemoteVersions; a bad one is answered with an error and nothing is applied.
 */
export function createReplicaHandler(opts: ReplicaHandlerOptions) {
  const { storage, incarnation, reroute } = opts;
  const versions = opts.versions ?? new RemoteVersions({ clock: storage.clock });
  const allowance = opts.maxClockOffsetMs ?? 0;
  const scanWork = opts.scanWork ?? new ScanWork();
  /** This process's id in `synced` answers (METHODS.synced): one per start. */
  const processId = randomHex(8);
  /**
   * Refuses a read addressed to a settled-ring holder this data directory is not: another
   * directory, or this one while this node's ring records it lost and the asker's is no newer
   * (see lostAt): the ring that recorded `expected` (`recordedIn`), or for an asker that does
   * not say (before 2026-12-07) its ring fence, from `body`.
   */
  const checkIncarnation = (
    expected: string | undefined,
    recordedIn: number | undefined,
    body: unknown,
  ) => {
    if (expected === undefined) return;
    if (expected !== incarnation) {
      throw new KvError(
        'KV_ERR_WRONG_INCARNATION',
        `replica: asked as incarnation ${expected}, this data directory is ${incarnation}`,
      );
    }
    const at = opts.lostAt?.() ?? null;
    if (at === null) return;
    const epoch = recordedIn ?? readRingFence(body)?.[0];
    if (epoch !== undefined && epoch > at) return;
    throw new KvError(
      'KV_ERR_WRONG_INCARNATION',
      `replica: asked as incarnation ${expected} under settled ring epoch ${epoch ?? 'unknown'}; this node's ring (epoch ${at}) records this data directory lost: it is being refilled and may lack writes taken while the node ran on another`,
    );
  };
  /**
   * Refuses a read once this node's data was handed off, unless the asker reads the ring without
   * this node as well (`o`; see handedOff).
   */
  const checkServing = (outOfTarget: boolean) => {
    if (outOfTarget || !opts.handedOff?.()) return;
    throw new KvError(
      'KV_ERR_HANDED_OFF',
      'replica: this node is decommissioned; its data was handed off to the other members',
    );
  };
  /** Refuses data requests while this node's disk is stalled or it refuses them (see refusing). */
  const checkDisk = () => {
    const stalled = storage.stalled() ?? opts.refusing?.() ?? null;
    if (stalled !== null) throw stalled;
  };
  const secret = opts.clusterSecret || null;
  return (method: string, body: unknown, ctx?: PeerRequestContext): unknown => {
    if (secret !== null) {
      if (ctx?.session.authenticated) return serve(method, body, ctx.remote);
      if (method === METHODS.challenge && ctx && ctx.session.handshake === undefined) {
        const { reply, state } = answerPeerChallenge(secret, body);
        ctx.session.handshake = state;
        return reply;
      }
      if (method === METHODS.auth && ctx) {
        const state = (ctx.session.handshake as PeerChallengeState | undefined) ?? null;
        checkPeerProof(secret, body, state);
        ctx.session.authenticated = true;
        return { ok: true };
      }
      throw new KvError('KV_ERR_NOAUTH', 'replica: peer did not authenticate');
    }
    if (method === METHODS.challenge || method === METHODS.auth) {
      // The dialer has a cluster secret and this node none: tell it, rather than serve it.
      throw new KvError('KV_ERR_NOAUTH', 'replica: this node has no cluster secret set');
    }
    return serve(method, body, ctx?.remote ?? 'local');
  };

  async function serve(method: string, body: unknown, remote: string): Promise<unknown> {
    if (method !== METHODS.hello && opts.fence) {
      const f = readRingFence(body);
      // An apply's oldest record version, read only when the fence asks (RingFencing.check).
      const oldest = method === METHODS.apply ? () => oldestWall(body) : undefined;
      const refused = f === undefined ? null : opts.fence(f, oldest);
      if (refused !== null) throw refused;
    }
    switch (method) {
      case METHODS.hello:
        return opts.hello(readHelloRequest(body));
      case METHODS.get: {
        const req = readGetRequest(body);
        checkIncarnation(req.i, req.ir, body);
        checkServing(req.o);
        checkDisk();
        if (req.h) return { r: storage.withRaw(req.k, headerOf) } satisfies GetReply;
        const r = storage.getRaw(req.k);
        return { r: r !== undefined && validWall(r) ? r : null } satisfies GetReply;
      }
      case METHODS.getMany: {
        const req = readGetManyRequest(body);
        checkIncarnation(req.i, req.ir, body);
        checkServing(req.o);
        checkDisk();
        const rs: (Buffer | null)[] = [];
        let bytes = 0;
        for (const k of req.ks) {
          let r: Buffer | null;
          if (req.h) r = storage.withRaw(k, headerOf);
          else {
            const raw = storage.getRaw(k);
            r = raw !== undefined && validWall(raw) ? raw : null;
          }
          rs.push(r);
          if (r !== null) bytes += r.length;
          if (bytes >= GET_MANY_REPLY_BYTES) break;
        }
        return { rs } satisfies GetManyReply;
      }
      case METHODS.apply: {
        checkDisk();
        const entries = readApplyRequest(body);
        const deadline = readApplyDeadline(body);
        const late = deadline === undefined ? 0 : Date.now() - deadline - allowance;
        if (late > 0) {
          throw new KvError(
            'KV_ERR_EXPIRED',
            `replica: apply arrived ${late} ms past its deadline`,
          );
        }
        versions.checkAll(
          entries.map((e) => e.record),
          'request',
          remote,
        );
        const placed = readApplyPlacement(body);
        const here = reroute?.rings();
        if (reroute && placed !== undefined && here !== undefined && placed !== here) {
          // Placed under rings this node has moved past (a join the coordinator has not learned
          // of yet), or not reached yet: the key's owners here may differ, and a new owner
          // whose stream from this node already went by would never get the write.
          await reroute.write(entries, deadline);
          return { n: entries.length } satisfies ApplyReply;
        }
        const n = await storage.applyBatch(entries);
        return { n } satisfies ApplyReply;
      }
      case METHODS.synced: {
        await storage.synced();
        const hints = opts.hintsHeld?.();
        return hints === undefined ? { b: processId } : { b: processId, h: hints };
      }
      case METHODS.scan: {
        const req = readScanRequest(body, opts.maxScanEntries);
        checkIncarnation(req.i, req.ir, body);
        checkServing(req.o);
        checkDisk();
        return localScan(storage, req, scanWork, opts.scanReplyMs);
      }
      default: {
        const more =
          opts.methods && Object.hasOwn(opts.methods, method) ? opts.methods[method] : null;
        if (more) return more(body);
        throw new KvError(
          'KV_ERR_UNKNOWN_COMMAND',
          `replica: unknown peer method '${method.slice(0, 64)}'`,
        );
      }
    }
  }
}

/** The wall time of the oldest record version in an `apply` body; undefined when it has none. */
function oldestWall(body: unknown): number | undefined {
  let oldest: number | undefined;
  for (const e of readApplyRequest(body)) {
    const wall = e.record.version.wall;
    if (oldest === undefined || wall < oldest) oldest = wall;
  }
  return oldest;
}
