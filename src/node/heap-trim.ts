// Gives the memory of a write burst back once the node is idle.
//
// Under load V8 grows its heap (young generation up to its maximum, old-space pages) to collect
// less often, and keeps that capacity afterwards: after loading 1M keys a node holds ~170 MiB of
// heap for ~20 MiB of live objects. V8's memory reducer is meant to shrink it, but it judges the
// allocation rate from the last garbage collections, and an idle node makes none, so it keeps
// waiting (`--trace-memory-reducer`: "high alloc" every 8 s). This watches the process's CPU
// time instead: after a whole interval of (near) idleness, if the heap holds much more than its
// live objects, one full collection runs and the freed pages go back to the OS. Idle is also
// an event loop that spent that share of the interval or less in callbacks (its utilization, in
// wall time): a process starved of CPU (a loaded machine, a pod at its CPU limit) uses little CPU
// time while requests wait on it, and a full collection then stalled it further (chaos seed
// 29006, load 26 to 33 on 2 cores: trims of 0.9 s at the median and up to 5 s, one in the middle
// of 100 reads that were answered 3 s after they were sent). The first idle
// interval after start collects whatever the slack: start-up grows the young generation to its
// maximum (16 MiB) while it loads ~450 modules, and leaves their garbage behind. The node asks for
// that collection at start instead (`atStart`; it serves already, `node listening` comes after): waiting for the first idle
// interval (2 s after start or later on a busy machine) left an empty node 8 MiB larger (V8
// heap pages: 72 against 64 MiB) for a time that depended on the machine's load.

import { performance } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import type { Logger } from '../observability/index.ts';

export interface HeapTrimOptions {
  /** How often idleness is checked; a trim needs one whole interval of it. */
  readonly intervalMs: number;
  /**
   * CPU time (user + system) below this share of the interval counts as idle, when the event
   * loop also spent no more than this share of it in callbacks (its utilization).
   */
  readonly idleCpuShare: number;
  /** Trim only when the heap holds this many bytes more than its live objects (plus Buffers). */
  readonly minSlackBytes: number;
  /**
   * Called once at the start of each idle period, before a collection is decided: lets go of what
   * only helps a busy process (the storage's recent kinds, Storage.idle) and returns the bytes it
   * let go, which count as slack (garbage the collection frees).
   */
  readonly onIdle?: () => number;
  /**
   * Runs the first collection (whatever the slack) now, synchronously, instead of at the first
   * idle interval: for a process at the end of its start-up.
   */
  readonly atStart?: boolean;
  readonly logger: Logger;
  readonly registry: Registry;
}

export const HEAP_TRIM_DEFAULTS = { intervalMs: 2000, idleCpuShare: 0.03, minSlackBytes: 32 << 20 };

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** V8's gc(), without exposing it on this context's globalThis. */
function gcFunction(): GcFunction {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as GcFunction;
}

/**
 * A full garbage collection, now: what the client port calls after it closed connections holding
 * many replies (server/client-output.ts), so that their memory goes back at once.
 */
export function collectGarbage(): void {
  gcOnce()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

let collector: GcFunction | undefined;

/** gcFunction(), made once. */
function gcOnce(): GcFunction {
  collector ??= gcFunction();
  return collector;
}

/** Starts the watcher; stop() ends it. Runs at most one collection per idle period. */
export function startHeapTrimmer(o: HeapTrimOptions): { stop(): void } {
  const trims = new Counter({
    name: 'kvstore_heap_trims_total',
    help: 'Full garbage collections run at start and after a burst, once idle, to return unused heap to the OS.',
    registers: [o.registry],
  });
  const gc = gcOnce();
  let last = process.cpuUsage();
  let lastLoop = performance.eventLoopUtilization();
  let trimmedThisIdle = false;
  let trimmedOnce = false;
  /** Bytes onIdle let go in this idle period; null until it was called in it. */
  let released: number | null = null;
  /** One full collection, counted and logged; the process's activity counted from its end. */
  const collect = (letGo: number, msg: string): void => {
    const before = getHeapStatistics();
    const started = performance.now();
    // 'last-resort': V8's CollectAllAvailableGarbage, which also shrinks the young generation.
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const after = getHeapStatistics();
    trimmedOnce = true;
    trims.inc();
    // The collection's own CPU and loop time are not activity.
    last = process.cpuUsage();
    lastLoop = performance.eventLoopUtilization();
    const mib = (n: number) => Math.round(n / 1048576);
    o.logger.info(
      {
        heapTotalMiB: [mib(before.total_heap_size), mib(after.total_heap_size)],
        heapUsedMiB: [mib(before.used_heap_size), mib(after.used_heap_size)],
        externalMiB: [mib(before.external_memory), mib(after.external_memory)],
        ...(letGo > 0 ? { releasedMiB: mib(letGo) } : {}),
        ms: Math.round(performance.now() - started),
      },
      msg,
    );
  };
  if (o.atStart) collect(0, 'start: heap collected');
  const timer = setInterval(() => {
    const now = process.cpuUsage();
    const usedMs = (now.user - last.user + now.system - last.system) / 1000;
    last = now;
    const loop = performance.eventLoopUtilization(lastLoop);
    lastLoop = performance.eventLoopUtilization();
    const idle = usedMs < o.intervalMs * o.idleCpuShare && loop.utilization <= o.idleCpuShare;
    if (!idle) {
      trimmedThisIdle = false;
      released = null;
      return;
    }
    released ??= o.onIdle?.() ?? 0;
    if (trimmedThisIdle) return;
    const before = getHeapStatistics();
    // External memory (Buffers) counts too: after a burst of large values it is mostly garbage
    // that only a collection frees, and V8 starts one only when more is allocated.
    const slack =
      before.total_heap_size - before.used_heap_size + before.external_memory + released;
    if (trimmedOnce && slack < o.minSlackBytes) return;
    collect(released, 'idle: heap trimmed');
    trimmedThisIdle = true;
  }, o.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
