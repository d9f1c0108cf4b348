// Start K clusters of one build in turn; each: fill, GET P16 x2, per-GET CPU, metric deltas per node, CLUSTER json.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startCluster } from '/work/wt-h3/bench/cluster.ts';
import { cleanupSync, processCpuMs, processSyscalls, scrapeMetrics, stopServer, tempDir } from '/work/wt-h3/bench/procs.ts';
import { respCall } from '/work/wt-h3/bench/respload.ts';
import { tmpdir } from 'node:os';
const script = process.argv[2]!;
const K = Number(process.argv[3] ?? 3);
const extra = process.argv.slice(4);
const root = tempDir(tmpdir(), 'h3-repro-');
function rb(host: string, port: number, op: string, p: number, n: number) {
  const out = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-P', String(p), '-r', '100000', '-d', '100', '-n', String(n), '--csv', '-t', op], { encoding: 'utf8' });
  return Number(out.stdout.trim().split('\n').at(-1)!.split(',')[1]!.replaceAll('"', ''));
}
const scrape = (host: string) => { const t = spawnSync('curl', ['-s', `http://${host}:9090/metrics`], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout; const out = new Map<string, number>(); for (const line of t.split('\n')) { const m = /^(kvstore_[a-z_0-9]+(?:\{[^}]*\})?) ([\d.e+-]+)$/.exec(line); if (m) out.set(m[1]!, Number(m[2])); } return out; };
const seqScrape = async (nodes: any[]) => nodes.map((n) => scrape(n.host));
const ctx = (pid: number) => { const t = readFileSync(`/proc/${pid}/status`, 'latin1'); return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(t)![1]); };
for (let k = 0; k < K; k++) {
  const nodes = await startCluster(root, 3, 120000, { script, args: extra });
  try {
    const info = await respCall(nodes[0]!.host, nodes[0]!.port, ['CLUSTER']);
    console.log(`cluster ${k}: ${String(info)}`);
    rb(nodes[0]!.host, nodes[0]!.port, 'set', 16, 400000);
    for (let r = 0; r < Number(process.env.RUNS ?? 3); r++) {
      const m0 = await seqScrape(nodes);
      const c0 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      const x0 = nodes.map((n) => ctx(n.child!.pid!));
      const s0 = nodes.map((n) => processSyscalls(n.child!.pid!));
      const N = 240000;
      const ops = rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, N);
      const c1 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
      const x1 = nodes.map((n) => ctx(n.child!.pid!));
      const s1 = nodes.map((n) => processSyscalls(n.child!.pid!));
      const m1 = await seqScrape(nodes);
      const sp = (m: Map<string, number>[]) => m.reduce((s, x) => s + (x.get('kvstore_read_speculations_total') ?? 0), 0); const gm = (m: Map<string, number>[]) => m.reduce((s, x) => s + (x.get('kvstore_peer_requests_sent_total{method="getMany"}') ?? 0), 0);
      console.log(`cluster ${k} run ${r}: ${ops} GET/s, spec/GET ${((sp(m1) - sp(m0)) / N).toFixed(4)}, getMany/GET ${((gm(m1) - gm(m0)) / N).toFixed(4)}, cpu us/GET per node ${c1.map((c, i) => ((c - c0[i]!) * 1000 / N).toFixed(2)).join(' ')}, volcs/GET ${x1.map((c, i) => ((c - x0[i]!) / N).toFixed(3)).join(' ')}, syscalls/GET ${s1.map((c, i) => ((c - s0[i]!) / N).toFixed(3)).join(' ')}`);
      if (r === 1 && process.env.DUMP) for (let i = 0; i < 3; i++) for (const [key, v] of m1[i]!) { const d = v - (m0[i]!.get(key) ?? 0); if (d !== 0 && !/bucket|_sum|seconds|bytes_allocated|heap|memory|rss|cpu/.test(key)) console.log(`  n${i} ${key} ${d} (${(d / N).toFixed(4)}/GET)`); }
    }
  } finally { await Promise.all(nodes.map(stopServer)); }
}
cleanupSync();
process.exit(0);
