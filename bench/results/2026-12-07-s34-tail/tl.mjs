// Timeline of a cpuprofile: per sample, its root-level category (the frame below (root)) and whether under timers;
// report total ms per top frame, and stretches of consecutive non-I/O samples (timers, GC) >= 0.2 ms
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map(); for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const top = new Map(); const label = (n) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
function chain(id) { const out = []; while (id !== undefined) { out.push(byId.get(id)); id = parent.get(id); } return out.reverse(); }
const cache = new Map();
function cat(id) { if (cache.has(id)) return cache.get(id); const c = chain(id); const t = c[1] ? label(c[1]) : '(root)'; let deep = c.slice(1, 6).map(label).join(' > '); const r = { t, deep }; cache.set(id, r); return r; }
const tot = new Map(); const deepTot = new Map(); let time = p.startTime; const stretches = []; let cur = null;
for (let i = 0; i < p.samples.length; i++) {
  time += p.timeDeltas[i]; const dt = p.timeDeltas[i + 1] ?? 0;
  const { t, deep } = cat(p.samples[i]);
  tot.set(t, (tot.get(t) ?? 0) + dt);
  if (/processTimers|listOnTimeout|garbage|processImmediate/.test(t)) deepTot.set(deep, (deepTot.get(deep) ?? 0) + dt);
  const key = /processTimers|garbage/.test(t) ? t : null;
  if (key && cur && cur.t === key) { cur.end = time + dt; cur.deeps.add(deep); }
  else { if (cur) stretches.push(cur); cur = key ? { t: key, start: time, end: time + dt, deeps: new Set([deep]) } : null; }
}
const all = [...tot.values()].reduce((a, b) => a + b, 0);
console.log('total ms', (all / 1000).toFixed(1));
for (const [k, v] of [...tot].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log((v / 1000).toFixed(1).padStart(8), (100 * v / all).toFixed(1).padStart(5) + '%', k);
console.log('--- under timers/GC/immediate, by path');
for (const [k, v] of [...deepTot].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log((v / 1000).toFixed(2).padStart(8), k);
console.log('--- stretches >= 0.2 ms');
for (const s of stretches.filter((s) => s.end - s.start >= 200)) console.log(((s.start - p.startTime) / 1000).toFixed(1), ((s.end - s.start) / 1000).toFixed(2), s.t, [...s.deeps].slice(0, 3).join(' | '));
