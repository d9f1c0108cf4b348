// A record of every write sent and acknowledged per key, a pipelined write load that fills it,
// and the check that what a node reads back is the last acknowledged operation or a later one.

import type { KvClient } from '../../src/client/index.ts';

/**
 * Every operation sent per key, in send order (null = REMOVE), and the highest index acknowledged.
 * Each key is written over one connection only, so its operations take effect in send order: after
 * a crash the key must hold the result of the last acknowledged operation or of a later one.
 */
export class WriteLog {
  readonly keys = new Map<string, { ops: (string | null)[]; acked: number; outcomes: string[] }>();
  /** Operations sent, acknowledged, and failed; the rest are in flight. */
  sends = 0;
  acks = 0;
  errors = 0;

  /** Writes sent and neither acknowledged nor failed yet. */
  get inFlight(): number {
    return this.sends - this.acks - this.errors;
  }

  sent(key: string, value: string | null): number {
    this.sends++;
    const k = this.keys.get(key) ?? { ops: [], acked: -1, outcomes: [] };
    this.keys.set(key, k);
    k.outcomes.push('in flight');
    return k.ops.push(value) - 1;
  }

  /** `outcome`: how it was acknowledged (`ok`, or `not found` for a REMOVE of nothing live). */
  ack(key: string, index: number, outcome = 'ok'): void {
    const k = this.keys.get(key)!;
    k.acked = Math.max(k.acked, index);
    k.outcomes[index] = outcome;
    this.acks++;
  }

  /** The write failed (an error reply or a lost connection): it may or may not take effect. */
  fail(key: string, index: number, err: unknown): void {
    this.errors++;
    const k = this.keys.get(key);
    if (k) k.outcomes[index] = `failed (${err instanceof Error ? err.message : String(err)})`;
  }

  /** `target` acknowledgements and where the log stands, for a wait's error. */
  awaiting(target: number): string {
    const { acks, errors, inFlight } = this;
    return `${target} acknowledgements (${acks} acknowledged, ${errors} failed, ${inFlight} in flight)`;
  }

  /** The acknowledged index of every key now (for reads made while writes go on). */
  snapshot(): Map<string, number> {
    return new Map([...this.keys].map(([key, k]) => [key, k.acked]));
  }

  /**
   * Keys whose value read is not the last acknowledged one (as of `ackedBefore`, the reads'
   * start, when writes went on during them) or a later one.
   */
  check(read: ReadonlyMap<string, string | null>, ackedBefore?: Map<string, number>): string[] {
    const bad: string[] = [];
    for (const [key, k] of this.keys) {
      const { ops, acked: now } = k;
      const acked = ackedBefore ? (ackedBefore.get(key) ?? -1) : now;
      const got = read.get(key) ?? null;
      const allowed = acked === -1 ? [null, ...ops] : ops.slice(acked);
      if (!allowed.includes(got)) {
        const last = acked === -1 ? 'none' : brief(ops[acked]!);
        // Every write of the key and its outcome: an acknowledged write lost, or a failed one
        // (which may take effect at any time) coming back, read differently.
        const history = ops.map(
          (op, i) => `#${i} ${op === null ? 'REMOVE' : brief(op)}: ${k.outcomes[i]}`,
        );
        bad.push(
          `${key}: read ${brief(got)}, last acknowledged ${last} (#${acked}); ${history.join('; ')}`,
        );
      }
    }
    return bad;
  }
}

/** A value as the reports show it: its `key#seq` part and its length, not its padding. */
function brief(value: string | null): string {
  if (value === null) return 'null';
  const end = value.indexOf(':', value.lastIndexOf('#'));
  return `${JSON.stringify(end === -1 ? value : value.slice(0, end))} (${value.length} bytes)`;
}

/**
 * Keeps `depth` writes in flight on `c` over `keys` (90% PUT of a unique value of padding
 * 100..1100 bytes times `scale`, 10% REMOVE) until `stop()`; errors (the node was killed) are
 * counted, never retried.
 */
export function writeLoad(
  c: KvClient,
  keys: readonly string[],
  log: WriteLog,
  depth: number,
  scale = 1,
) {
  let stopped = false;
  let seq = 0;
  const pad = 'x'.repeat(1100 * scale);
  const lane = async (): Promise<void> => {
    while (!stopped) {
      const key = keys[Math.floor(Math.random() * keys.length)]!;
      const remove = Math.random() < 0.1;
      const value = remove ? null : `${key}#${seq++}:${pad.slice(0, (100 + (seq % 1000)) * scale)}`;
      const index = log.sent(key, value);
      try {
        if (value === null) log.ack(key, index, (await c.remove(key)) ? 'ok' : 'not found');
        else {
          await c.put(key, value);
          log.ack(key, index);
        }
      } catch (err) {
        log.fail(key, index, err);
        await new Promise((r) => setTimeout(r, 20)); // the node is down: do not spin
      }
    }
  };
  const lanes = Array.from({ length: depth }, lane);
  return {
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all(lanes);
    },
  };
}

/** Reads every key of the log through `c`, pipelined. */
export async function readAll(c: KvClient, log: WriteLog): Promise<Map<string, string | null>> {
  const keys = [...log.keys.keys()];
  const values = await Promise.all(keys.map((k) => c.get(k)));
  return new Map(keys.map((k, i) => [k, values[i]!]));
}

/**
 * Polls until `cond` (sync or async) holds, every `everyMs` (at most `ms` in all); `what` names
 * it in the error (read at the timeout).
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string | (() => string),
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
