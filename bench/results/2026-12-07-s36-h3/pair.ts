// Like bench/ab.ts: two clusters of one build alive at once; fill both; alternate GET P16 runs.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startCluster } from '../../cluster.ts';
import { cleanupSync, processCpuMs, processSyscalls, stopServer, tempDir } from '../../procs.ts';
const scripts = [process.argv[2]!, process.argv[3] ?? process.argv[2]!];
const P = Number(process.env.PAIRS ?? 1), RUNS = Number(process.env.RUNS ?? 3);
const root = tempDir(tmpdir(), 'h3-pair-');
function rb(host: string, port: number, op: string, p: number, n: number) {
  const out = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-P', String(p), '-r', '100000', '-d', '100', '-n', String(n), '--csv', '-t', op], { encoding: 'utf8' });
  return Number(out.stdout.trim().split('\n').at(-1)!.split(',')[1]!.replaceAll('"', ''));
}
const scrape = (host: string) => { const t = spawnSync('curl', ['-s', `http://${host}:9090/metrics`], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout; const out = new Map<string, number>(); for (const line of t.split('\n')) { const m = /^((?:kvstore|nodejs)_[a-z_0-9]+(?:\{[^}]*\})?) ([\d.e+-]+)$/.exec(line); if (m) out.set(m[1]!, Number(m[2])); } return out; };
const ctx = (pid: number) => { const t = readFileSync(`/proc/${pid}/status`, 'latin1'); return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(t)![1]); };
const sum = (ms: Map<string, number>[], k: string) => ms.reduce((s, m) => s + (m.get(k) ?? 0), 0);
for (let p = 0; p < P; p++) {
  const clusters = [];
  for (const s of scripts) clusters.push(await startCluster(root, 3, 120000, { script: s }));
  try {
    for (const c of clusters) rb(c[0]!.host, c[0]!.port, 'set', 16, 400000);
    for (let r = 0; r < RUNS; r++) for (let ci = 0; ci < 2; ci++) {
      const nodes = clusters[r % 2 ? 1 - ci : ci]!; const name = r % 2 ? 1 - ci : ci;
      const i0 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      await new Promise((res) => setTimeout(res, Number(process.env.IDLE ?? 2000)));
      const i1 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, 60000);
      const m0 = nodes.map((n) => scrape(n.host));
      const c0 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      const x0 = nodes.map((n) => ctx(n.child!.pid!));
      const s0 = nodes.map((n) => processSyscalls(n.child!.pid!));
      const N = 240000;
      const ops = rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, N);
      const c1 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      const x1 = nodes.map((n) => ctx(n.child!.pid!));
      const s1 = nodes.map((n) => processSyscalls(n.child!.pid!));
      const m1 = nodes.map((n) => scrape(n.host));
      const d = (k: string) => ((sum(m1, k) - sum(m0, k)) / N).toFixed(4);
      console.log(`pair ${p} cl ${name} run ${r}: ${ops} GET/s, total ${((c1.reduce((a, b) => a + b) - c0.reduce((a, b) => a + b)) * 1000 / N).toFixed(2)} us/GET [${c1.map((c, i) => ((c - c0[i]!) * 1000 / N).toFixed(2)).join(' ')}], idle ms/s ${i1.map((c, i) => ((c - i0[i]!) / 2).toFixed(0)).join(' ')}, spec ${d('kvstore_read_speculations_total')} getMany ${d('kvstore_peer_requests_sent_total{method="getMany"}')} other ${d('kvstore_replica_reads_total{replica="other"}')} volcs ${x1.map((c, i) => ((c - x0[i]!) / N).toFixed(3)).join(' ')} sys ${s1.map((c, i) => ((c - s0[i]!) / N).toFixed(3)).join(' ')}`);
      const g = (i: number, k: string) => (m1[i]!.get(k) ?? 0) - (m0[i]!.get(k) ?? 0);
      console.log(`   newspace MB ${m1.map((m) => ((m.get('nodejs_heap_space_size_total_bytes{space="new"}') ?? 0) / 1048576).toFixed(1)).join(' ')} minorGC/1kGET ${[0, 1, 2].map((i) => (g(i, 'nodejs_gc_duration_seconds_count{kind="minor"}') * 1000 / N).toFixed(2)).join(' ')} minorGC s/GET us ${[0, 1, 2].map((i) => (g(i, 'nodejs_gc_duration_seconds_sum{kind="minor"}') * 1e6 / N).toFixed(2)).join(' ')} trims ${m1.map((m) => m.get('kvstore_heap_trims_total') ?? 0).join(' ')}`);
      if (process.env.DUMP) for (let i = 0; i < 3; i++) for (const [key, v] of m1[i]!) { const dd = v - (m0[i]!.get(key) ?? 0); if (dd !== 0 && !/bucket|_sum|seconds|bytes_allocated|heap|memory|rss|cpu/.test(key)) console.log(`  n${i} ${key} ${dd}`); }
    }
  } finally { for (const c of clusters) await Promise.all(c.map(stopServer)); }
}
cleanupSync();
process.exit(0);
