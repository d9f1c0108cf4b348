// hist.mjs DIR...: latency histogram (share of requests per bucket) and percentiles of lat runs, side by side
import { readFileSync } from 'node:fs';
const edges = [0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, Infinity];
const rows = process.argv.slice(2).map((d) => {
  const l = readFileSync(`${d}/lat.txt`, 'utf8').trim().split('\n').map((x) => Number(x.split(' ')[1]) / 1e6).sort((a, b) => a - b);
  const h = edges.map(() => 0); for (const v of l) h[edges.findIndex((e) => v < e)]++;
  const p = (q) => l[Math.min(l.length - 1, Math.floor(q * l.length))].toFixed(3);
  return { d: d.split('/').pop(), n: l.length, h: h.map((c) => (100 * c / l.length).toFixed(2)), pc: [p(0.5), p(0.9), p(0.99), p(0.999)] };
});
console.log('| bucket ms | ' + rows.map((r) => r.d).join(' | ') + ' |'); console.log('|---|' + rows.map(() => '--:').join('|') + '|');
let lo = 0; edges.forEach((e, i) => { console.log(`| ${lo}-${e === Infinity ? '' : e} | ` + rows.map((r) => r.h[i] + '%').join(' | ') + ' |'); lo = e; });
['p50', 'p90', 'p99', 'p99.9'].forEach((n, i) => console.log(`| ${n} ms | ` + rows.map((r) => r.pc[i]).join(' | ') + ' |'));
