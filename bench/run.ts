// `npm run bench`: kvstore vs Redis side by side (redis-benchmark, text cells, memory); one report.

import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.ts';
import { type EtcdComparison, etcdComparison, etcdSection } from './etcd.ts';
import { evaluateGoals, renderHeadline, TARGET_LABELS } from './goals.ts';
import { writeHistory } from './history.ts';
import { type MemoryResult, memoryProbe } from './memory.ts';
import {
  cleanupSync,
  fsyncProbe,
  ROOT,
  type Server,
  SINGLE_NODE_ARGS,
  startKvstore,
  startRedis,
  stopServer,
} from './procs.ts';
import { type GoalProfiles, profileFailingGoals, profilesSection } from './profile.ts';
import {
  prefillRb,
  type RbCell,
  type RbCellResult,
  type RbMeasurement,
  type RbTarget,
  type RbTargetName,
  runRbCells,
} from './redisbench.ts';
import {
  type CellResult,
  loadAverage,
  machineInfo,
  type Report,
  renderTextTables,
  reportStamp,
  TARGETS,
  type TargetName,
  writeReport,
} from './report.ts';
import { checkGenerator, fill, LoadWorker, runCells } from './textcells.ts';

const USAGE = `Usage: node bench/run.ts [options]
  --duration-s N     measured seconds per cell and server (default 5; --quick: 1); redis-benchmark
                     runs are sized to it after short warm-up runs
  --warmup-s N       unmeasured seconds before each text cell (default 1; --quick: 0.25)
  --settle-s N       the etcd comparison: seconds of puts, then of gets, each store runs
                     unmeasured before its first cell (default 15; --quick: 0)
  --keys N           key space of every cell, pre-filled everywhere; redis-benchmark -r
                     (default 100000; --quick: 10000)
  --value-bytes N    value size in bytes (default 100)
  --clients N        redis-benchmark connections (default 50)
  --workers N        text load generator threads (default 2)
  --memory-keys N    keys for the memory/restart probe (default 1000000)
  --out DIR          where the reports go (default bench/results)
  --data-root DIR    where temp data dirs are made (default the OS temp dir)
  --quick            a smoke test: short runs, 4 text cells instead of 8, no generator check,
                     no memory probe
  --skip-memory      skip the memory/restart probe
  --skip-text        skip the text-protocol cells (and the generator check)
  --skip-etcd        skip the 3-node comparison with etcd (bench/etcd.ts; it builds etcd and
                     bench/storeload with Go the first time)
  --no-crosscheck    skip the generator check (redis-benchmark vs this harness on Redis)
  --skip-profiles    do not profile the failing goals' cells (bench/profile.ts; after the
                     measured cells, each failing goal's kvstore cell runs again under V8's
                     profiler, about --duration-s + 5 s a cell)
  --help             print this text`;

interface Options {
  readonly durationS: number;
  readonly warmupS: number;
  readonly settleS: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly clients: number;
  readonly workers: number;
  readonly memoryKeys: number;
  readonly out: string;
  readonly dataRoot: string;
  readonly quick: boolean;
  readonly memory: boolean;
  readonly text: boolean;
  readonly crosscheck: boolean;
  readonly etcd: boolean;
  readonly profiles: boolean;
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n > 0) || !Number.isFinite(n))
    throw new Error(`bench: --${name} must be a positive number, got '${raw}'`);
  return n;
}

function parseOptions(argv: string[]): Options | null {
  const flag = { type: 'boolean', default: false } as const;
  const { values: v } = parseArgs({
    args: argv,
    options: {
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      'settle-s': { type: 'string' },
      keys: { type: 'string' },
      'value-bytes': { type: 'string' },
      clients: { type: 'string' },
      workers: { type: 'string' },
      'memory-keys': { type: 'string' },
      out: { type: 'string' },
      'data-root': { type: 'string' },
      quick: flag,
      'skip-memory': flag,
      'skip-text': flag,
      'skip-etcd': flag,
      'no-crosscheck': flag,
      'skip-profiles': flag,
      help: flag,
    },
  });
  if (v.help) return null;
  const quick = v.quick === true;
  const text = v['skip-text'] !== true;
  return {
    durationS: positive('duration-s', v['duration-s'], quick ? 1 : 5),
    warmupS: positive('warmup-s', v['warmup-s'], quick ? 0.25 : 1),
    settleS: v['settle-s'] === '0' ? 0 : positive('settle-s', v['settle-s'], quick ? 0 : 15),
    keys: Math.floor(positive('keys', v.keys, quick ? 10_000 : 100_000)),
    valueBytes: Math.floor(positive('value-bytes', v['value-bytes'], 100)),
    clients: Math.floor(positive('clients', v.clients, 50)),
    workers: Math.floor(positive('workers', v.workers, 2)),
    memoryKeys: Math.floor(positive('memory-keys', v['memory-keys'], 1_000_000)),
    out: resolve(v.out ?? join(ROOT, 'bench/results')),
    dataRoot: resolve(v['data-root'] ?? tmpdir()),
    quick,
    memory: !quick && v['skip-memory'] !== true,
    text,
    crosscheck: text && !quick && v['no-crosscheck'] !== true,
    etcd: v['skip-etcd'] !== true,
    profiles: v['skip-profiles'] !== true,
  };
}

