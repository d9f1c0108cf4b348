// A light, paced RESP GET load (open loop: a fixed rate, latency from each request's scheduled time) that checks every answer.

import { connect, type Socket } from 'node:net';
import { Histogram, type LatencySummary } from './histogram.ts';
import { rbKey } from './respload.ts';

export interface PacedResult {
  readonly latency: LatencySummary;
  /** Requests answered. */
  readonly answered: number;
  /** Answers that were an error, a miss, or not the value loaded (any is a failure). */
  readonly wrong: number;
  readonly firstWrong: string | null;
  readonly seconds: number;
}

export interface PacedSpec {
  readonly host: string;
  readonly port: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly ratePerS: number;
}

/**
 * GETs of random keys rbKey(0..keys-1), each holding `valueBytes` bytes of 'x' (prefillRb's
 * values), at `ratePerS` over one connection, from start() until stop(). Requests go out on
 * schedule whether or not earlier ones were answered (replies come back in order), so a stall
 * shows in the latency of every request scheduled during it.
 */
export class PacedGets {
  readonly #hist = new Histogram();
  readonly #sentAt: number[] = [];
  #socket: Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #buf: Buffer = Buffer.alloc(0);
  #t0 = 0;
  #sent = 0;
  #answered = 0;
  #wrong = 0;
  #firstWrong: string | null = null;
  #closed: Error | null = null;

  readonly #o: PacedSpec;

  constructor(spec: PacedSpec) {
    this.#o = spec;
  }

  async start(): Promise<void> {
    const socket = connect({ host: this.#o.host, port: this.#o.port });
    await new Promise<void>((res, rej) => {
      socket.once('connect', res);
      socket.once('error', rej);
    });
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (err) => {
      this.#closed = err;
    });
    socket.on('close', () => {
      this.#closed ??= new Error('connection closed');
    });
    this.#socket = socket;
    this.#t0 = performance.now();
    this.#timer = setInterval(() => this.#tick(), 2);
  }

  #tick(): void {
    const due = Math.floor(((performance.now() - this.#t0) / 1000) * this.#o.ratePerS);
    const frames: string[] = [];
    for (; this.#sent < due; this.#sent++) {
      // Scheduled time of request #sent: latency counts from it, not from when the timer fired.
      this.#sentAt.push(this.#t0 + (this.#sent * 1000) / this.#o.ratePerS);
      const key = rbKey(Math.floor(Math.random() * this.#o.keys));
      frames.push(`*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`);
    }
    if (frames.length > 0 && this.#closed === null) this.#socket?.write(frames.join(''));
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    for (;;) {
      const nl = this.#buf.indexOf('\r\n');
      if (nl === -1) return;
      let end = nl + 2;
      let bad: string | null = null;
      if (this.#buf[0] === 0x24 /* $ */) {
        const n = Number(this.#buf.toString('latin1', 1, nl));
        if (n >= 0) {
          if (this.#buf.length < nl + 2 + n + 2) return;
          end = nl + 2 + n + 2;
          if (n !== this.#o.valueBytes || this.#buf[nl + 2] !== 0x78 /* x */)
            bad = `value of ${n} B`;
        } else bad = 'miss';
      } else bad = this.#buf.toString('latin1', 0, Math.min(nl, 120));
      this.#buf = this.#buf.subarray(end);
      const at = this.#sentAt.shift()!;
      this.#hist.record((performance.now() - at) * 1e6);
      this.#answered++;
      if (bad !== null) {
        this.#wrong++;
        this.#firstWrong ??= bad;
      }
    }
  }

  /** Stops sending, waits up to `drainMs` for the answers still due, closes. */
  async stop(drainMs = 10_000): Promise<PacedResult> {
    if (this.#timer) clearInterval(this.#timer);
    const seconds = (performance.now() - this.#t0) / 1000;
    const deadline = Date.now() + drainMs;
    while (this.#sentAt.length > 0 && this.#closed === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const unanswered = this.#sentAt.length;
    this.#socket?.destroy();
    if (unanswered > 0) {
      this.#wrong += unanswered;
      this.#firstWrong ??= `${unanswered} unanswered (${this.#closed?.message ?? 'timeout'})`;
    }
    return {
      latency: this.#hist.summary(),
      answered: this.#answered,
      wrong: this.#wrong,
      firstWrong: this.#firstWrong,
      seconds,
    };
  }
}
