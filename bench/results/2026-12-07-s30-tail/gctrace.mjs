// Preload: records every GC (monotonic ns start, duration ns, kind) and the main thread's tid,
// written to $GCTRACE_OUT at exit.
import { writeFileSync, readFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const out = process.env.GCTRACE_OUT;
const base = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));
const rows = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    rows.push(`${base + BigInt(Math.round(e.startTime * 1e6))} ${Math.round(e.duration * 1e6)} ${e.detail?.kind ?? e.kind}`);
  }
}).observe({ entryTypes: ['gc'] });
const tid = readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0];
process.on('exit', () => {
  if (out) writeFileSync(out, `tid ${tid}\n${rows.join('\n')}\n`);
});
