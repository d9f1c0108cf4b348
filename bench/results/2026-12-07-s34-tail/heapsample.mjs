import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
const s = new Session(); s.connect();
s.post('HeapProfiler.enable');
let on = false;
process.on('SIGUSR2', () => {
  if (!on) { on = true; s.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true }); return; }
  s.post('HeapProfiler.stopSampling', (err, { profile }) => {
    const self = new Map(); let total = 0; const stacks = new Map();
    const walk = (n, path) => {
      const f = n.callFrame; const name = `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
      const p = [...path, name];
      const sz = n.selfSize; total += sz;
      if (sz) { self.set(name, (self.get(name) ?? 0) + sz); const k = p.slice(-5).join(' <- '); stacks.set(k, (stacks.get(k) ?? 0) + sz); }
      for (const c of n.children) walk(c, p);
    };
    walk(profile.head, []);
    const lines = [`total ${total}`];
    for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) lines.push(`${(100 * v / total).toFixed(1).padStart(5)} ${k}`);
    lines.push('--- stacks');
    for (const [k, v] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 40)) lines.push(`${(100 * v / total).toFixed(1).padStart(5)} ${k.split(' <- ').reverse().join(' <- ')}`);
    writeFileSync(process.env.HEAPOUT, lines.join('\n') + '\n');
    on = false;
  });
});
