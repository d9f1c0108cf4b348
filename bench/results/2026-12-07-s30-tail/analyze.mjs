// node analyze.mjs RUN_DIR: the slow requests (>= p99) of a lat run, by what overlapped them:
// a GC of the server, the server's main thread preempted (switched out runnable), or asleep
// (switched out sleeping: waiting in epoll while the request was on its way), the client
// preempted. Each request's overlap is summed per cause.
import { readFileSync, existsSync } from 'node:fs';

const dir = process.argv[2];
const thr = process.argv[3] ? Number(process.argv[3]) * 1e6 : null;
const reqs = readFileSync(`${dir}/lat.txt`, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
const pid = Number(readFileSync(`${dir}/pid`, 'utf8').split(' ')[1]);
const gcs = [];
if (existsSync(`${dir}/gc.txt`)) {
  for (const l of readFileSync(`${dir}/gc.txt`, 'utf8').trim().split('\n').slice(1)) {
    const [s, d, k] = l.split(' ').map(Number);
    gcs.push([s, s + d, k]);
  }
}
// Off-CPU intervals of a tid: [start, end, state]
function offIntervals(tidMatch) {
  const out = [];
  const open = new Map();
  for (const l of readFileSync(`${dir}/sched.txt`, 'utf8').split('\n')) {
    const m = /^\s*(?:\d+\s+)?\[\d+\]\s+(\d+\.\d+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)/.exec(l);
    if (!m) continue;
    const t = Math.round(Number(m[1]) * 1e9);
    const prev = Number(m[3]);
    const next = Number(m[6]);
    if (tidMatch(prev, m[2])) open.set(prev, [t, m[4]]);
    if (tidMatch(next, m[5]) && open.has(next)) {
      const [s, st] = open.get(next);
      open.delete(next);
      out.push([s, t, st]);
    }
  }
  return out.sort((a, b) => a[0] - b[0]);
}
const server = offIntervals((p) => p === pid);
// The server main thread's turns: from an epoll return with events to its next epoll call.
const turns = [];
{
  let open = null;
  for (const l of readFileSync(`${dir}/sched.txt`, 'utf8').split('\n')) {
    const m = /^\s*(\d+)\s+\[\d+\]\s+(\d+\.\d+):\s+syscalls:sys_(enter|exit)_epoll_p?wait:\s*(.*)$/.exec(l);
    if (!m || Number(m[1]) !== pid) continue;
    const t = Math.round(Number(m[2]) * 1e9);
    if (m[3] === 'exit') {
      const n = parseInt(m[4].replace(/.*0x/, ''), 16);
      open = n > 0 ? [t, n] : null;
    } else if (open) {
      turns.push([open[0], t, open[1]]);
      open = null;
    }
  }
}
const client = offIntervals((_p, c) => c === 'lat');
function overlap(list, s, e, filter) {
  // list sorted by start; linear scan from a binary-searched start
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid][1] < s) lo = mid + 1; else hi = mid;
  }
  let sum = 0;
  for (let i = Math.max(0, lo - 2); i < list.length && list[i][0] < e; i++) {
    const x = list[i];
    if (filter && !filter(x)) continue;
    const o = Math.min(e, x[1]) - Math.max(s, x[0]);
    if (o > 0) sum += o;
  }
  return sum;
}
const gcSorted = gcs.sort((a, b) => a[0] - b[0]);
const lats = reqs.map((r) => r[1]).sort((a, b) => a - b);
const p = (q) => lats[Math.floor(lats.length * q)];
const p99 = thr ?? p(0.99);
const t0 = reqs.reduce((m, r) => Math.min(m, r[0]), Infinity);
const t1 = reqs.reduce((m, r) => Math.max(m, r[0] + r[1]), 0);
const span = t1 - t0;
const inRun = (list) => list.filter((x) => x[1] > t0 && x[0] < t1);
const srvPre = inRun(server).filter((x) => x[2].startsWith('R'));
const srvSleep = inRun(server).filter((x) => !x[2].startsWith('R'));
const cliPre = inRun(client).filter((x) => x[2].startsWith('R'));
const gcRun = inRun(gcSorted);
const turnsRun = inRun(turns);
{
  const d = turnsRun.map((x) => (x[1] - x[0]) / 1e6).sort((a, b) => a - b);
  const ev = turnsRun.reduce((a, x) => a + x[2], 0);
  if (d.length) console.log(`  turns: ${d.length}, events per turn ${(ev / d.length).toFixed(1)}, busy ms p50 ${d[d.length >> 1].toFixed(3)} p90 ${d[Math.floor(d.length * 0.9)].toFixed(3)} p99 ${d[Math.floor(d.length * 0.99)].toFixed(3)} max ${d.at(-1).toFixed(2)}; busy per event ${(turnsRun.reduce((a, x) => a + x[1] - x[0], 0) / ev / 1e3).toFixed(2)} µs`);
}
const sum = (l) => l.reduce((a, x) => a + Math.min(t1, x[1]) - Math.max(t0, x[0]), 0);
const hist = (l) => {
  const b = [0.1, 0.25, 0.5, 1, 2, 5, 10, 1e9];
  const c = b.map(() => 0);
  for (const x of l) { const d = (x[1] - x[0]) / 1e6; c[b.findIndex((v) => d <= v)]++; }
  return b.map((v, i) => `<=${v >= 1e9 ? 'inf' : v}ms:${c[i]}`).join(' ');
};
console.log(`${dir}: ${reqs.length} requests over ${(span / 1e9).toFixed(2)} s, p50 ${(p(0.5) / 1e6).toFixed(3)} p99 ${(p(0.99) / 1e6).toFixed(3)} p99.9 ${(p(0.999) / 1e6).toFixed(3)} max ${(lats.at(-1) / 1e6).toFixed(2)} ms; threshold ${(p99 / 1e6).toFixed(3)} ms`);
console.log(`  server main thread preempted: ${srvPre.length} times, ${(sum(srvPre) / 1e6).toFixed(1)} ms (${(100 * sum(srvPre) / span).toFixed(1)}% of the run); ${hist(srvPre)}`);
console.log(`  server main thread asleep: ${srvSleep.length} times, ${(sum(srvSleep) / 1e6).toFixed(1)} ms (${(100 * sum(srvSleep) / span).toFixed(1)}%)`);
console.log(`  client preempted: ${cliPre.length} times, ${(sum(cliPre) / 1e6).toFixed(1)} ms (${(100 * sum(cliPre) / span).toFixed(1)}%); ${hist(cliPre)}`);
console.log(`  GCs: ${gcRun.length}, ${(sum(gcRun) / 1e6).toFixed(1)} ms (${(100 * sum(gcRun) / span).toFixed(2)}%); ${hist(gcRun)}`);
// Classify slow requests: the cause with the largest overlap, if that overlap is >= 25% of the latency
const causes = { 'server preempted': 0, gc: 0, 'client preempted': 0, 'long turn (>=1 ms, neither)': 0, 'none of these': 0 };
const causesAll = { ...causes };
let slow = 0;
for (const [s, l] of reqs) {
  const e = s + l;
  const o = {
    'server preempted': overlap(srvPre, s, e),
    gc: overlap(gcSorted, s, e),
    'client preempted': overlap(cliPre, s, e),
  };
  let best = 'none of these', bv = 0.25 * l;
  for (const [k, v] of Object.entries(o)) if (v >= bv) { best = k; bv = v; }
  if (best === 'none of these' && overlap(turns, s, e, (x) => x[1] - x[0] >= 1e6) > 0) best = 'long turn (>=1 ms, neither)';
  causesAll[best]++;
  if (l >= p99) { slow++; causes[best]++; }
}
const fmt = (c, n) => Object.entries(c).map(([k, v]) => `${k} ${v} (${((100 * v) / n).toFixed(1)}%)`).join(', ');
console.log(`  slow requests (${slow}) by the cause overlapping >= 25% of it (largest): ${fmt(causes, slow)}`);
console.log(`  all requests (${reqs.length}) so classified: ${fmt(causesAll, reqs.length)}`);
