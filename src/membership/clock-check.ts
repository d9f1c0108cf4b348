// Whether this node's clock agrees with its peers': a node whose clock is off from most of them refuses writes.

import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import { currentJob } from '../net/index.ts';
import { flagGauge, type Logger } from '../observability/index.ts';
import { readingAt } from '../storage/index.ts';
import type { ClockOffset } from './manager.ts';

export interface ClockCheckOptions {
  /** The offsets the last probes measured (Membership.clockOffsets). */
  readonly offsets: () => ClockOffset[];
  /** --max-clock-offset-ms. */
  readonly maxOffsetMs: number;
  /**
   * How many other members this node knows: one with none never refuses. Null while it cannot
   * tell (its member source has not answered yet): counted as some.
   */
  readonly peers?: () => number | null;
  /**
   * How many other members answer probes now (up). A node whose peers answer without a clock (an
   * older version) has nothing to compare with, and does not wait for a measurement after start.
   */
  readonly answered?: () => number;
  /**
   * How many ms this node's hybrid clock is ahead of its wall clock (HybridClock.leadMs): beyond
   * --max-clock-offset-ms, versions it makes now are ahead of every peer's clock by more than
   * they take. `wallMs`: Date.now() as the check just read it (one read of the wall clock per
   * check).
   */
  readonly leadMs?: (wallMs: number) => number;
  readonly logger: Logger;
  readonly registry: Registry;
}

/** ClockCheck.refusal's answer. */
export interface ClockRefusal {
  readonly reason: string;
  readonly mutual: boolean;
}

/**
 * Versions are hybrid-logical-clock times, and peers refuse a version more than
 * --max-clock-offset-ms ahead of their clock. A node whose clock is further off than that from
 * its peers' would make versions that lose: one behind writes below values the others wrote
 * before it (and refuses their newer versions, so its clock never catches up), one ahead keeps
 * the writes the others refused on itself, with versions that win over everything written in
 * the next seconds once they spread. Either way acknowledged writes would be lost. So, after
 * every round of probes, the node counts the members that answered whose clock is beyond the
 * bound (by more than half the probe's round trip); when that is more than half of them, its own
 * clock is the odd one out and it refuses writes (`ERR CLOCK_OFFSET`) until it agrees again.
 * With two members, each is the other's only witness: both refuse writes while their clocks
 * disagree. A node with no member to compare with (alone, or every peer of an older version)
 * never refuses.
 *
 * The hybrid clock never goes back: versions made while the wall clock was ahead leave it ahead
 * once the wall clock is stepped back in step, and every version it makes is above them. While
 * it leads the wall clock by more than the bound, writes are refused too (peers would refuse
 * those versions, and a write they refuse is still kept here, seconds ahead).
 *
 * A process starts with no measurement: until a probe answered (with a clock to compare, or from
 * a member too old to send one) it refuses writes, unless it knows it has no other member. A
 * node's first probes go out before it listens, so this holds only when no peer answered them:
 * before, a node that came back with its clock seconds ahead while its peers did not answer
 * (paused, loaded, a link down) made versions with it, and a write that failed for want of a
 * quorum was still kept on it and as hints, seconds ahead: once the others' clocks came within
 * the bound of it, it won over writes acknowledged after it, on every node.
 *
 * Probes come a probe interval apart, and a wall clock can be stepped between two of them (NTP
 * stepping it, a VM resumed with a stale clock, someone running `date -s`). A step is seen at
 * once, on every write, as a change of the wall clock against the monotonic clock (which steps
 * never move) by more than half the bound: from then on the node refuses writes until probes
 * sent after the step find it in agreement with its peers (or it has no peer): half the answers
 * put it within the bound at the far end of their round trips, as after a start and once found off
 * (#within; not provably off is not agreement when round trips are long). Without it, a
 * node wrote under a stepped clock until the next probes: stepped ahead, its peers refused its
 * versions, it answered `ERR UNAVAILABLE`, and those writes, kept on itself and in hints, won
 * over the writes acknowledged after them once they spread (chaos `--clock-jumps`); stepped back,
 * it acknowledged writes versioned below what other nodes had written before them.
 */
/**
 * Reads of the monotonic clock around a read of the wall clock further apart than this (ms) make
 * no look: a thread switched out between them (a loaded machine: 300 ms at load 50) would take
 * the time it was out for a step of the wall clock.
 */
