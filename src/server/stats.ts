// Node-wide request counts and rates for INFO: total commands, instantaneous ops/s, memory peak.

/** How often the request count is sampled, and how many samples the rate spans (Redis's 100 ms x 16). */
const SAMPLE_MS = 100;
const SAMPLES = 16;

/**
 * Counts requests answered on every connection and samples the count every 100 ms, so
 * `opsPerSec` is the rate over the last ~1.6 s, as Redis's `instantaneous_ops_per_sec`. The
 * sampling timer does not keep the process alive; stop() ends it.
 */
export class ServerStats {
  commands = 0;
  #samples: { at: number; commands: number }[] = [];
  #peakRss = 0;
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS);
    this.#timer.unref();
    this.#sample();
  }

  #sample(): void {
    this.#samples.push({ at: performance.now(), commands: this.commands });
    if (this.#samples.length > SAMPLES) this.#samples.shift();
  }

  /** Requests per second over the sampled window (0 before two samples). */
  get opsPerSec(): number {
    const first = this.#samples[0]!;
    const last = { at: performance.now(), commands: this.commands };
    const seconds = (last.at - first.at) / 1000;
    return seconds <= 0 ? 0 : Math.round((last.commands - first.commands) / seconds);
  }

  /** Process memory: V8 heap plus buffers as `used`, the resident set, and the highest one seen. */
  memory(): { used: number; rss: number; peak: number } {
    const m = process.memoryUsage();
    this.#peakRss = Math.max(this.#peakRss, m.rss);
    return { used: m.heapUsed + m.external, rss: m.rss, peak: this.#peakRss };
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