const t0 = performance.now();
/** A progress line on stderr, stamped with the seconds since the start. */
const say = (line: string) =>
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);

function rbProgress(cell: RbCell, name: RbTargetName, m: RbMeasurement): void {
  const what = `${cell.op.toUpperCase()} P${String(cell.pipeline).padEnd(2)} ${TARGET_LABELS[name].padEnd(29)}`;
  const err = m.error === null ? '' : ` ERRORS (${m.error})`;
  say(
    `${what} ${Math.round(m.rps).toLocaleString('en-US').padStart(9)} ops/s p50 ${m.p50Ms} ms p99 ${m.p99Ms} ms (${m.requests} requests, ${(m.wallMs / 1000).toFixed(1)} s)${err}`,
  );
}

/** Phase 1: the redis-benchmark workload on the three Redis targets, one node and a cluster. */
async function redisBenchmarkPhase(
  servers: Map<TargetName, Server>,
  opts: Options,
): Promise<RbCellResult[]> {
  say('starting a 3-node kvstore cluster (RF=3, W=2, R=2)');
  const cluster = await startCluster(opts.dataRoot);
  // Only these cells use Redis with appendfsync always: the same guarantee as kvstore's OK.
  const always = await startRedis(opts.dataRoot, true, 'always').catch(async (err: unknown) => {
    await Promise.all(cluster.map(stopServer));
    throw err;
  });
  try {
    const single = (name: TargetName, as: RbTargetName): RbTarget => {
      const s = servers.get(name)!;
      return { name: as, host: s.host, port: s.port, pids: [s.child.pid!] };
    };
    const targets: RbTarget[] = [
      single('redis', 'redis'),
      single('redis-aof', 'redis-aof'),
      { name: 'redis-always', host: always.host, port: always.port, pids: [always.child.pid!] },
      single('kvstore', 'kvstore'),
      {
        name: 'cluster',
        host: cluster[0]!.host,
        port: cluster[0]!.port,
        pids: cluster.map((n) => n.child.pid!),
      },
    ];
    for (const t of targets) {
      say(`filling ${TARGET_LABELS[t.name]} with ${opts.keys} redis-benchmark keys`);
      await prefillRb(t, opts.keys, opts.valueBytes);
    }
    const rbOpts = {
      clients: opts.clients,
      keys: opts.keys,
      valueBytes: opts.valueBytes,
      durationS: opts.durationS,
      // A smoke test needs one short run per cell, not a measurement.
      fixedRequests: opts.quick ? 4 : null,
    };
    return await runRbCells(targets, rbOpts, rbProgress);
  } finally {
    await Promise.all([...cluster, always].map(stopServer));
  }
}

