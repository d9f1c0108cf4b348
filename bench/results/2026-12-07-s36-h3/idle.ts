import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { startCluster } from '../../cluster.ts';
import { cleanupSync, processCpuMs, processSyscalls, stopServer, tempDir } from '../../procs.ts';
const script = process.argv[2]!; const K = Number(process.argv[3] ?? 2);
const root = tempDir(tmpdir(), 'h3-idle-');
function rb(host: string, port: number, op: string, p: number, n: number) {
  const o = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-P', String(p), '-r', '100000', '-d', '100', '-n', String(n), '--csv', '-t', op], { encoding: 'utf8' });
  return Number(o.stdout.trim().split('\n').at(-1)!.split(',')[1]!.replaceAll('"', ''));
}
const scrape = (host: string) => { const t = spawnSync('curl', ['-s', `http://${host}:9090/metrics`], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout; const out = new Map<string, number>(); for (const line of t.split('\n')) { const m = /^((?:kvstore|nodejs)_[a-z_0-9]+(?:\{[^}]*\})?) ([\d.e+-]+)$/.exec(line); if (m) out.set(m[1]!, Number(m[2])); } return out; };
for (let k = 0; k < K; k++) {
  const nodes = await startCluster(root, 3, 120000, { script });
  try {
    const idle = async (what: string, ms: number) => {
      const m0 = nodes.map((n) => scrape(n.host)); const c0 = nodes.map((n) => processCpuMs(n.child!.pid!, 100)); const s0 = nodes.map((n) => processSyscalls(n.child!.pid!));
      await new Promise((r) => setTimeout(r, ms));
      const m1 = nodes.map((n) => scrape(n.host)); const c1 = nodes.map((n) => processCpuMs(n.child!.pid!, 100)); const s1 = nodes.map((n) => processSyscalls(n.child!.pid!));
      console.log(`cluster ${k} ${what}: cpu ms/s ${c1.map((c, i) => ((c - c0[i]!) * 1000 / ms).toFixed(0)).join(' ')} syscalls/s ${s1.map((c, i) => ((c - s0[i]!) * 1000 / ms).toFixed(0)).join(' ')}`);
      for (let i = 0; i < 3; i++) for (const [key, v] of m1[i]!) { const d = v - (m0[i]!.get(key) ?? 0); if (d !== 0 && /_total|_count/.test(key) && !/bucket|cpu|scrape|http/.test(key)) console.log(`  n${i} ${key} ${d}`); }
    };
    await idle('before fill', 6000);
    rb(nodes[0]!.host, nodes[0]!.port, 'set', 16, 400000);
    await idle('after fill', 10000);
    rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, 240000);
    await idle('after get', 10000);
  } finally { await Promise.all(nodes.map(stopServer)); }
}
cleanupSync(); process.exit(0);
