// Memory and restart probe: an empty node from the sources and compiled and a bare Node server, side by side; then N
// distinct 100-byte keys into one compiled node (what the image runs), RSS vs raw bytes, restart time.

import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { evaluateGoals, goalsTable, memoryLines } from './goals.ts';
import { memoryUsage, openInspector } from './inspector.ts';
import {
  cleanupSync,
  freePort,
  processCpuMs,
  processRss,
  type Rss,
  type Server,
  SINGLE_NODE_ARGS,
  startKvstore,
  startRedis,
  stopServer,
  waitForPong,
} from './procs.ts';
import { prefillRb } from './redisbench.ts';
import { loadAverage } from './report.ts';
import { rbKey, respCall } from './respload.ts';
import { buildCompiled, type EmptyNodeMemory, emptyNodeMemory } from './startup-memory.ts';
import { markdownTable } from './table.ts';

export interface MemoryResult {
  /** Empty nodes, `node src/main.ts` against the compiled main.js, alternating. */
  readonly emptyNode: EmptyNodeMemory;
  readonly keys: number;
  readonly valueBytes: number;
  /** Sum of key and value bytes: what the data is worth before any overhead. */
  readonly rawBytes: number;
  readonly loadMs: number;
  readonly dbsize: number;
  /** The fresh (compiled) node before the load: the process's fixed cost. */
  readonly empty: Rss;
  readonly afterLoad: Rss;
  /** `settleMs` after the load: once the node's CPU went quiet, 6 s more; the figure the goal uses. */
  readonly settled: Rss;
  readonly settleMs: number;
  /**
   * Diagnosis, not the goal: after a full GC forced over the inspector, and V8's heap then
   * (what the load left as garbage vs what the node keeps); null when the inspector failed.
   */
  readonly afterGc: {
    readonly rss: Rss;
    readonly heapTotal: number;
    readonly heapUsed: number;
    readonly heapTotalBefore: number;
    readonly heapUsedBefore: number;
  } | null;
  /**
   * Diagnosis, not the goal: RSS after glibc's `malloc_trim(0)` was called in the node over gdb
   * (after the forced GC): what the allocator kept of the memory the load freed. Null without gdb.
   */
  readonly afterMallocTrim: Rss | null;
  /** Bytes of the files in the node's data dir. */
  readonly dataDirBytes: number;
  /** SIGTERM to exit. */
  readonly stopMs: number;
  readonly restart: {
    /** Spawn to the `node listening` log line. */
    readonly listeningMs: number;
    /** Spawn to the first `+PONG` (polled every 5 ms). */
    readonly pingMs: number;
    readonly dbsize: number;
    /** A GET of the last key loaded returned the value. */
    readonly readBack: boolean;
    readonly rss: Rss;
  };
  /**
   * After one more SET, SIGKILL and a start again: the log to replay, and the LMDB tree and
   * free-list check every start after an unclean stop runs (docs/storage.md).
   */
  readonly crashRestart: {
    readonly listeningMs: number;
    readonly pingMs: number;
    readonly dbsize: number;
    /** The SET acknowledged just before the kill reads back. */
    readonly readBack: boolean;
  };
  /** The same keys in Redis without persistence, for reference. */
  readonly redis: { readonly rss: Rss; readonly usedMemory: number; readonly loadMs: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once the process used under 3% of a core in each of two 1 s samples in a row (the
 * heap trimmer's idleness, src/node/heap-trim.ts), or after 10 minutes; with the ms it waited.
 */
export async function quiet(pid: number | undefined): Promise<number> {
  const t0 = performance.now();
  let quietSamples = 0;
  let last = processCpuMs(pid, 100);
  while (quietSamples < 2 && performance.now() - t0 < 600_000) {
    await sleep(1000);
    const now = processCpuMs(pid, 100);
    quietSamples = now - last < 30 ? quietSamples + 1 : 0;
    last = now;
  }
  return performance.now() - t0;
}

/**
 * Calls glibc's `malloc_trim(0)` inside the process over gdb (which must be on PATH and allowed to
 * attach): it returns every free page of every malloc arena to the OS, which free() alone does only
 * for the top of each arena. The RSS after it, or null when gdb is missing or failed.
 */
function mallocTrim(pid: number | undefined): Rss | null {
  if (pid === undefined) return null;
  try {
    const call = ['-p', String(pid), '-batch', '-ex', 'call (int) malloc_trim(0)'];
    execFileSync('gdb', call, { stdio: 'ignore', timeout: 60_000 });
  } catch {
    return null;
  }
  return processRss(pid);
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}

async function load(server: Server, keys: number, valueBytes: number): Promise<number> {
  return (await prefillRb(server, keys, valueBytes)).ms;
}

async function dbsize(server: Server): Promise<number> {
  return Number(await respCall(server.host, server.port, ['DBSIZE'], 30_000));
}

/**
 * Over the inspector (Chrome DevTools Protocol): the process's `process.memoryUsage()`, a full
 * GC, the figures again.
 */
export async function forceGc(
  inspectPort: number,
): Promise<{ before: NodeJS.MemoryUsage; after: NodeJS.MemoryUsage }> {
  const inspector = await openInspector(inspectPort);
  try {
    const before = await memoryUsage(inspector);
    await inspector.call('HeapProfiler.collectGarbage');
    await sleep(500);
    return { before, after: await memoryUsage(inspector) };
  } finally {
    inspector.close();
  }
}

/** Starts the node with a fixed client port and times spawn -> `node listening` and -> PONG. */
async function timedStart(
  root: string,
  script: string,
  port: number,
  dir: string | undefined,
  nodeArgs: string[] = [],
) {
  const starting = startKvstore(root, {
    name: 'bench-memory',
    ports: [port, 0, 0],
    args: SINGLE_NODE_ARGS,
    nodeArgs,
    script,
    ...(dir === undefined ? {} : { dir }),
  });
  // The spawn happens synchronously inside startKvstore, so polling starts right after it.
  const pong = waitForPong(port, Date.now() + 60_000, '127.0.0.1', 5).then(() => performance.now());
  const [server, pongAt] = await Promise.all([starting, pong]);
  return { server, pingMs: pongAt - server.spawnedAt };
}

/** Loads `keys` keys into a fresh node, measures memory, restarts it; then Redis for reference. */
export async function memoryProbe(
  root: string,
  keys: number,
  valueBytes: number,
  log: (line: string) => void,
  emptyRounds = 3,
): Promise<MemoryResult> {
  const rawBytes = keys * (rbKey(0).length + valueBytes);
  log('memory: compiling the sources (scripts/build.ts) for the empty-node comparison');
  const script = buildCompiled(root);
  const unbundled = buildCompiled(root, false);
  log('memory: empty nodes, node src/main.ts against the compiled main.js, bundled and not');
  const emptyNode = await emptyNodeMemory(root, script, unbundled, emptyRounds);
  const port = await freePort();
  const inspectPort = await freePort();
  // The inspector only serves the diagnostic GC below; the restarted node runs without it.
  const inspect = [`--inspect=127.0.0.1:${inspectPort}`];
  let { server } = await timedStart(root, script, port, undefined, inspect);
  let restarted: Server | null = null;
  try {
    const empty = processRss(server.child.pid);
    log(`memory: loading ${keys.toLocaleString('en-US')} keys into a fresh node`);
    const loadMs = await load(server, keys, valueBytes);
    const size = await dbsize(server);
    if (size !== keys) throw new Error(`bench: DBSIZE ${size} after loading ${keys} keys`);
    const afterLoad = processRss(server.child.pid);
    // Acknowledged writes may still be committing to LMDB behind the write-ahead log (minutes
    // for 10M keys on a busy machine); the node trims its heap after one whole 2 s interval of
    // idleness (src/node/heap-trim.ts). So: wait for the node's CPU to go quiet, then 6 s more.
    const settleMs = (await quiet(server.child.pid)) + 6000;
    await sleep(6000);
    const settled = processRss(server.child.pid);
    let afterGc: MemoryResult['afterGc'] = null;
    try {
      const { before, after } = await forceGc(inspectPort);
      const rss = processRss(server.child.pid);
      afterGc = {
        rss,
        heapTotal: after.heapTotal,
        heapUsed: after.heapUsed,
        heapTotalBefore: before.heapTotal,
        heapUsedBefore: before.heapUsed,
      };
    } catch (err) {
      log(`memory: no forced GC (${err instanceof Error ? err.message : String(err)})`);
    }
    const afterMallocTrim = mallocTrim(server.child.pid);
    if (afterMallocTrim === null) log('memory: no malloc_trim diagnosis (gdb missing or failed)');
    const t0 = performance.now();
    await stopServer(server);
    const stopMs = performance.now() - t0;
    const dataDirBytes = dirBytes(server.dir);
    log('memory: restarting the node');
    const again = await timedStart(root, script, port, server.dir);
    restarted = again.server;
    const reply = await respCall('127.0.0.1', port, ['GET', rbKey(keys - 1)]);
    const restart = {
      listeningMs: restarted.readyMs,
      pingMs: again.pingMs,
      dbsize: await dbsize(restarted),
      readBack: typeof reply === 'string' && reply.length === valueBytes,
      rss: processRss(restarted.child.pid),
    };
    const crashKey = 'crash:last-write';
    if ((await respCall('127.0.0.1', port, ['SET', crashKey, 'v'])) !== 'OK')
      throw new Error('bench: SET before the crash was not OK');
    const killed = new Promise((res) => restarted?.child.once('exit', res));
    restarted.child.kill('SIGKILL');
    await killed;
    log('memory: restarting the node after SIGKILL');
    const third = await timedStart(root, script, port, server.dir);
    restarted = third.server;
    const crashRestart = {
      listeningMs: restarted.readyMs,
      pingMs: third.pingMs,
      dbsize: await dbsize(restarted),
      readBack: (await respCall('127.0.0.1', port, ['GET', crashKey])) === 'v',
    };
    await stopServer(restarted);
    server = restarted;
    log('memory: the same keys into Redis (no persistence) for reference');
    const redis = await startRedis(root, false);
    try {
      const redisLoadMs = await load(redis, keys, valueBytes);
      const info = String(await respCall(redis.host, redis.port, ['INFO', 'memory']));
      const usedMemory = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
      const redisResult = { rss: processRss(redis.child.pid), usedMemory, loadMs: redisLoadMs };
      const base = { emptyNode, keys, valueBytes, rawBytes, loadMs, dbsize: size, empty };
      const after = { afterLoad, settled, settleMs, afterGc, afterMallocTrim };
      return { ...base, ...after, dataDirBytes, stopMs, restart, crashRestart, redis: redisResult };
    } finally {
      await stopServer(redis);
    }
  } finally {
    await stopServer(server);
  }
}

/**
 * `node bench/memory.ts [--keys N] [--value-bytes N] [--rounds N] [--data-root DIR]`: the probe
 * alone (the 10M-key run takes many minutes and gigabytes, so `npm run bench` keeps 1M), with N
 * rounds of empty nodes (default 3), printed as Markdown with the load average before and after.
 */
async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      keys: { type: 'string', default: '1000000' },
      'value-bytes': { type: 'string', default: '100' },
      'data-root': { type: 'string', default: tmpdir() },
      rounds: { type: 'string', default: '3' },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(
      'Usage: node bench/memory.ts [--keys N] [--value-bytes N] [--rounds N] [--data-root DIR]\n' +
        '  The memory/restart probe alone (docs/memory.md): N keys (default 1000000),\n' +
        '  N rounds of empty nodes from the .ts, compiled (the image: bundled) and tsc-compiled not\n' +
        '  bundled, and a bare Node server (default 3), data\n' +
        '  under DIR (default the OS temp dir); needs redis-server; with gdb on PATH it also reports\n' +
        "  the RSS after glibc's malloc_trim(0) (a diagnosis).\n",
    );
    return;
  }
  const keys = Number(v.keys);
  const valueBytes = Number(v['value-bytes']);
  const rounds = Number(v.rounds);
  if (!(keys > 0 && valueBytes > 0 && rounds > 0))
    throw new Error('bench: --keys, --value-bytes and --rounds must be > 0');
  const t0 = performance.now();
  const say = (line: string) =>
    process.stderr.write(
      `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`,
    );
  const loadBefore = loadAverage();
  process.once('exit', cleanupSync);
  const m = await memoryProbe(resolve(v['data-root']), keys, valueBytes, say, rounds);
  const goals = evaluateGoals([], m).filter((g) => g.value !== null);
  const lines = [markdownTable(goalsTable(goals), 2), '', ...memoryLines(m), ''];
  lines.push(
    `Load average ${loadBefore.join(' ')} -> ${loadAverage().join(' ')}; ${new Date().toISOString()}, ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