const LOOK_SLACK_MS = 20;
/**
 * Looks a check takes at most when a thread switch spoils them (LOOK_SLACK_MS): its reading of
 * the wall clock is a version's, so one that no look checked would go into versions unseen.
 */
const LOOKS = 3;

/**
 * The wall clock minus the monotonic clock now (ms), read between two reads of the monotonic
 * clock (`before`, when the caller read it already); null when those are more than
 * LOOK_SLACK_MS apart. Before (2026-12-07), one pair of reads: a single node with no peers
 * refused writes `stepped back by 303 ms` at load 50 (the look before took the switch for a step
 * ahead, the next for one back).
 */
function baseNow(before = performance.now()): number | null {
  const wall = Date.now();
  lastWall = wall;
  const after = performance.now();
  lastAfter = after;
  if (after - before > LOOK_SLACK_MS) return null;
  return wall - (before + after) / 2;
}

/** Date.now() as baseNow last read it: what a check's other steps take instead of reading again. */
let lastWall = 0;
/** performance.now() as baseNow last read it, right after lastWall. */
let lastAfter = 0;

export class ClockCheck {
  readonly #o: ClockCheckOptions;
  /** The reason writes are refused, or null while the clock agrees with the peers'. */
  #refusal: string | null = null;
  /** How many members measured this clock off when #refusal was set. */
  #witnesses = 0;
  /**
   * Wall clock minus monotonic clock (ms) when last looked at: a step moves it at once; a wall
   * clock that NTP slews moves it slowly where the monotonic clock is not slewed with it (macOS),
   * which each look follows, so that only a jump between two looks counts as a step.
   */
  #base = baseNow() ?? Date.now() - performance.now();
  /** When the last step was seen (monotonic ms), until probes sent after it agree; else null. */
  #stepped: { readonly at: number; readonly ms: number } | null = null;
  /** True until a probe of this process answered (or there is no member to ask). */
  #unchecked = true;
  /** Whether probes went unanswered while #unchecked (logged, and so is the end of it). */
  #uncheckedSeen = false;
  /**
   * The last probes answered, but their round trips were too long to show this clock within the
   * bound of most peers', while that takes proof (after a step, since the start, once found off).
   */
  #unsure = false;

  constructor(o: ClockCheckOptions) {
    this.#o = o;
    flagGauge(
      o.registry,
      'kvstore_clock_out_of_sync',
      "1 while this node refuses writes for its clock: more than --max-clock-offset-ms off from most of its peers', stepped since its peers last agreed with it, its versions ahead of its wall clock by more than that, or not compared with a peer's since it started; else 0.",
      () => this.#reason() !== null,
    );
  }

