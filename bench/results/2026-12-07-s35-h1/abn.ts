// N compiled builds, rounds rotating the order; VmRSS/RssAnon/RssFile 3 s after 'node listening'.
// usage: T="name=/path/main.js,..." node /tmp/h1/abn.ts ROUNDS
import { readFileSync } from 'node:fs';
import { startKvstore, stopServer, SINGLE_NODE_ARGS, tempDir } from '../../procs.ts';
const targets = process.env.T!.split(',').map((s) => s.split('=') as [string, string]);
const root = tempDir('/tmp', 'h1-abn-');
const rounds = Number(process.argv[2] ?? 6);
const res = new Map<string, { rss: number[]; anon: number[]; file: number[] }>(targets.map(([n]) => [n, { rss: [], anon: [], file: [] }]));
const loads: number[] = [];
for (let i = 0; i < rounds; i++) {
  const order = targets.map((_, j) => targets[(i + j) % targets.length]!);
  if (i % 2 === 1) order.reverse();
  for (const [name, script] of order) {
    const s = await startKvstore(root, { name: 'e', args: SINGLE_NODE_ARGS, script });
    await new Promise((r) => setTimeout(r, 3000));
    const st = readFileSync(`/proc/${s.child.pid}/status`, 'utf8');
    const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    loads.push(load);
    const f = (n: string) => Number(new RegExp(`${n}:\\s+(\\d+)`).exec(st)![1]);
    const r = res.get(name)!;
    r.rss.push(f('VmRSS')); r.anon.push(f('RssAnon')); r.file.push(f('RssFile'));
    console.log(i, name.padEnd(8), 'VmRSS', f('VmRSS'), 'anon', f('RssAnon'), 'file', f('RssFile'), 'readyMs', Math.round(s.readyMs), 'load', load);
    await stopServer(s);
  }
}
const med = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
console.log(`load ${Math.min(...loads)}-${Math.max(...loads)}`);
const base = med(res.get(targets[0]![0])!.rss);
for (const [name] of targets) { const r = res.get(name)!; console.log(`${name.padEnd(8)} VmRSS median ${med(r.rss)} kB (${(med(r.rss) / 1024).toFixed(1)} MiB; min ${Math.min(...r.rss)} max ${Math.max(...r.rss)}) anon ${med(r.anon)} file ${med(r.file)}  vs ${targets[0]![0]}: ${med(r.rss) - base} kB`); }
