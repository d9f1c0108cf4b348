// The clock's border check: versions from peers further ahead than --max-clock-offset-ms are refused.

import { Counter, Registry } from 'prom-client';
import { KvError } from '../errors/index.ts';
import { type Logger, LogThrottle } from '../observability/index.ts';
import { type HybridClock, isValidVersion, type Version } from '../storage/index.ts';

/** Where a remote version came from: a peer's request (apply) or its reply (get, scan). */
export type VersionSource = 'request' | 'reply';

/**
 * Checks every version a peer sends before anything observes or stores it, the way CockroachDB
 * refuses timestamps beyond its maximum clock offset: a version more than `clock.maxOffsetMs`
 * ahead of this node's physical clock, or out of the valid range, throws KV_ERR_CLOCK_OFFSET.
 * Each refusal counts in `kvstore_clock_offset_rejections_total{source}` and is logged (warn,
 * `peer version beyond the max clock offset`, at most once a second with the count since).
 */
export class RemoteVersions {
  readonly clock: HybridClock;
  readonly #rejected: Counter<'source'>;
  readonly #logger: Logger | null;
  /** At most one warning a second; the rest are counted in the next one. */
  readonly #throttle = new LogThrottle();

  constructor(opts: { clock: HybridClock; registry?: Registry; logger?: Logger }) {
    this.clock = opts.clock;
    this.#logger = opts.logger ?? null;
    const registry = opts.registry ?? new Registry();
    const name = 'kvstore_clock_offset_rejections_total';
    const existing = registry.getSingleMetric(name) as Counter<'source'> | undefined;
    this.#rejected =
      existing ??
      new Counter({
        name,
        help: 'Versions from peers refused for being more than --max-clock-offset-ms ahead (or out of range), by source: request (apply) or reply (get, scan).',
        labelNames: ['source'],
        registers: [registry],
      });
    this.#rejected.labels('request').inc(0);
    this.#rejected.labels('reply').inc(0);
  }

  /** Throws KV_ERR_CLOCK_OFFSET unless `v` is valid and within the offset. `peer`: for the log. */
  check(v: Version, source: VersionSource, peer: string): void {
    const ahead = this.clock.aheadMs(v);
    if (ahead <= this.clock.maxOffsetMs && isValidVersion(v)) return;
    this.#rejected.labels(source).inc();
    this.#log(peer, source, ahead);
    throw new KvError(
      'KV_ERR_CLOCK_OFFSET',
      `replica: version ${ahead} ms ahead of this node's clock (max ${this.clock.maxOffsetMs})`,
    );
  }

  /** check() for every record; nothing is accepted if one fails. */
  checkAll(records: readonly { version: Version }[], source: VersionSource, peer: string): void {
    for (const r of records) this.check(r.version, source, peer);
  }

  #log(peer: string, source: VersionSource, aheadMs: number): void {
    if (this.#logger === null) return;
    const since = this.#throttle.take();
    if (since < 0) return;
    this.#logger.warn(
      { peer, source, aheadMs, maxOffsetMs: this.clock.maxOffsetMs, since },
      'peer version beyond the max clock offset',
    );
  }
}
