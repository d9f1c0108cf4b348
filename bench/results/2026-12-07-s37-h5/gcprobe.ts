// Starts 3-node clusters two at a time (as bench/ab.ts does), GET P16 on each member 0 in turn,
// and per measured run prints each member's CPU and, from --trace-gc-nvp, its scavenges: count,
// pause ms, bytes survived and promoted per request. Usage:
//   node gcprobe.ts SCRIPT PAIRS [ROUNDS] [OUTDIR]   (OUTDIR: raw trace files per member)
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { CLUSTER_START_MS, startCluster } from '../../cluster.ts';
import { openInspector } from '../../inspector.ts';
import { cleanupSync, processCpuMs, type Server, stopServer, tempDir } from '../../procs.ts';

const [script, pairsArg, roundsArg, outDir] = process.argv.slice(2);
const pairs = Number(pairsArg ?? 1);
const rounds = Number(roundsArg ?? 3);
const keys = 100000;
const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const words = (s: string | undefined) => (s ?? '').split(' ').filter((f) => f !== '');
/** PROBE_NODE_ARGS: every cluster's node flags; PROBE_B_NODE_ARGS: the second of each pair's too. */
const extra = words(process.env.PROBE_NODE_ARGS);
const extraB = words(process.env.PROBE_B_NODE_ARGS);

interface HNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HNode[];
}
interface Acc {
  scav: number;
  pauseMs: number;
  promoted: number;
  survived: number;
  marks: number;
  markMs: number;
}
const zero = (): Acc => ({ scav: 0, pauseMs: 0, promoted: 0, survived: 0, marks: 0, markMs: 0 });

/** redis-benchmark, run async: a spawnSync would stop this process reading the nodes' traces. */
async function rb(host: string, port: number, op: string, pipeline: number, requests: number): Promise<number> {
  const args = ['-h', host, '-p', String(port), '-c', '50', '-P', String(pipeline)];
  args.push('-r', String(keys), '-d', '100', '-n', String(requests), '--csv', '-t', op);
  const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((res) => child.once('exit', res));
  const row = out.trim().split('\n').at(-1) ?? '';
  return Number(row.split(',')[1]?.replaceAll('"', ''));
}

let clusterNo = 0;
const root = tempDir(tmpdir(), 'kvstore-gcprobe-');
try {
  for (let p = 0; p < pairs; p++) {
    const clusters: { id: number; members: Server[]; accs: Acc[] }[] = [];
    for (let k = 0; k < 2; k++) {
      const id = clusterNo++;
      const members = await startCluster(root, 3, CLUSTER_START_MS, {
        script: resolve(script!),
        nodeArgs: ['--trace-gc-nvp', ...extra, ...(k === 1 ? extraB : [])],
        inspectPort: 9229,
      });
      const accs = members.map(() => zero());
      members.forEach((m, i) => {
        const file = outDir ? createWriteStream(`${outDir}/c${id}-m${i}.log`) : null;
        m.child!.stdout!.on('data', (d: Buffer) => {
          file?.write(d);
          for (const line of d.toString().split('\n')) {
            const g = /gc=(\w+)/.exec(line);
            if (!g) continue;
            const num = (k: string) => Number(new RegExp(`\\b${k}=([\\d.]+)`).exec(line)?.[1] ?? 0);
            const a = accs[i]!;
            if (g[1] === 's') {
              a.scav++;
              a.pauseMs += num('pause');
              a.promoted += num('promoted');
              a.survived += num('new_space_survived') || num('semi_space_copied');
            } else if (g[1] === 'mc' || g[1] === 'mmc') {
              a.marks++;
              a.markMs += num('pause');
            }
          }
        });
      });
      clusters.push({ id, members, accs });
      console.log(`cluster ${id}${k === 1 && extraB.length > 0 ? ` (${extraB.join(' ')})` : ''}: pids ${members.map((m) => m.child!.pid).join(' ')}`);
    }
    for (const c of clusters) await rb(c.members[0]!.host, c.members[0]!.port, 'set', 16, 4 * keys);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? clusters : [...clusters].reverse();
      for (const c of order) {
        const m0 = c.members[0]!;
        await rb(m0.host, m0.port, 'get', 16, 60000);
        const cpu0 = c.members.map((m) => processCpuMs(m.child!.pid, ticks));
        const a0 = c.accs.map((a) => ({ ...a }));
        const n = 240000;
        const sample = r === rounds - 1 ? await openInspector(9229, m0.host) : null;
        await sample?.call('HeapProfiler.startSampling', {
          samplingInterval: 8192,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: false,
        });
        const ops = await rb(m0.host, m0.port, 'get', 16, n);
        if (sample !== null) {
          const got = (await sample.call('HeapProfiler.stopSampling')) as { profile: { head: HNode } };
          sample.close();
          if (outDir) writeFileSync(`${outDir}/c${c.id}-m0.heapprofile`, JSON.stringify(got.profile));
          const by = new Map<string, number>();
          const walk = (node: HNode, parent: string) => {
            const f = node.callFrame;
            const here = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
            if (node.selfSize > 0) {
              const k = `${here} <- ${parent}`;
              by.set(k, (by.get(k) ?? 0) + node.selfSize);
            }
            for (const ch of node.children) walk(ch, here);
          };
          walk(got.profile.head, '');
          const top = [...by].sort((a, b) => b[1] - a[1]).slice(0, 20);
          console.log(`c${c.id} survivors of scavenges by site (B/request):`);
          for (const [k, v] of top) console.log(`  ${(v / n).toFixed(1)} ${k}`);
        }
        await new Promise((res) => setTimeout(res, 300));
        const cpu = c.members.map((m, i) => ((processCpuMs(m.child!.pid, ticks) - cpu0[i]!) * 1000) / n);
        const d = c.accs.map((a, i) => {
          const b = a0[i]!;
          return `${a.scav - b.scav}s ${((a.pauseMs - b.pauseMs) * 1000 / n).toFixed(2)}µs surv ${((a.survived - b.survived) / n).toFixed(0)}B prom ${((a.promoted - b.promoted) / n).toFixed(0)}B mc ${a.marks - b.marks}/${(a.markMs - b.markMs).toFixed(0)}ms`;
        });
        console.log(
          `c${c.id} r${r}: ${Math.round(ops)} ops/s, CPU ${cpu.map((x) => x.toFixed(1)).join(' / ')} µs/req | ${d.join(' | ')}`,
        );
      }
    }
    if (process.env.PROBE_HOLD) {
      console.log('holding 600 s');
      await new Promise((res) => setTimeout(res, 600_000));
    }
    for (const c of clusters) for (const m of c.members) await stopServer(m).catch(() => {});
  }
} finally {
  cleanupSync();
}
