import { readFileSync, readdirSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
let minor = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === 1) minor++; }).observe({ entryTypes: ['gc'] });
function workerSwitches() {
  let n = 0;
  for (const t of readdirSync('/proc/self/task')) {
    if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() !== 'V8Worker') continue;
    const s = readFileSync(`/proc/self/task/${t}/status`, 'utf8');
    n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)[1]);
  }
  return n;
}
const ring = new Array(100000);
function churn(n) { for (let i = 0; i < n; i++) ring[i % ring.length] = { i, s: 'k' + i }; }
churn(2e7);
await new Promise((r) => setTimeout(r, 100));
const w0 = workerSwitches(); const m0 = minor;
churn(2e7);
await new Promise((r) => setTimeout(r, 100));
console.log(JSON.stringify({ scavenges: minor - m0, workerWakeups: workerSwitches() - w0, flags: process.execArgv.join(' ') }));
