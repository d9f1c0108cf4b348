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
 */
export class ClockCheck {
  readonly #o: ClockCheckOptions;
  /** The reason writes are refused, or null while the clock agrees with the peers'. */
  #refusal: string | null = null;

  constructor(o: ClockCheckOptions) {
    this.#o = o;
    flagGauge(
      o.registry,
      'kvstore_clock_out_of_sync',
      "1 while this node's clock is more than --max-clock-offset-ms off from most of its peers' and it refuses writes, else 0.",
      () => this.#refusal !== null,
    );
  }

  /** Recomputes from the last probes' offsets; logs when the verdict changes. */
  update(): void {
    const measured = this.#o.offsets();
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
    } else if (this.#refusal !== null) {
      this.#refusal = null;
      this.#o.logger.info(
        { offsets, maxOffsetMs: max },
        'clock in sync with peers again: writes accepted',
      );
    }
  }

  /** Throws KV_ERR_CLOCK_OFFSET while this node's clock is out of sync (see the class). */
  check(): void {
    if (this.#refusal !== null) throw new KvError('KV_ERR_CLOCK_OFFSET', `clock: ${this.#refusal}`);
  }
}
