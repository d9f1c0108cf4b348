// Fences data between members whose settled rings say one of them was taken out while away.

import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import type { RingFence, SettledRing } from '../replica/index.ts';

export interface RingFencingOptions {
  /** This node's name. */
  readonly self: string;
  /** This node's settled ring (Topology.settledRing); undefined before it has one (starting). */
  readonly settled: () => SettledRing | undefined;
  /**
   * Asks the members for their hellos now (Membership.probeNow), so that a newer settled ring one
   * of them holds is adopted (RingKeeper) and this node's records dropped if it left it out.
   */
  readonly learn: () => Promise<unknown>;
  /**
   * How recent a record's version must be (ms before now) for an `apply` of it from a member
   * taken out of the ring to be taken all the same: --tombstone-grace-ms less
   * --max-clock-offset-ms. No tombstone over such a record can have been collected yet (one is
   * collected only once older than the grace, and it is newer than the values it deletes), so
   * it brings no deleted value back, and last-write-wins orders it against a delete as any
   * write; refused, a write the sender acknowledged (--write-quorum 1, or a quorum of members
   * taken out together) was lost when it dropped its records and hints. Absent, or <= 0: none.
   */
  readonly freshWithinMs?: number;
  /**
   * This node's --probe-interval-ms, --probe-failures and --peer-timeout-ms: how long what it
   * last heard from a member tells it that its settled ring is still the cluster's
   * (mayAnswerAlone). Absent: it always may (nothing is checked).
   */
  readonly probes?: {
    readonly intervalMs: number;
    readonly failures: number;
    readonly timeoutMs: number;
  };
  /**
   * Whether `name` finished its decommission, as this node knows: its own status for itself, a
   * hello it saw for a member (Topology.sawDecommissioned). A member that did left the ring by
   * handing its data off, not taken out of it, and the refusal says so. Absent: never known (a
   * refused sender's refusal says it may be either).
   */
  readonly decommissioned?: (name: string) => boolean;
  /** The monotonic clock (ms), for tests; performance.now by default. */
  readonly now?: () => number;
  readonly logger: Logger;
}

/**
 * A member taken out of the ring without a decommission (out of `--peers`, gone from DNS) that
 * runs on, or is cut off, while the others settle a ring without it and collect tombstones, holds
 * values deleted since; until it hears their ring (its next probe) it would write them back: the
 * read repairs of reads it coordinates, its hints, streams and anti-entropy. Every data request
 * carries the sender's fence (RingFence: its settled epoch, its name if that ring lists it, and
 * whether it lists the addressee), and the receiver refuses it (KV_ERR_STALE_RING) when
 * - the sender holds data of an older ring than the receiver's, which does not list it: the
 *   sender was taken out (its old data must not land, and its reads must not count; an apply of
 *   records too recent to be under a collected tombstone lands: freshWithinMs), or it was
 *   decommissioned and sends on as it stops (its copies no longer count either; the refusal
 *   says which when this node saw its hand-off: RingFencingOptions.decommissioned);
 * - the sender's ring is newer, leaves the receiver out, and the receiver's own ring lists it: the
 *   receiver was taken out (what it would answer or take belongs to a ring the others left), or
 *   it finished its own decommission and has not adopted that ring yet.
 * Either way the member that is behind asks the members for their rings at once (a refused
 * sender on the refusal, a refusing receiver as it refuses), adopts the newer one, and drops its
 * records (RingKeeper); its requests then carry that ring's fence and are taken as any joiner's.
 * Rings of one epoch are never fenced (members settle a ring within a probe interval of each
 * other, and a member left out of a ring at its epoch never held its data), nor are members of
 * both rings (a member behind by an epoch that lists it is only slow to adopt), nor a member
 * whose ring is at epoch 0: it founded that ring and holds no data of it (a ring that holds data
 * moves to epoch 1), and it keeps its records when it adopts another, as RingKeeper does.
 *
 * A read the node answers from its own copy alone (read quorum 1) reaches no one to be refused:
 * it answers one only while a member said lately that its ring is current (mayAnswerAlone), and
 * asks the members first when none did (untilHeard).
 */
export class RingFencing {
  readonly #o: RingFencingOptions;
  /** The ring the cache below is of (settled rings are replaced, never changed). */
  #ring: SettledRing | undefined;
  #members = new Set<string>();
  #learning: Promise<void> | null = null;
  /** Senders refused, by name, with the epoch they were refused at (logged once each). */
  readonly #refused = new Map<string, number>();
  /** The newer epoch this node was last refused for, or refused data of (logged once each). */
  #behindAt = -1;
  readonly #now: () => number;
  /**
   * When (#now) a member last told this node that its settled ring is current (mayAnswerAlone);
   * -Infinity: none since the process started. Not the start itself: a member taken out of the
   * ring that restarts cut off from the others has heard nothing since it was taken out (a
   * node's start probes its members before it serves, so one that reaches them has heard).
   */
  #heardAt = Number.NEGATIVE_INFINITY;
  /** The probe interval of the last member that did so by probing this node (its hello request). */
  #callerProbeMs = Number.POSITIVE_INFINITY;
  /** The newest epoch a member's probe carried that asked this node to learn (once each). */
  #askedAt = -1;
  /** Said that reads alone wait for the members (once until it hears from one again). */
  #unheardSaid = false;
  /** When (#now) the last round untilHeard waited for ended (-Infinity: none yet). */
  #askedEnd = Number.NEGATIVE_INFINITY;

