// Alternating pairs: base vs fix compiled builds, VmRSS/RssAnon 3 s after 'node listening' (as bench/startup-memory.ts).
import { readFileSync } from 'node:fs';
import { startKvstore, stopServer, SINGLE_NODE_ARGS, tempDir } from '../../procs.ts';
const builds = { base: process.env.BASE!, fix: process.env.FIX! };
const root = tempDir('/tmp', 'h11-ab-');
const pairs = Number(process.argv[2] ?? 10);
for (let i = 0; i < pairs; i++) {
  const order = i % 2 === 0 ? (['base', 'fix'] as const) : (['fix', 'base'] as const);
  for (const b of order) {
    const s = await startKvstore(root, { name: 'e', args: SINGLE_NODE_ARGS, script: builds[b] });
    await new Promise((r) => setTimeout(r, Number(process.env.SETTLE ?? 3000)));
    const st = readFileSync(`/proc/${s.child.pid}/status`, 'utf8');
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    console.log(i, b, 'VmRSS', /VmRSS:\s+(\d+)/.exec(st)![1], 'RssAnon', /RssAnon:\s+(\d+)/.exec(st)![1], 'readyMs', Math.round(s.readyMs), 'load', load);
    await stopServer(s);
  }
}
