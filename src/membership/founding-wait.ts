// The wait of a node with no saved ring before it makes its rings: while it cannot tell whether peers hold data.

import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/index.ts';
import { inRing, type MemberView } from './manager.ts';
import { newestReported } from './settled.ts';

/** How often the wait says again, in the log, what it waits for. */
export const FOUNDING_LOG_EVERY_MS = 30_000;

/** What untilFoundable reads: the node's Membership (resolving and probing on its timers). */
export interface FoundingWait {
  readonly members: () => readonly MemberView[];
  /** Addresses the member source listed and could not name (Membership.unnamed). */
  readonly unnamed: () => number;
  /** Whether the member source ever listed a member (Membership.sourceListed). */
  readonly sourceListed: () => boolean;
  /** How often to look again (the node: the shorter of the resolve and probe intervals). */
  readonly intervalMs: number;
  /** How often to log again while waiting (default FOUNDING_LOG_EVERY_MS). */
  readonly logEveryMs?: number;
  readonly logger: Logger;
  /** A stop: the wait ends at once, rejecting with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Told what the node waits for when it starts waiting and at each look; null when it goes on. */
  readonly onWaiting?: (waiting: FoundingBlock | null) => void;
}

/** Why a node with no saved ring does not make its rings yet. */
export interface FoundingBlock {
  /** When the wait began (ms since the epoch). */
  readonly since: number;
  /** Listed addresses not named yet. */
  readonly unnamed: number;
  /** Whether the member source ever listed a member. */
  readonly sourceListed: boolean;
  /** One sentence for logs, /readyz and kvctl status. */
  readonly reason: string;
}

/**
 * For a node with no saved ring (new, or back on an empty data directory), before
 * startingTopology: while no member reports a settled ring, no other member answered (the ring
 * it would found is itself alone), and either the member source has never listed a member (its
 * DNS failed or answered nothing: the node knows nothing of the cluster it is configured into)
 * or the source lists addresses this node could not name, it waits, looking again every
 * `intervalMs` (Membership resolves and probes on its own timers meanwhile). It says what it
 * waits for at once, every `logEveryMs`, and as soon as that changes to what it did not say in
 * that period (a first DNS answer that came late: the line that said the source listed nothing
 * stayed the only one for 30 s), and to `onWaiting`. There is no bound: founding
 * then left out peers that may hold data: the node routed by a ring of itself, R and W clamped
 * to 1, answering NOT_FOUND and scans without the keys it never held, and acknowledging writes
 * with its one copy, until it heard of them (chaos seed 24002, session 24: a member back on an
 * empty data directory, which has no names saved for its peers' addresses, while they were too
 * loaded to say who they are within the peer timeout; or its DNS server failing as it started).
 * A new cluster's members name each other as they start; one that finds another member new (no
 * ring) founds with it as before, the unnamed joining later. Rejects with `signal.reason` once
 * `signal` aborts.
 */
export async function untilFoundable(w: FoundingWait): Promise<void> {
  const alone = () =>
    !w.members().some((m) => !m.self && inRing(m) && m.hello !== null && m.state !== 'down');
  const since = Date.now();
  const blocked = (): FoundingBlock | null => {
    if (newestReported(w.members()) !== null || !alone()) return null;
    const unnamed = w.unnamed();
    const sourceListed = w.sourceListed();
    if (unnamed === 0 && sourceListed) return null;
    return { since, unnamed, sourceListed, reason: reasonOf(unnamed) };
  };
  const every = w.logEveryMs ?? FOUNDING_LOG_EVERY_MS;
  let block = blocked();
  let saidAt: number | null = null;
  /** Reasons said since saidAt: a wait that goes back and forth says each once a period. */
  let said = new Set<string>();
  while (block !== null) {
    w.signal?.throwIfAborted();
    w.onWaiting?.(block);
    const now = Date.now();
    const period = saidAt === null || now - saidAt >= every;
    if (period || !said.has(block.reason)) {
      const { unnamed, sourceListed, reason } = block;
      const members = w.members().map((m) => m.name);
      w.logger.warn(
        { waitedMs: now - since, unnamed, sourceListed, members, reason },
        'no saved ring: not founding a ring without the listed members, waiting for them',
      );
      if (period) {
        saidAt = now;
        said = new Set();
      }
      said.add(block.reason);
    }
    await sleep(w.intervalMs, w.signal);
    block = blocked();
  }
  if (saidAt !== null) {
    w.logger.info({ waitedMs: Date.now() - since }, 'listed members answered: making the rings');
  }
  w.onWaiting?.(null);
}

/** Resolves after `ms`, or rejects with `signal`'s reason as soon as it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Why it waits (called only while it does: unnamed addresses, or a source that listed none). */
function reasonOf(unnamed: number): string {
  return unnamed > 0
    ? `${unnamed} address(es) the member source lists have not said who they are (no PTR name, no answer on the peer port)`
    : 'the member source has listed no member yet (its DNS query failed or answered no record): this node cannot tell which cluster it belongs to';
}

/**
 * `kvstore_founding_wait_seconds`: how long this node has been waiting to make its rings
 * (untilFoundable), 0 when it is not waiting. `waiting` is read at each scrape.
 */
export function registerFoundingMetrics(
  registry: Registry,
  waiting: () => FoundingBlock | null,
): void {
  new Gauge({
    name: 'kvstore_founding_wait_seconds',
    help: 'How long this node, started with no saved ring, has waited for the members its source lists before making its rings (0: not waiting). It serves nothing meanwhile: see docs/cluster.md.',
    registers: [registry],
    collect() {
      const w = waiting();
      this.set(w === null ? 0 : (Date.now() - w.since) / 1000);
    },
  });
}
