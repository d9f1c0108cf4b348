// What a node process holds, read from outside: its anonymous RSS, a metric, and a wait for a
// count that stops moving while the memory is sampled.

import { readFileSync } from 'node:fs';
import { forceGc } from '../../bench/memory.ts';
import type { NodeProcess } from './node-process.ts';
import { until } from './write-log.ts';

/**
 * The node's anonymous resident memory in bytes (/proc RssAnon): what it buffers and allocates.
 * File-backed pages of LMDB's memory map are left out: they are the data file itself.
 */
export function rss(node: NodeProcess): number {
  const status = readFileSync(`/proc/${node.child.pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** One series of the node's /metrics (NaN when absent). */
export async function metric(
  node: NodeProcess,
  series: string,
  host = '127.0.0.1',
): Promise<number> {
  const text = await (await fetch(`http://${host}:${node.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1));
}

/**
 * Polls `count` until it has not moved for `stillMs` (at most `ms` in all), sampling the node's
 * RSS meanwhile; resolves with the highest sample, at least `peak`.
 */
export async function untilStill(
  node: NodeProcess,
  count: () => Promise<number>,
  what: string,
  { peak = 0, stillMs = 1000, ms = 30_000 } = {},
): Promise<number> {
  let last = -1;
  let stableSince = Date.now();
  let high = peak;
  await until(
    async () => {
      high = Math.max(high, rss(node));
      const n = await count();
      if (n !== last) [last, stableSince] = [n, Date.now()];
      return Date.now() - stableSince > stillMs;
    },
    ms,
    what,
    50,
  );
  return Math.max(high, rss(node));
}

/** The options that open a node's inspector on a free port (for `heldAfterGc`). */
export const INSPECT_ENV = { NODE_OPTIONS: '--inspect=127.0.0.1:0' };

/**
 * For a node started with INSPECT_ENV: a reading of its heap and ArrayBuffers in use after a
 * full GC, through its inspector (its RSS also counts garbage not collected yet, which says
 * nothing about what it kept).
 */
export async function heldAfterGc(node: NodeProcess): Promise<() => Promise<number>> {
  const address = /ws:\/\/127\.0\.0\.1:(\d+)\//;
  await until(() => address.test(node.stderr()), 10_000, "the node's inspector address");
  const port = Number(address.exec(node.stderr())![1]);
  return async () => {
    const { after } = await forceGc(port);
    return after.heapUsed + after.arrayBuffers;
  };
}
