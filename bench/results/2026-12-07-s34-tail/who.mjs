// who preempted the server main thread, by next_comm, for off-CPU stretches over a threshold; and what ran on that cpu meanwhile
import { readFileSync } from 'node:fs';
const dir = process.argv[2]; const thr = Number(process.argv[3] ?? 0.25) * 1e6;
const pid = Number(readFileSync(`${dir}/pid`, 'utf8').split(' ')[1]);
const lines = readFileSync(`${dir}/sched.txt`, 'utf8').split('\n');
const re = /^\s*(?:\d+\s+)?\[(\d+)\]\s+(\d+\.\d+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)/;
let open = null; const by = new Map(); const during = new Map();
const evs = [];
for (const l of lines) { const m = re.exec(l); if (!m) continue; evs.push({cpu:+m[1], t: Math.round(+m[2]*1e9), pc:m[3], pp:+m[4], st:m[5], nc:m[6], np:+m[7]}); }
for (let i = 0; i < evs.length; i++) {
  const e = evs[i];
  if (e.pp === pid && e.st.startsWith('R')) open = { i, t: e.t, cpu: e.cpu, first: e.nc };
  if (e.np === pid && open) {
    const d = e.t - open.t;
    if (d >= thr) {
      const k = open.first; by.set(k, (by.get(k) ?? 0) + 1);
      // time per comm on that cpu during the gap
      const acc = new Map(); let cur = open.first, ct = open.t;
      for (let j = open.i + 1; j < i; j++) { const f = evs[j]; if (f.cpu !== open.cpu) continue; acc.set(cur, (acc.get(cur) ?? 0) + f.t - ct); cur = f.nc; ct = f.t; }
      acc.set(cur, (acc.get(cur) ?? 0) + e.t - ct);
      for (const [c, v] of acc) during.set(c, (during.get(c) ?? 0) + v);
    }
    open = null;
  }
}
console.log('first next_comm of stretches >= thr:', [...by].sort((a,b)=>b[1]-a[1]).slice(0,15));
console.log('ms on that cpu during them:', [...during].sort((a,b)=>b[1]-a[1]).slice(0,15).map(([c,v])=>[c,(v/1e6).toFixed(1)]));