  constructor(o: RingFencingOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
  }

  /**
   * A member answered this node's probe sent at `sentAt` (#now): a newer settled ring in its
   * answer is adopted as the answer is taken (RingKeeper), and this node's records dropped when
   * that ring leaves it out. Either way its ring is the cluster's as of then.
   */
  answered(sentAt: number = this.#now()): void {
    this.#heard(sentAt);
  }

  /**
   * The member `from` probed this node (a hello request) holding a settled ring of `epoch`,
   * probing every `probeMs`. One of this node's epoch says this node's ring is still current; a
   * newer one makes it ask the members for their rings at once (once per epoch: the ring may list
   * it, or not). This node's own hello tells nothing: it probes the address listed for its name
   * when that is not its listen address (--host 0.0.0.0 and a host name or pod address listed),
   * and would confirm its own ring every probe interval, cut off or not.
   */
  asked(from: string, epoch: number, probeMs: number): void {
    const r = this.#o.settled();
    if (r === undefined || from === this.#o.self) return;
    if (epoch === r.epoch) {
      this.#callerProbeMs = probeMs;
      this.#heard(this.#now());
    } else if (epoch > r.epoch && epoch > this.#askedAt) {
      this.#askedAt = epoch;
      this.#behind(
        epoch,
        r.epoch,
        'a member probing this node holds a newer settled ring: asking the members for their rings',
      );
    }
  }

  /** Ms since a member last said this node's ring is current; null: none since the start. */
  #heardMsAgo(): number | null {
    return this.#heardAt === Number.NEGATIVE_INFINITY
      ? null
      : Math.round(this.#now() - this.#heardAt);
  }

  #heard(at: number): void {
    if (at <= this.#heardAt) return;
    this.#heardAt = at;
    this.#unheardSaid = false;
  }

