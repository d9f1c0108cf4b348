// an.mjs RUNDIR: correlate lat's per-request records with the node's trace (reads, writes, turn passes, timers, GCs).
import { readFileSync } from 'node:fs';
const dir = process.argv[2];
const lat = readFileSync(dir + '/lat.txt', 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
const ev = readFileSync(dir + '/trace.txt', 'utf8').trim().split('\n').map((l) => { const [k, t, a] = l.split(' '); return [+k, +t * 1e6, +a]; });
const meta = readFileSync(dir + '/trace.txt.meta', 'utf8').trim().split('\n');
const names = {}; const gcs = [];
for (const l of meta) { const p = l.split(' '); if (p[0] === 'name') names[p[1]] = p.slice(2).join(' '); if (p[0] === 'gc') gcs.push([+p[1] * 1e6, +p[2] * 1e6, +p[3]]); }
const t0 = lat[0][0], t1 = Math.max(...lat.slice(-2000).map((r) => r[0] + r[1]));
const inRun = (t) => t >= t0 && t <= t1;
// turns: from the pass (3) events
const passes = ev.filter((e) => e[0] === 3 && inRun(e[1]));
const timers = []; const open = {};
for (const e of ev) { if (e[0] === 4) open[e[2]] = e[1]; else if (e[0] === 5 && open[e[2]] !== undefined) { if (inRun(e[1])) timers.push([open[e[2]], e[1] - open[e[2]], e[2]]); delete open[e[2]]; } }
const runGcs = gcs.filter((g) => inRun(g[0]));
// per-fd reads and writes
const reads = {}, writes = {};
for (const e of ev) { if (!inRun(e[1]) && !(e[1] > t0 - 5e6 && e[1] < t1 + 5e6)) continue; const m = e[0] === 1 ? reads : e[0] === 2 ? writes : null; if (m) (m[e[2]] ??= []).push(e[1]); }
const fds = Object.keys(reads).map(Number).sort((a, b) => a - b);
console.log(`requests ${lat.length}, run ${(t1 - t0) / 1e9} s, fds seen ${fds.length}, passes ${passes.length}, timers ${timers.length}, gcs ${runGcs.length}`);
// turns: reads per pass interval
const readEvs = ev.filter((e) => e[0] === 1 && inRun(e[1])).map((e) => e[1]);
let ri = 0; const turns = [];
let prev = passes.length ? passes[0][1] : t0;
for (let i = 1; i < passes.length; i++) {
  const p = passes[i][1]; let c = 0; let first = -1;
  while (ri < readEvs.length && readEvs[ri] < p) { if (readEvs[ri] >= prev) { c++; if (first < 0) first = readEvs[ri]; } ri++; }
  turns.push({ start: prev, end: p, reads: c, first, sockets: passes[i][2] });
  prev = p;
}
const q = (a, f) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(f * s.length))]; };
const tl = turns.map((t) => (t.end - t.start) / 1e3);
console.log(`pass-to-pass us p50 ${q(tl, .5).toFixed(1)} p90 ${q(tl, .9).toFixed(1)} p99 ${q(tl, .99).toFixed(1)} max ${Math.max(...tl).toFixed(0)}; reads per turn p50 ${q(turns.map(t=>t.reads), .5)} p90 ${q(turns.map(t=>t.reads), .9)} p99 ${q(turns.map(t=>t.reads), .99)}`);
const busy = turns.filter(t=>t.first>0).map((t) => (t.end - t.first) / 1e3);
console.log(`first read to pass end us p50 ${q(busy,.5).toFixed(1)} p99 ${q(busy,.99).toFixed(1)}; per read ${(busy.reduce((a,b)=>a+b,0)/turns.reduce((a,t)=>a+t.reads,0)).toFixed(2)} us`);
// map lat conn index -> fd by order
const ls = lat.map((r) => r[1]); const p99 = q(ls, 0.99), p50 = q(ls, 0.5);
console.log(`lat p50 ${(p50 / 1e6).toFixed(3)} ms p99 ${(p99 / 1e6).toFixed(3)} ms p99.9 ${(q(ls, .999) / 1e6).toFixed(3)}`);
// per request: find the read of its fd after send, and the write after that
const idx = {}; for (const f of fds) idx[f] = [0, 0];
const conns = new Map(); lat.forEach((r) => conns.set(r[2], true));
const order = [...conns.keys()].sort((a, b) => a - b);
const fdOf = {}; order.forEach((c, i) => (fdOf[c] = fds[fds.length - order.length + i]));
const bs = (arr, x) => { let lo = 0, hi = arr.length; while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] < x) lo = m + 1; else hi = m; } return lo; };
let bad = 0; const parts = [];
for (const [s, l, c] of lat) {
  const fd = fdOf[c]; const R = reads[fd], W = writes[fd];
  if (!R || !W) { bad++; continue; }
  const r = R[bs(R, s)]; const w = W[bs(W, r)];
  if (r === undefined || w === undefined || w > s + l) { bad++; parts.push(null); continue; }
  parts.push([r - s, w - r, s + l - w]);
}
console.log(`unmatched ${bad}`);
const pstat = (sel, label) => {
  const P = sel.filter(Boolean); const m = (i) => (P.reduce((a, p) => a + p[i], 0) / P.length / 1e3).toFixed(1);
  console.log(`${label}: n ${P.length} mean us: before read ${m(0)}, read->write ${m(1)}, write->client ${m(2)}`);
};
const slowI = [], allI = [];
lat.forEach((r, i) => { allI.push(i); if (r[1] >= p99) slowI.push(i); });
pstat(allI.map((i) => parts[i]), 'all ');
pstat(slowI.map((i) => parts[i]), 'slow');
// overlaps
const ov = (s, e, list, quarter) => list.some(([a, d]) => a < e && a + d > s && Math.min(e, a + d) - Math.max(s, a) >= quarter);
const classify = (i) => {
  const [s, l] = lat[i]; const e = s + l; const qq = l / 4;
  const gc = ov(s, e, runGcs, qq);
  const tm = ov(s, e, timers, 0);
  const tmq = ov(s, e, timers, qq);
  const longTurn = turns.some((t) => t.start < e && t.end > s && t.end - t.start >= 1e6);
  const manyReads = turns.some((t) => t.start < e && t.end > s && t.reads >= 45);
  return { gc, tm, tmq, longTurn, manyReads };
};
const frac = (I) => { const c = { gc: 0, tm: 0, tmq: 0, longTurn: 0, manyReads: 0 }; for (const i of I) { const k = classify(i); for (const x in c) if (k[x]) c[x]++; } return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, (100 * v / I.length).toFixed(1) + '%'])); };
console.log('slow overlaps', frac(slowI));
const sample = allI.filter((_, j) => j % 50 === 0);
console.log('all  overlaps (1/50 sample)', frac(sample));
// GCs
console.log(`gc in run: ${runGcs.length}, durations ms ${runGcs.map((g) => (g[1] / 1e6).toFixed(2)).join(' ')}, kinds ${runGcs.map(g=>g[2]).join('')}`);
// timers summary
const byName = {}; for (const [a, d, id] of timers) { const b = (byName[id] ??= [0, 0, 0]); b[0]++; b[1] += d; b[2] = Math.max(b[2], d); }
for (const [id, [c, sum, mx]] of Object.entries(byName).sort((a, b) => b[1][1] - a[1][1]).slice(0, 12)) console.log(`timer x${c} total ${(sum / 1e6).toFixed(2)} ms max ${(mx / 1e6).toFixed(3)} ms  ${names[id]?.slice(0, 110)}`);
// slow requests clustered in time?
const slowT = slowI.map((i) => lat[i][0]).sort((a, b) => a - b);
let clusters = 0; for (let i = 0; i < slowT.length; i++) if (i === 0 || slowT[i] - slowT[i - 1] > 2e6) clusters++;
console.log(`slow requests ${slowT.length} in ${clusters} clusters (gap > 2 ms)`);
// long turns: what is in them
const lt = turns.filter((t) => t.end - t.start >= 1e6);
console.log(`turns >= 1 ms: ${lt.length}; of them with a gc ${lt.filter(t=>runGcs.some(g=>g[0]<t.end&&g[0]+g[1]>t.start)).length}, a timer ${lt.filter(t=>timers.some(g=>g[0]<t.end&&g[0]+g[1]>t.start)).length}`);
