// phases.mjs RUNDIR: per turn: poll gap (last write of the pass -> first read), reads (first read -> pass), writes (pass -> last write)
import { readFileSync } from 'node:fs';
const dir = process.argv[2];
const ev = readFileSync(dir + '/trace.txt', 'utf8').trim().split('\n').map((l) => { const [k, t, a] = l.split(' '); return [+k, +t * 1e3, +a]; }); // us
const lat = readFileSync(dir + '/lat.txt', 'utf8').trim().split('\n'); const t0 = +lat[0].split(' ')[0] / 1e3, tEnd = +lat[lat.length - 1].split(' ')[0] / 1e3;
const T = [];
let cur = null;
for (const [k, t, a] of ev) {
  if (t < t0 || t > tEnd) continue;
  if (k === 1) { if (!cur || cur.pass !== undefined) { if (cur) T.push(cur); cur = { first: t, reads: 0 }; } cur.reads++; cur.lastRead = t; }
  else if (k === 3 && cur) { cur.pass = t; cur.n = a; }
  else if (k === 2 && cur && cur.pass !== undefined) { cur.lastWrite = t; cur.writes = (cur.writes ?? 0) + 1; }
}
const q = (a, f) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(f * s.length))]; };
const ok = T.filter((t) => t.lastWrite !== undefined);
const gap = []; for (let i = 1; i < ok.length; i++) gap.push(ok[i].first - ok[i - 1].lastWrite);
const rd = ok.map((t) => t.pass - t.first), wr = ok.map((t) => t.lastWrite - t.pass), rn = ok.map((t) => t.reads);
const s = (n, a) => `${n} p10 ${q(a, .1).toFixed(1)} p50 ${q(a, .5).toFixed(1)} p90 ${q(a, .9).toFixed(1)} p99 ${q(a, .99).toFixed(1)} mean ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(1)}`;
console.log(`turns ${ok.length}`); console.log(s('reads/turn', rn)); console.log(s('poll gap us', gap)); console.log(s('read phase us', rd)); console.log(s('write phase us', wr));
const perR = ok.reduce((a, t) => a + t.pass - t.first, 0) / ok.reduce((a, t) => a + t.reads, 0), perW = ok.reduce((a, t) => a + t.lastWrite - t.pass, 0) / ok.reduce((a, t) => a + t.writes, 0);
console.log(`per read ${perR.toFixed(2)} us, per write ${perW.toFixed(2)} us`);
// long turns (pass-to-pass >= 1 ms): which part
const L = []; for (let i = 1; i < ok.length; i++) { const tot = ok[i].lastWrite - ok[i - 1].lastWrite; if (tot >= 1000) L.push([ok[i].first - ok[i - 1].lastWrite, ok[i].pass - ok[i].first, ok[i].lastWrite - ok[i].pass, ok[i].reads]); }
const dom = [0, 0, 0]; for (const l of L) dom[l.slice(0, 3).indexOf(Math.max(...l.slice(0, 3)))]++;
console.log(`cycles >= 1 ms: ${L.length}; longest part: poll gap ${dom[0]}, reads ${dom[1]}, writes ${dom[2]}; mean parts us ${[0,1,2].map(j=>(L.reduce((a,l)=>a+l[j],0)/L.length).toFixed(0)).join(' / ')}`);
