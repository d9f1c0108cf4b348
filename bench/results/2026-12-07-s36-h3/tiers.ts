// K clusters alive; each: fill, warm GET, then GET with perf on the coordinator; per-cluster coordinator CPU/GET.
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { startCluster } from '../../cluster.ts';
import { cleanupSync, processCpuMs, stopServer, tempDir } from '../../procs.ts';
const [script, K] = [process.argv[2]!, Number(process.argv[3] ?? 3)];
const root = tempDir(tmpdir(), 'h3-tiers-');
function rb(host: string, port: number, op: string, p: number, n: number) {
  const o = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-P', String(p), '-r', '100000', '-d', '100', '-n', String(n), '--csv', '-t', op], { encoding: 'utf8' });
  return Number(o.stdout.trim().split('\n').at(-1)!.split(',')[1]!.replaceAll('"', ''));
}
const scrape = (host: string) => { const t = spawnSync('curl', ['-s', `http://${host}:9090/metrics`], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout; const out = new Map<string, number>(); for (const line of t.split('\n')) { const m = /^((?:kvstore|nodejs)_[a-z_0-9]+(?:\{[^}]*\})?) ([\d.e+-]+)$/.exec(line); if (m) out.set(m[1]!, Number(m[2])); } return out; };
const clusters = [];
try {
  for (let k = 0; k < K; k++) clusters.push(await startCluster(root, 3, 120000, { script, nodeArgs: ['--perf-basic-prof-only-functions', ...(process.env.NODEARGS ?? '').split(' ').filter(Boolean)] }));
  for (const c of clusters) rb(c[0]!.host, c[0]!.port, 'set', 16, 400000);
  for (let round = 0; round < 2; round++) for (let k = 0; k < K; k++) {
    const c = clusters[k]!; const pid = c[0]!.child!.pid!;
    rb(c[0]!.host, c[0]!.port, 'get', 16, 60000);
    const st = round === 1 && process.env.PERF ? spawn('perf', ['record', '-F', '1999', '-o', `/tmp/h3s36/tier-${k}.data`, '-p', String(pid)], { stdio: 'ignore' }) : null;
    if (st) await new Promise((r) => setTimeout(r, 500));
    const m0 = scrape(c[0]!.host);
    const c0 = c.map((n) => processCpuMs(n.child!.pid!, 100));
    const ops = rb(c[0]!.host, c[0]!.port, 'get', 16, 240000);
    const c1 = c.map((n) => processCpuMs(n.child!.pid!, 100));
    if (st) { st.kill('SIGINT'); await new Promise((r) => st.on('exit', r)); }
    const m1 = scrape(c[0]!.host);
    const d = (k: string) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
    const mb = (k: string) => ((m1.get(k) ?? 0) / 1048576).toFixed(1);
    if (process.env.DUMP) for (const [k2, v] of m1) { const dd = v - (m0.get(k2) ?? 0); if (dd !== 0 && !/bucket|_sum|seconds|heap_space|memory|rss|cpu|external|http|scrape/.test(k2)) console.log(`     ${k} ${k2} ${dd}`); }
    console.log(`   coord: new ${mb('nodejs_heap_space_size_total_bytes{space="new"}')} MB, old used ${mb('nodejs_heap_space_size_used_bytes{space="old"}')} MB of ${mb('nodejs_heap_space_size_total_bytes{space="old"}')}, minor ${d('nodejs_gc_duration_seconds_count{kind="minor"}')} (${(d('nodejs_gc_duration_seconds_sum{kind="minor"}') * 1000).toFixed(0)} ms), major ${d('nodejs_gc_duration_seconds_count{kind="major"}')} (${(d('nodejs_gc_duration_seconds_sum{kind="major"}') * 1000).toFixed(0)} ms), incremental ${d('nodejs_gc_duration_seconds_count{kind="incremental"}')}, trims ${m1.get('kvstore_heap_trims_total')}, rss ${((m1.get('nodejs_process_resident_memory_bytes') ?? m1.get('process_resident_memory_bytes') ?? 0) / 1048576).toFixed(0)}`);
    console.log(`round ${round} cluster ${k} pid ${pid}: ${ops} GET/s, us/GET ${c1.map((x, i) => ((x - c0[i]!) * 1000 / 240000).toFixed(2)).join(' ')}`);
  }
} finally { for (const c of clusters) await Promise.all(c.map(stopServer)); cleanupSync(); }
process.exit(0);
