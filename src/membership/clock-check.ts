// Whether this node's clock agrees with its peers': a node whose clock is off from most of them refuses writes.

import type { Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import { flagGauge, type Logger } from '../observability/index.ts';
import type { ClockOffset } from './manager.ts';

export interface ClockCheckOptions {
  /** The offsets the last probes measured (Membership.clockOffsets). */
  readonly offsets: () => ClockOffset[];
  /** --max-clock-offset-ms. */
  readonly maxOffsetMs: number;
  /** How many other members this node knows: one with none never refuses. */
  readonly peers?: () => number;
  readonly logger: Logger;
  readonly registry: Registry;
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
 * Probes come a probe interval apart, and a wall clock can be stepped between two of them (NTP
 * stepping it, a VM resumed with a stale clock, someone running `date -s`). A step is seen at
 * once, on every write, as a change of the wall clock against the monotonic clock (which steps
 * never move) by more than half the bound: from then on the node refuses writes until probes
 * sent after the step find it in agreement with its peers (or it has no peer). Without it, a
 * node wrote under a stepped clock until the next probes: stepped ahead, its peers refused its
 * versions, it answered `ERR UNAVAILABLE`, and those writes, kept on itself and in hints, won
 * over the writes acknowledged after them once they spread (chaos `--clock-jumps`); stepped back,
 * it acknowledged writes versioned below what other nodes had written before them.
 */
export class ClockCheck {
  readonly #o: ClockCheckOptions;
  /** The reason writes are refused, or null while the clock agrees with the peers'. */
  #refusal: string | null = null;
  /**
   * Wall clock minus monotonic clock (ms) when last looked at: a step moves it at once; a wall
   * clock that NTP slews moves it slowly where the monotonic clock is not slewed with it (macOS),
   * which each look follows, so that only a jump between two looks counts as a step.
   */
  #base = Date.now() - performance.now();
  /** When the last step was seen (monotonic ms), until probes sent after it agree; else null. */
  #stepped: { readonly at: number; readonly ms: number } | null = null;

  constructor(o: ClockCheckOptions) {
    this.#o = o;
    flagGauge(
      o.registry,
      'kvstore_clock_out_of_sync',
      "1 while this node's clock is more than --max-clock-offset-ms off from most of its peers', or was stepped since its peers last agreed with it, and it refuses writes, else 0.",
      () => this.#reason() !== null,
    );
  }

  /** Recomputes from the last probes' offsets; logs when the verdict changes. */
  update(): void {
    this.#noticeStep();
    const stepped = this.#stepped;
    // After a step, only offsets measured by probes sent after it tell how the clock is now.
    const measured = this.#o.offsets().filter((m) => stepped === null || m.sentMono >= stepped.at);
    const max = this.#o.maxOffsetMs;
    const off = measured.filter((m) => Math.abs(m.offsetMs) - m.errorMs > max);
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
    } else if (stepped !== null && measured.length === 0 && (this.#o.peers?.() ?? 0) > 0) {
      // No probe sent since the step has answered yet: still refusing.
    } else if (this.#refusal !== null || stepped !== null) {
      this.#refusal = null;
      this.#stepped = null;
      this.#o.logger.info(
        { offsets, maxOffsetMs: max },
        'clock in sync with peers again: writes accepted',
      );
    }
  }

  /** Throws KV_ERR_CLOCK_OFFSET while this node's clock is out of sync (see the class). */
  check(): void {
    const reason = this.#reason();
    if (reason !== null) throw new KvError('KV_ERR_CLOCK_OFFSET', `clock: ${reason}`);
  }

  /** Why writes are refused now, or null. */
  #reason(): string | null {
    if (this.#refusal !== null) return this.#refusal;
    const max = this.#o.maxOffsetMs;
    this.#noticeStep();
    if (this.#stepped !== null) {
      const ms = Math.round(this.#stepped.ms);
      return `this node's wall clock was stepped ${ms > 0 ? 'ahead' : 'back'} by ${Math.abs(ms)} ms; writes are refused until probes find it within ${max} ms (--max-clock-offset-ms) of its peers' clocks (check NTP)`;
    }
    return null;
  }

  /** Records a step of the wall clock against the monotonic clock by more than half the bound. */
  #noticeStep(): void {
    const now = performance.now();
    const ms = Date.now() - now - this.#base;
    this.#base += ms;
    if (Math.abs(ms) <= this.#o.maxOffsetMs / 2) return;
    this.#stepped = { at: now, ms };
    this.#o.logger.error(
      { stepMs: Math.round(ms), maxOffsetMs: this.#o.maxOffsetMs },
      'wall clock stepped: refusing writes until peers agree with it',
    );
  }
}
