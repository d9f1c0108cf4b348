import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { startCluster } from '../../cluster.ts';
import { cleanupSync, processCpuMs, stopServer, tempDir } from '../../procs.ts';
const [script, out] = process.argv.slice(2);
const root = tempDir(tmpdir(), 'h3-perf-');
function rb(host: string, port: number, op: string, p: number, n: number) {
  const o = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '-c', '50', '-P', String(p), '-r', '100000', '-d', '100', '-n', String(n), '--csv', '-t', op], { encoding: 'utf8' });
  return Number(o.stdout.trim().split('\n').at(-1)!.split(',')[1]!.replaceAll('"', ''));
}
const nodes = await startCluster(root, 3, 120000, { script, nodeArgs: ['--perf-basic-prof-only-functions'] });
try {
  rb(nodes[0]!.host, nodes[0]!.port, 'set', 16, 400000);
  rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, 240000);
  console.log('pids', nodes.map((n) => n.child!.pid).join(' '));
  const pids = nodes.map((n) => n.child!.pid).join(',');
  const st = spawn('perf', ['record', '-g', '-F', '1999', '-o', out!, '-p', pids], { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 700));
  const c0 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
  const ops = rb(nodes[0]!.host, nodes[0]!.port, 'get', 16, 480000);
  const c1 = nodes.map((n) => processCpuMs(n.child!.pid!, 100));
  st.kill('SIGINT');
  await new Promise((r) => st.on('exit', r));
  console.log('GET/s', ops, 'us/GET', c1.map((c, i) => ((c - c0[i]!) * 1000 / 480000).toFixed(2)).join(' '));
} finally { await Promise.all(nodes.map(stopServer)); cleanupSync(); }
process.exit(0);
