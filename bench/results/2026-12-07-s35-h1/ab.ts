// Alternating pairs: A vs B compiled builds, VmRSS/RssAnon/RssFile 3 s after 'node listening'.
// usage: A=... B=... node /tmp/h1/ab.ts PAIRS [SMAPS_DIR]
import { readFileSync, writeFileSync } from 'node:fs';
import { startKvstore, stopServer, SINGLE_NODE_ARGS, tempDir } from '../../procs.ts';
const builds: Record<string, string> = { A: process.env.A!, B: process.env.B! };
const root = tempDir('/tmp', 'h1-ab-');
const pairs = Number(process.argv[2] ?? 6);
const smapsDir = process.argv[3];
const res: Record<string, number[]> = { A: [], B: [] };
for (let i = 0; i < pairs; i++) {
  const order = i % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
  for (const b of order) {
    const s = await startKvstore(root, { name: 'e', args: SINGLE_NODE_ARGS, script: builds[b] });
    await new Promise((r) => setTimeout(r, Number(process.env.SETTLE ?? 3000)));
    const st = readFileSync(`/proc/${s.child.pid}/status`, 'utf8');
    if (smapsDir) writeFileSync(`${smapsDir}/${b}-${i}.smaps`, readFileSync(`/proc/${s.child.pid}/smaps`, 'utf8'));
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const f = (n: string) => Number(new RegExp(`${n}:\\s+(\\d+)`).exec(st)![1]);
    res[b]!.push(f('VmRSS'));
    console.log(i, b, 'VmRSS', f('VmRSS'), 'anon', f('RssAnon'), 'file', f('RssFile'), 'readyMs', Math.round(s.readyMs), 'load', load);
    await stopServer(s);
  }
}
const med = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
console.log('median A', med(res.A!), 'kB', (med(res.A!) / 1024).toFixed(1), 'MiB; B', med(res.B!), 'kB', (med(res.B!) / 1024).toFixed(1), 'MiB; B-A', med(res.B!) - med(res.A!), 'kB');
