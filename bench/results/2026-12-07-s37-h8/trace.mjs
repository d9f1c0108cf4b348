// Preload: per-event trace (1 read fd, 2 write fd, 3 end-of-turn pass count, 4 timer start, 5 timer end,
// 6 gc start/dur), CLOCK_MONOTONIC ns via performance.now() + base. Written to $KVTRACE_OUT at exit.
import { writeFileSync, readFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { createRequire, syncBuiltinESMExports } from 'node:module';
const require = createRequire(import.meta.url);
const out = process.env.KVTRACE_OUT;
const base = Number(process.hrtime.bigint()) / 1e6 - performance.now(); // ms
const CAP = 8_000_000;
const kind = new Uint8Array(CAP), t = new Float64Array(CAP), arg = new Int32Array(CAP);
let n = 0;
const names = [];
const nameIdx = new Map();
function nameOf(fn) {
  const k = (fn.name || '?') + '@' + String(fn).slice(0, 60).replace(/\s+/g, ' ');
  let i = nameIdx.get(k);
  if (i === undefined) { i = names.length; names.push(k); nameIdx.set(k, i); }
  return i;
}
globalThis.__kvTrace = {
  ev(k, a) { if (n < CAP) { kind[n] = k; t[n] = performance.now(); arg[n++] = a; } },
};
const tr = globalThis.__kvTrace;
const gcs = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([e.startTime, e.duration, e.detail?.kind ?? e.kind]);
}).observe({ entryTypes: ['gc'] });
const timers = require('node:timers');
for (const name of ['setTimeout', 'setInterval']) {
  const orig = timers[name];
  const wrapped = function (fn, ms, ...args) {
    if (typeof fn !== 'function') return orig.call(this, fn, ms, ...args);
    const id = nameOf(fn);
    return orig.call(this, function (...a) { tr.ev(4, id); try { return fn.apply(this, a); } finally { tr.ev(5, id); } }, ms, ...args);
  };
  timers[name] = wrapped;
  globalThis[name] = wrapped;
}
syncBuiltinESMExports();
const tid = readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0];
process.on('exit', () => {
  if (!out) return;
  const lines = [`tid ${tid}`, `base ${base}`];
  for (let i = 0; i < names.length; i++) lines.push(`name ${i} ${names[i]}`);
  for (const g of gcs) lines.push(`gc ${(g[0] + base).toFixed(4)} ${g[1].toFixed(4)} ${g[2]}`);
  writeFileSync(out + '.meta', lines.join('\n') + '\n');
  const rows = [];
  for (let i = 0; i < n; i++) rows.push(`${kind[i]} ${(t[i] + base).toFixed(4)} ${arg[i]}`);
  writeFileSync(out, rows.join('\n') + '\n');
});
process.on('SIGTERM', () => process.exit(0));