/** Phase 2: the text-protocol generator cells (issue 2) and the generator check. */
async function textPhase(
  servers: Map<TargetName, Server>,
  opts: Options,
): Promise<{ cells: CellResult[]; checks: string[] }> {
  if (!opts.text) return { cells: [], checks: [] };
  const workers: LoadWorker[] = [];
  try {
    for (let i = 0; i < opts.workers; i++)
      workers.push(new LoadWorker({ keys: opts.keys, valueBytes: opts.valueBytes }));
    for (const t of TARGETS) {
      say(`filling ${t} with ${opts.keys} text-cell keys`);
      await fill(workers, servers.get(t)!, opts.keys);
    }
    const cells = await runCells(workers, servers, opts);
    const checks = await checkGenerator(workers, servers.get('redis')!, cells, opts);
    return { cells, checks };
  } finally {
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}

/** Both Redis tools are required: the comparison is the point (Debian redis-server, redis-tools). */
function requireRedisTools(): void {
  for (const tool of ['redis-server', 'redis-benchmark']) {
    if (spawnSync(tool, ['--version']).status !== 0)
      throw new Error(`bench: ${tool} not found; install Debian's redis-server and redis-tools`);
  }
}

async function bench(opts: Options): Promise<void> {
  requireRedisTools();
  const startedAt = new Date().toISOString();
  const machine = machineInfo(opts.dataRoot, ROOT);
  const fsyncAtStart = fsyncProbe(opts.dataRoot);
  const m = machine;
  say(
    `${m.cpuModel} x${m.nproc}, node ${m.node}, redis ${m.redis}, data on ${m.dataFs}, fsync p50 ${fsyncAtStart.p50Us} µs p99 ${fsyncAtStart.p99Us} µs, load ${m.loadAvgAtStart.join(' ')}`,
  );
  const servers = new Map<TargetName, Server>();
  try {
    servers.set('kvstore', await startKvstore(opts.dataRoot, { args: SINGLE_NODE_ARGS }));
    servers.set('redis', await startRedis(opts.dataRoot, false));
    servers.set('redis-aof', await startRedis(opts.dataRoot, true));
    const rb = await redisBenchmarkPhase(servers, opts);
    const { cells, checks } = await textPhase(servers, opts);
    await Promise.all([...servers.values()].map(stopServer));
    let etcd: EtcdComparison | null = null;
    if (opts.etcd) etcd = await etcdComparison(opts, say);
    let memory: MemoryResult | null = null;
    if (opts.memory)
      memory = await memoryProbe(opts.dataRoot, opts.memoryKeys, opts.valueBytes, say);
    const goals = evaluateGoals(rb, memory);
    let profiles: GoalProfiles | null = null;
    if (opts.profiles) {
      const failing = [...goals, ...(etcd?.goals ?? [])];
      profiles = await profileFailingGoals(
        failing,
        { ...opts, stamp: reportStamp(startedAt), durationS: opts.quick ? 0.5 : opts.durationS },
        say,
      );
    }
    const report: Report = {
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { ...opts },
      machine,
      rb,
      goals,
      etcd,
      memory,
      profiles,
      cells,
      crosscheck: checks,
      conditions: {
        fsyncAtStart,
        fsyncAtEnd: fsyncProbe(opts.dataRoot),
        loadAvgAtEnd: loadAverage(),
      },
    };
    const text = cells.length > 0 ? `\n\n${renderTextTables(cells)}` : '';
    const etcdText = etcd === null ? '' : `\n\n${etcdSection(etcd).join('\n')}`;
    const profileText = profiles === null ? '' : `\n\n${profilesSection(profiles).join('\n')}`;
    const c = report.conditions;
    const conditions = `load ${m.loadAvgAtStart.join(' ')} -> ${c.loadAvgAtEnd.join(' ')}; fsync p50/p99 ${fsyncAtStart.p50Us}/${fsyncAtStart.p99Us} µs -> ${c.fsyncAtEnd.p50Us}/${c.fsyncAtEnd.p99Us} µs`;
    process.stdout.write(
      `\n${renderHeadline(rb, goals, memory)}${etcdText}${text}${profileText}\n\n${checks.join('\n')}\n${conditions}\n`,
    );
    process.stdout.write(`\nreport: ${writeReport(report, opts.out)}\n`);
    process.stdout.write(`history: ${writeHistory(opts.out)}\n`);
    const textErrors = cells.some((x) => TARGETS.some((t) => x.results[t].errors > 0));
    const rbErrors = rb.some((x) => Object.values(x.results).some((r) => r.error !== null));
    const etcdErrors =
      etcd !== null && (etcd.error !== null || etcd.cells.some((x) => x.result.errors > 0));
    if (textErrors || rbErrors || etcdErrors) process.exitCode = 1;
  } finally {
    await Promise.all([...servers.values()].map(stopServer));
    cleanupSync();
  }
}

function main(): void {
  let opts: Options | null;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    say(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (opts === null) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`bench: ${signal}, cleaning up`);
      cleanupSync();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
  process.once('exit', cleanupSync);
  bench(opts).catch((err: unknown) => {
    say(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  });
}

main();