  /** Recomputes from the last probes' offsets; logs when the verdict changes. */
  update(): void {
    this.#readingJob = 0; // the next write checks again
    this.#noticeStep();
    const stepped = this.#stepped;
    // After a step, only offsets measured by probes sent after it tell how the clock is now.
    const measured = this.#o.offsets().filter((m) => stepped === null || m.sentMono >= stepped.at);
    const max = this.#o.maxOffsetMs;
    // A member that refuses writes for a doubt about its own clock (ClockOffset.suspect) is no
    // witness against this one: its clock is the one in question. It still counts among those
    // measured, and its answer may still be the proof of agreement a step or a start waits for
    // (else members each in doubt, say three stepped apart, would wait for each other for ever).
    const off = measured.filter(
      (m) => m.suspect !== true && Math.abs(m.offsetMs) - m.errorMs > max,
    );
    const offsets = Object.fromEntries(measured.map((m) => [m.member, Math.round(m.offsetMs)]));
    if (off.length * 2 > measured.length) {
      const behind = off.filter((m) => m.offsetMs > 0).length;
      const how = behind * 2 > off.length ? 'behind' : 'ahead of';
      const refusal = `this node's clock is more than ${max} ms (--max-clock-offset-ms) ${how} ${off.length} of its ${measured.length} peers' clocks; writes are refused until it agrees with them (check NTP)`;
      if (this.#refusal === null) {
        this.#o.logger.error(
          { offsets, maxOffsetMs: max },
          'clock out of sync with peers: refusing writes',
        );
      }
      this.#refusal = refusal;
      this.#witnesses = off.length;
    } else if (
      (stepped !== null || this.#unchecked || this.#refusal !== null) &&
      measured.length > 0 &&
      !this.#within(measured) &&
      this.#hasPeers()
    ) {
      // After a step, since the start, or once found off, agreement takes proof: half the answers
      // must put this clock within the bound even at the far end of their round trips. Not
      // provably beyond it is not enough when the round trips are long (a loaded node or
      // network): chaos seed 32013 took a write 1 s ahead on offsets of -985 and -863 ms over
      // round trips of 2 s, and the copy it kept won over a write acknowledged after it.
      this.#unsure = true;
      if (stepped !== null) this.#refusal = null; // the step since is the news: its reason says it
    } else if (stepped !== null && measured.length === 0 && this.#hasPeers()) {
      // No probe sent since the step has answered yet: still refusing.
    } else if (
      this.#unchecked &&
      measured.length === 0 &&
      this.#hasPeers() &&
      (this.#o.answered?.() ?? 0) === 0
    ) {
      // No probe of this process has answered yet: still refusing.
      if (!this.#uncheckedSeen) {
        this.#uncheckedSeen = true;
        this.#o.logger.warn(
          { maxOffsetMs: max },
          'no peer answered a probe since the start: refusing writes until one compares clocks',
        );
      }
    } else if (this.#refusal !== null || stepped !== null || this.#uncheckedSeen || this.#unsure) {
      this.#refusal = null;
      this.#stepped = null;
      this.#unchecked = false;
      this.#uncheckedSeen = false;
      this.#unsure = false;
      this.#o.logger.info(
        { offsets, maxOffsetMs: max },
        'clock in sync with peers again: writes accepted',
      );
    } else {
      this.#unchecked = false;
    }
  }

  /**
   * Whether at least half of `measured` put this clock within the bound of theirs whatever the
   * true offset within each measurement's error (half its round trip): the mirror of the refusal,
   * which takes more than half provably off (a tie, one peer agreeing and one off, is no proof
   * that this clock is the odd one).
   */
  #within(measured: readonly ClockOffset[]): boolean {
    const max = this.#o.maxOffsetMs;
    const within = measured.filter((m) => Math.abs(m.offsetMs) + m.errorMs <= max);
    return within.length * 2 >= measured.length;
  }

  /** Whether this node has (or may have) another member to compare its clock with. */
  #hasPeers(): boolean {
    const peers = this.#o.peers === undefined ? 0 : this.#o.peers();
    return peers === null || peers > 0;
  }

  /**
   * check() once per job (a callback of the event loop: currentJob), for the versions made in
   * it: the first write of a job checks and reads the clocks, the later ones take the same reading
   * (the version clock counts them up from it). Not weaker than a check per
   * write: a version is made from a reading the check found unstepped, never from a later read of
   * the wall clock (a step within the job goes into no version, and the next job's check sees it;
   * a reading whose looks thread switches all spoiled goes into its own write's version only),
   * and every request a job serves was read from its socket before the job's first check, so
   * the reading is no earlier than its arrival (a write sent after another node answered OK for an
   * older one is still made above it). A write at pipeline 16 read the clocks seven times, three
   * of them here (bench/results/2026-12-07-s36-h1-clock-reads.md).
   */
  checkOncePerJob(): number {
    const job = currentJob();
    if (this.#readingJob === job) return this.#jobReading;
    const at = this.check();
    // A reading no look checked (every one spoiled by thread switches) is not kept for the job:
    // its other writes check again rather than take it unseen.
    if (!this.#looked) return at;
    this.#jobReading = at;
    this.#readingJob = job;
    return at;
  }

  /** The reading checkOncePerJob returned in job #readingJob (currentJob; 0: none). */
  #jobReading = 0;
  #readingJob = 0;
  /** Whether the last look at the clocks (#noticeStep) counted: not spoiled by a thread switch. */
  #looked = true;

  /**
   * Throws KV_ERR_CLOCK_OFFSET while this node's clock is out of sync (see the class). Else
   * returns the reading of the clocks it checked (HybridClock.nowAt's `at`: the wall clock it
   * read for the step check, with the fraction of its millisecond): a version made from it, not
   * from a read of the wall clock after the check, cannot be made under a step the check missed.
   */
  check(): number {
    const r = this.refusal();
    if (r !== null) throw new KvError('KV_ERR_CLOCK_OFFSET', r.reason);
    return readingAt(lastWall, lastAfter);
  }

  /**
   * Why writes are refused now (`clock: ...`, the message of check's error), or null. `mutual`
   * when the verdict came from a single member's measurement: that member measured this clock
   * off by as much and, having no other witness either, refuses writes too, so neither is known
   * to be the odd one (two members; or all but two down). Every other refusal is this node's own:
   * its clock stepped, its versions ahead of it, not compared with a peer's since its start, or
   * off from two or more members.
   */
  refusal(): ClockRefusal | null {
    const reason = this.#reason();
    if (reason === null) return null;
    // #reason answers #refusal whenever it is set: the verdict of the last probes.
    const mutual = this.#refusal !== null && this.#witnesses < 2;
    return { reason: `clock: ${reason}`, mutual };
  }

  /**
   * Whether writes are refused for a doubt about this node's own clock: stepped since its peers
   * last agreed, not shown within the bound since its start, versions ahead of its wall clock, or
   * off from two or more members. Not a refusal on the word of its only witness (mutual), which
   * may be the one that is off. Its hello says so (`clockSuspect`), and its peers then take its
   * measurement for no witness against them (ClockOffset.suspect): a member whose every other peer
   * was down refused writes for 7 s because the one it reached was stepped 1 s ahead (chaos seed
   * 33016; 3,277 of its 61,991 operations were such refusals, 1,993 of 27,609 in 33006).
   */
  ownDoubt(): boolean {
    if (this.#reason() === null) return false;
    return (
      this.#refusal === null || this.#witnesses >= 2 || this.#stepped !== null || this.#unchecked
    );
  }

  /** Why writes are refused now, or null. */
  #reason(): string | null {
    // After a round nobody answered, a member that answered since counts at once (a whole round
    // waits for its slowest probe, up to the peer timeout).
    if (this.#uncheckedSeen && this.#refusal === null) this.update();
    if (this.#refusal !== null) return this.#refusal;
    const max = this.#o.maxOffsetMs;
    this.#noticeStep();
    const wall = lastWall;
    if (this.#stepped !== null) {
      const ms = Math.round(this.#stepped.ms);
      return `this node's wall clock was stepped ${ms > 0 ? 'ahead' : 'back'} by ${Math.abs(ms)} ms; writes are refused until probes find it within ${max} ms (--max-clock-offset-ms) of its peers' clocks (check NTP)`;
    }
    const lead = this.#o.leadMs?.(wall) ?? 0;
    if (lead > max)
      return `this node made versions ${Math.round(lead)} ms ahead of its wall clock (which was ahead then and is back now); writes are refused until the wall clock is within ${max} ms (--max-clock-offset-ms) of them, as its peers would refuse the versions it made before`;
    if (this.#unchecked && this.#unsure)
      return `no probe since this node started has shown its clock within ${max} ms (--max-clock-offset-ms) of its peers' (their round trips were too long to tell); writes are refused until one does`;
    if (this.#unchecked)
      return `no peer has answered this node's probes since it started, so its clock is not known to be within ${max} ms (--max-clock-offset-ms) of theirs; writes are refused until one does`;
    return null;
  }

  /**
   * Records a step of the wall clock against the monotonic clock by more than half the bound.
   * A look between whose reads this thread was switched out tells nothing (see baseNow), and the
   * wall clock it read is what check() returns for versions: it is taken again, up to LOOKS
   * times; #looked says whether one counted.
   */
  #noticeStep(): void {
    let now = performance.now();
    let base = baseNow(now);
    for (let i = 1; base === null && i < LOOKS; i++) {
      now = performance.now();
      base = baseNow(now);
    }
    this.#looked = base !== null;
    if (base === null) return;
    const ms = base - this.#base;
    this.#base = base;
    if (Math.abs(ms) <= this.#o.maxOffsetMs / 2) return;
    this.#stepped = { at: now, ms };
    this.#o.logger.error(
      { stepMs: Math.round(ms), maxOffsetMs: this.#o.maxOffsetMs },
      'wall clock stepped: refusing writes until peers agree with it',
    );
  }
}
