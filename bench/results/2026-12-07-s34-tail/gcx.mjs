// p50/p99 of a lat run: all requests, and those overlapping no GC of the node (gc.txt), and the count hit
import { readFileSync } from 'node:fs';
const dir = process.argv[2];
const reqs = readFileSync(`${dir}/lat.txt`, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
const gcs = readFileSync(`${dir}/gc.txt`, 'utf8').trim().split('\n').slice(1).map((l) => l.split(' ').map(Number)).map(([s, d, k]) => [s, s + d, k]);
const t0 = reqs[0][0], t1 = reqs.at(-1)[0] + reqs.at(-1)[1];
const inrun = gcs.filter(([s, e]) => e > t0 && s < t1);
reqs.sort((a, b) => a[0] - b[0]);
let j = 0; const clean = []; let hit = 0;
for (const [s, l] of reqs) {
  const e = s + l; let h = false;
  for (const [gs, ge] of inrun) if (gs < e && ge > s) { h = true; break; }
  if (h) hit++; else clean.push(l);
}
const pct = (a, p) => { const b = [...a].sort((x, y) => x - y); return (b[Math.min(b.length - 1, Math.floor(p * b.length))] / 1e6).toFixed(3); };
const all = reqs.map((r) => r[1]);
console.log(`${dir}: ${reqs.length} reqs, GCs in run ${inrun.length} (${inrun.map((g) => ((g[1] - g[0]) / 1e6).toFixed(2)).join(' ')} ms), requests overlapping one ${hit} (${(100 * hit / reqs.length).toFixed(2)}%)`);
console.log(`  all: p50 ${pct(all, 0.5)} p99 ${pct(all, 0.99)} p99.9 ${pct(all, 0.999)}; without those: p50 ${pct(clean, 0.5)} p99 ${pct(clean, 0.99)} p99.9 ${pct(clean, 0.999)}`);
