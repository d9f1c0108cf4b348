// `node bench/restart-ab.ts --a SCRIPT --b SCRIPT`: the restart cells of `npm run bench` (spawn to
// PONG, clean stop and after SIGKILL) for two builds on one data directory, alternating, so the
// machine's load moves both: how a change of the start path is measured on a shared machine.

import { spawnSync } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { median } from './ab-plan.ts';
import {
  cleanupSync,
  freePort,
  processCpuMs,
  type Server,
  SINGLE_NODE_ARGS,
  startKvstore,
  stopServer,
  waitForPong,
} from './procs.ts';
import { prefillRb } from './redisbench.ts';
import { respCall } from './respload.ts';

const USAGE = `Usage: node bench/restart-ab.ts --a SCRIPT --b SCRIPT [options]
  --a, --b SCRIPT   the node entry points (e.g. a compiled OTHER/dist/src/main.js of each tree)
  --a-args S, --b-args S
                    kvstore flags for that target, space-separated (e.g. --b-args
                    '--storage-stall-timeout-ms 0': the start without the watchdog)
  --rounds N        rounds (default 10); each restarts A and B, every other round B first
  --keys N          keys loaded once before the rounds (default 100000, 100 B values)
Each restart is timed from the spawn to the first PONG (as the bench's restart goal), after a
clean stop (SIGTERM) and after SIGKILL of a node that just took a write, with the CPU time the
process had used by then (all threads). Prints every restart, then per cell the medians, B/A of
the medians and the median of the per-round ratios.`;

const { values: o } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string' },
    'a-args': { type: 'string', default: '' },
    'b-args': { type: 'string', default: '' },
    rounds: { type: 'string', default: '10' },
    keys: { type: 'string', default: '100000' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help || !o.a || !o.b) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(o.help ? 0 : 2);
}

const root = tmpdir();
const split = (s: string) => s.split(' ').filter((w) => w !== '');
const targets = [
  { name: 'A', script: o.a, args: split(o['a-args']) },
  { name: 'B', script: o.b, args: split(o['b-args']) },
] as const;
type Target = (typeof targets)[number];

const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/**
 * Starts `t` on `dir` and times spawn -> PONG, with the CPU time its process had used then (all
 * its threads: what a CPU-limited pod pays for the start, whatever the machine's load).
 */
async function timed(t: Target, dir: string | undefined, port: number) {
  const starting = startKvstore(root, {
    name: `restart-${t.name}`,
    ports: [port, 0, 0],
    args: [...SINGLE_NODE_ARGS, ...t.args],
    script: t.script,
    ...(dir === undefined ? {} : { dir }),
  });
  const pong = waitForPong(port, Date.now() + 60_000, '127.0.0.1', 5).then(() => performance.now());
  const [server, at] = await Promise.all([starting, pong]);
  return { server, ms: at - server.spawnedAt, cpuMs: processCpuMs(server.child.pid, ticks) };
}

async function killed(server: Server): Promise<void> {
  const exited = new Promise((res) => server.child.once('exit', res));
  server.child.kill('SIGKILL');
  await exited;
}

async function main(): Promise<void> {
  const port = await freePort();
  // One data directory each, loaded once by its own build.
  const dirs = new Map<string, string>();
  for (const t of targets) {
    const { server } = await timed(t, undefined, port);
    await prefillRb(server, Number(o.keys), 100);
    await stopServer(server);
    dirs.set(t.name, server.dir);
  }
  const cells = ['clean', 'SIGKILL'] as const;
  const ms: Record<string, Record<string, number[]>> = {
    A: { clean: [], SIGKILL: [] },
    B: { clean: [], SIGKILL: [] },
  };
  const cpu: Record<string, Record<string, number[]>> = {
    A: { clean: [], SIGKILL: [] },
    B: { clean: [], SIGKILL: [] },
  };
  for (let r = 0; r < Number(o.rounds); r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    const load = loadavg()[0]!.toFixed(2);
    for (const t of order) {
      const dir = dirs.get(t.name)!;
      const clean = await timed(t, dir, port);
      ms[t.name]!.clean!.push(clean.ms);
      cpu[t.name]!.clean!.push(clean.cpuMs);
      await fetchSet(clean.server);
      await killed(clean.server);
      const crash = await timed(t, dir, port);
      ms[t.name]!.SIGKILL!.push(crash.ms);
      cpu[t.name]!.SIGKILL!.push(crash.cpuMs);
      await stopServer(crash.server);
      process.stdout.write(
        `round ${r + 1} load ${load} ${t.name}: clean ${clean.ms.toFixed(0)} ms (CPU ${clean.cpuMs.toFixed(0)} ms), ` +
          `SIGKILL ${crash.ms.toFixed(0)} ms (CPU ${crash.cpuMs.toFixed(0)} ms)\n`,
      );
    }
  }
  for (const c of cells) {
    for (const [what, of] of [
      ['spawn to PONG', ms],
      ['CPU to PONG', cpu],
    ] as const) {
      const a = of.A![c]!;
      const b = of.B![c]!;
      const ratios = a.map((x, i) => b[i]! / x);
      process.stdout.write(
        `${c}, ${what}: A median ${median(a).toFixed(0)} ms, B median ${median(b).toFixed(0)} ms, ` +
          `B/A ${(median(b) / median(a)).toFixed(2)}, median per-round B/A ${median(ratios).toFixed(2)}\n`,
      );
    }
  }
}

/** A write, so the SIGKILL restart has a log to replay (as the bench's crash cell). */
async function fetchSet(server: Server): Promise<void> {
  const reply = await respCall(server.host, server.port, ['SET', 'crash:last-write', 'v']);
  if (reply !== 'OK') throw new Error(`bench: SET before the crash: ${String(reply)}`);
}

main().then(
  () => cleanupSync(),
  (err: unknown) => {
    cleanupSync();
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