  /**
   * How long what a member last said keeps this node's settled ring current: as long as the
   * members take to call a member down that stopped answering (--probe-failures probes, at the
   * shorter of this node's interval and its callers', and a peer timeout). Members probe each
   * other more often than that, so a member of a healthy cluster always has heard lately; one
   * the others stopped listing (and stopped probing) has not, whatever its own interval.
   */
  #windowMs(): number {
    const p = this.#o.probes;
    if (p === undefined) return Number.POSITIVE_INFINITY;
    return p.failures * this.#probeMs(p) + p.timeoutMs;
  }

  /** The shorter of this node's probe interval and its callers'. */
  #probeMs(p: NonNullable<RingFencingOptions['probes']>): number {
    return Math.min(p.intervalMs, this.#callerProbeMs);
  }

  /**
   * Whether this node may answer a read from its own copy alone (its read quorum met by itself:
   * --read-quorum 1, or the key's only replica): its settled ring lists no other member, or a
   * member answered its probe or probed it with that ring within #windowMs. Otherwise the others
   * may have settled a ring without it, deleted keys and collected their tombstones, while
   * nothing of this read would reach them to be fenced: untilHeard first.
   */
  mayAnswerAlone(): boolean {
    const r = this.#o.settled();
    if (r === undefined || r.members.length === 0) return true;
    if (r.members.length === 1 && r.members[0] === this.#o.self) return true;
    return this.#now() - this.#heardAt <= this.#windowMs();
  }

  /**
   * Asks the members for their hellos now (one round shared by every caller), and resolves once
   * one answered (this node has adopted a newer ring if one did, and is dropping its records if
   * that ring leaves it out); rejects with KV_ERR_UNAVAILABLE when none did.
   */
  untilHeard(): Promise<void> {
    const r = this.#o.settled();
    if (!this.#unheardSaid) {
      this.#unheardSaid = true;
      this.#o.logger.warn(
        { epoch: r?.epoch, heardMsAgo: this.#heardMsAgo() },
        "no member said lately that this node's settled ring is current: asking them before answering reads alone",
      );
    }
    const unheard = () => {
      const ago = this.#heardMsAgo();
      const since = ago === null ? 'since it started' : `for ${ago} ms`;
      return new KvError(
        'KV_ERR_UNAVAILABLE',
        `replication: no member of this node's settled ring (epoch ${r?.epoch ?? 0}) has answered or probed it ${since}: it answers no read from its own copy alone (the others may have settled a ring without it)`,
      );
    };
    // A round that ended within a probe interval found none: the next reads are refused at once
    // (cut off, every one waited for a round of its own).
    const p = this.#o.probes;
    if (
      this.#learning === null &&
      p !== undefined &&
      this.#now() - this.#askedEnd < this.#probeMs(p)
    )
      return Promise.reject(unheard());
    return this.#learn().then(() => {
      this.#askedEnd = this.#now();
      if (!this.mayAnswerAlone()) throw unheard();
    });
  }

  /** Whether `name` is a member of `ring` (a set per ring, made once). */
  #lists(ring: SettledRing, name: string): boolean {
    if (ring !== this.#ring) {
      this.#ring = ring;
      this.#members = new Set(ring.members);
    }
    return this.#members.has(name);
  }

  /** The fence of a request to `to` now; undefined before this node has a settled ring. */
  fence(to: string): RingFence | undefined {
    const r = this.#o.settled();
    if (r === undefined) return undefined;
    return [r.epoch, this.#lists(r, this.#o.self) ? this.#o.self : '', this.#lists(r, to) ? 1 : 0];
  }

  /** `body` with the fence of a request to `to` (a copy; a body that is not a map as it is). */
  stamp(to: string, body: unknown): unknown {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
    if (body instanceof Uint8Array) return body;
    const f = this.fence(to);
    return f === undefined ? body : { ...body, f };
  }

  /**
   * The refusal of a request carrying `f` (KV_ERR_STALE_RING), or null to serve it. `oldest`
   * gives the wall time of the oldest record version an `apply` carries (undefined for other
   * requests): one whose records are all within freshWithinMs is served from a member taken out
   * of the ring (see RingFencingOptions.freshWithinMs).
   */
  check(f: RingFence, oldest?: () => number | undefined): KvError | null {
    const r = this.#o.settled();
    if (r === undefined) return null;
    const [epoch, sender, addressee] = f;
    if (epoch > 0 && epoch < r.epoch && sender !== '' && !this.#lists(r, sender)) {
      if (this.#fresh(oldest)) return null;
      // Said as this node knows it: a member it saw hand its data off, or one that left somehow.
      const handedOff = this.#o.decommissioned?.(sender) === true;
      if (this.#refused.get(sender) !== r.epoch) {
        this.#refused.set(sender, r.epoch);
        this.#o.logger.warn(
          { member: sender, epoch, settled: r.epoch },
          handedOff
            ? 'refusing data from a decommissioned member (it holds data of the ring it handed off): it learns the ring from the refusal'
            : "refusing data from a member this node's settled ring leaves out (it holds data of an older ring: taken out of the ring, or decommissioned unseen by this node): it learns the ring from the refusal",
        );
      }
      const left = handedOff
        ? 'it was decommissioned (its hand-off finished), and its copies no longer count'
        : 'it left the ring (taken out without a decommission, or decommissioned unseen by this node) and may hold values deleted since';
      return new KvError(
        'KV_ERR_STALE_RING',
        `replica: ${sender} sent data as a holder of settled ring epoch ${epoch}; this node's (epoch ${r.epoch}) leaves it out: ${left}`,
      );
    }
    if (r.epoch > 0 && epoch > r.epoch && addressee === 0 && this.#lists(r, this.#o.self)) {
      this.#behind(
        epoch,
        r.epoch,
        'refusing data for a newer settled ring that leaves this node out: asking the members for their rings',
      );
      const left =
        this.#o.decommissioned?.(this.#o.self) === true
          ? 'was decommissioned (its hand-off finished) and learns the newer ring now'
          : 'was taken out of the ring and learns it now';
      return new KvError(
        'KV_ERR_STALE_RING',
        `replica: the sender's settled ring (epoch ${epoch}) leaves this node out, and this node's (epoch ${r.epoch}) lists it: this node ${left}`,
      );
    }
    return null;
  }

  /** Whether the records of an `apply` are all recent enough to be taken (freshWithinMs). */
  #fresh(oldest: (() => number | undefined) | undefined): boolean {
    const within = this.#o.freshWithinMs ?? 0;
    if (within <= 0 || oldest === undefined) return false;
    const wall = oldest();
    return wall !== undefined && wall >= Date.now() - within;
  }

  /** A request this node sent failed with `err`: a KV_ERR_STALE_RING makes it ask for the rings. */
  failed(err: unknown): void {
    if (!(err instanceof KvError) || err.code !== 'KV_ERR_STALE_RING') return;
    const r = this.#o.settled();
    this.#behind(
      r === undefined ? 0 : r.epoch + 1,
      r?.epoch ?? 0,
      'a member refused data for another settled ring: asking the members for their rings',
    );
  }

  /** Logs (once per epoch) and asks the members for their rings, once at a time. */
  #behind(newer: number, epoch: number, msg: string): void {
    if (newer > this.#behindAt) {
      this.#behindAt = newer;
      this.#o.logger.warn({ epoch, newer }, msg);
    }
    void this.#learn();
  }

  /** Asks the members for their rings, once at a time: the round under way, or a new one. */
  #learn(): Promise<void> {
    this.#learning ??= this.#o
      .learn()
      .then(
        () => undefined,
        (err: unknown) => this.#o.logger.warn({ err }, 'members not asked for their rings'),
      )
      .finally(() => {
        this.#learning = null;
      });
    return this.#learning;
  }
}
