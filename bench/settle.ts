// `node bench/settle.ts`: how a fresh 3-node cluster's CPU per request falls over its first
// windows of load (V8 compiling its code), which sets the etcd comparison's --settle-s.

import { loadavg, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CLUSTER_START_MS, startCluster } from './cluster.ts';
import { storeload, storeloadBinary } from './etcd.ts';
import { cleanupSync, positiveInt, stopServer, tempDir } from './procs.ts';
import { threadTicks } from './profile.ts';

const USAGE = `Usage: node bench/settle.ts [options]
Starts a 3-node cluster (RF=3, W=2, R=2), fills it as the etcd comparison does (storeload), then
runs storeload's puts and gets in turn, --windows times each, and prints per window the ops/s,
the p99 and the CPU per request of the three nodes, by thread group (main thread, libuv pool, V8
workers: compilers and GC).
  --script PATH   the node entry point (default src/main.ts)
  --windows N     windows of each op (default 5)
  --window-s N    seconds per window (default 5)
  --keys N        key space (default 100000), 100-byte values, 50 clients`;

const { values: o } = parseArgs({
  options: {
    script: { type: 'string', default: 'src/main.ts' },
    windows: { type: 'string', default: '5' },
    'window-s': { type: 'string', default: '5' },
    keys: { type: 'string', default: '100000' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const windows = positiveInt('bench/settle', 'windows', o.windows);
const root = tempDir(tmpdir(), 'kvstore-settle-');
const nodes = await startCluster(root, 3, CLUSTER_START_MS, { script: resolve(o.script) });
try {
  const bin = await storeloadBinary();
  const run = {
    dataRoot: root,
    clients: 50,
    keys: positiveInt('bench/settle', 'keys', o.keys),
    valueBytes: 100,
    durationS: positiveInt('bench/settle', 'window-s', o['window-s']),
    warmupS: 0,
  };
  await storeload(bin, 'kvstore', nodes, 'fill', run);
  const pids = nodes.map((n) => n.child!.pid!);
  const ticksPerSecond = 100;
  for (let w = 0; w < windows; w++) {
    for (const op of ['put', 'get'] as const) {
      const before = pids.map(threadTicks);
      const load = loadavg()[0]!.toFixed(1);
      const { result } = await storeload(bin, 'kvstore', nodes, op, run);
      const groups = new Map<string, number>();
      pids.map(threadTicks).forEach((after, i) => {
        for (const [group, t] of after) {
          const b = before[i]!.get(group) ?? { user: 0, system: 0 };
          const ticks = t.user + t.system - b.user - b.system;
          groups.set(group, (groups.get(group) ?? 0) + ticks);
        }
      });
      const us = (ticks: number) => ((ticks * 1e6) / ticksPerSecond / result.requests).toFixed(1);
      const total = [...groups.values()].reduce((x, y) => x + y, 0);
      const parts = [...groups].map(([g, t]) => `${g.split(' (')[0]} ${us(t)}`).join(', ');
      console.log(
        `window ${w} ${op}: ${Math.round(result.opsPerSec)} ops/s, p99 ${result.latencyMs.p99.toFixed(2)} ms, load ${load}; CPU per request ${us(total)} µs (${parts})`,
      );
    }
  }
} finally {
  for (const n of nodes) await stopServer(n).catch(() => {});
  cleanupSync();
}
