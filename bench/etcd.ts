// The 3-node comparison with etcd (issue 17): three etcd members and three kvstore nodes on their
// own loopback addresses, both driven by the same Go load generator (bench/storeload).

import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { runBuildScript } from '../test/helpers/build-script.ts';
import { buildTools } from '../test/k8s/tools.ts';
import { loopbackBlock, startCluster } from './cluster.ts';
import { type Goal, goalsTable, ratioGoal } from './goals.ts';
import { processCpuMs, type Server, stopServer, tempDir, track } from './procs.ts';
import { loadAverage } from './report.ts';
import { markdownTable, ms, num, ratio } from './table.ts';

const execFileAsync = promisify(execFile);
const START_TIMEOUT_MS = 60_000;

export type StoreName = 'kvstore' | 'etcd';
export type StoreOp = 'put' | 'get' | 'get-serializable';

/** What storeload prints (bench/storeload/main.go). */
export interface StoreloadResult {
  readonly store: StoreName;
  readonly op: StoreOp | 'fill';
  readonly clients: number;
  /** Connections the clients share: etcd one per member (gRPC multiplexes), kvstore one each. */
  readonly connections: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly windowS: number;
  readonly requests: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly misses: number;
  readonly opsPerSec: number;
  readonly latencyMs: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
}

export interface StoreCell {
  readonly store: StoreName;
  readonly op: StoreOp;
  readonly result: StoreloadResult;
  /** CPU of the store's three processes over the whole storeload run, percent of one core. */
  readonly serverCpuPct: number;
  /** 1-minute load average just before the run. */
  readonly loadBefore: number;
}

export interface EtcdComparison {
  readonly etcdVersion: string;
  readonly clients: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Seconds of puts, then of gets, each store ran unmeasured before its first cell. */
  readonly settleS: number;
  /** Seconds to write the key space once into each store (batches of 100). */
  readonly fillS: Record<StoreName, number>;
  readonly cells: readonly StoreCell[];
  readonly goals: readonly Goal[];
  readonly loadAvgAtStart: readonly number[];
  readonly loadAvgAtEnd: readonly number[];
  /** Why the comparison stopped early (the cells before it are kept); null when it ran through. */
  readonly error: string | null;
}

export interface EtcdOptions {
  readonly dataRoot: string;
  readonly clients: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly durationS: number;
  readonly warmupS: number;
  /**
   * Seconds of puts, then as many of gets, that each store runs unmeasured after its fill and
   * before its first cell (default 0): a node's code is still being compiled by V8 in its first
   * tens of seconds of load (see settle()).
   */
  readonly settleS?: number;
}

/** The order the cells run in: each store's writes, then reads, alternating stores. */
const PLAN: readonly [StoreName, StoreOp][] = [
  ['etcd', 'put'],
  ['kvstore', 'put'],
  ['kvstore', 'get'],
  ['etcd', 'get'],
  ['etcd', 'get-serializable'],
];

/** storeload from its source-keyed cache (bench/storeload/build.sh builds it the first time). */
export async function storeloadBinary(): Promise<string> {
  const stdout = await runBuildScript('bench/storeload/build.sh', 15 * 60_000);
  const line = stdout.split('\n').find((l) => l.startsWith('storeload='));
  if (line === undefined) throw new Error('bench: bench/storeload/build.sh printed no storeload=');
  return line.slice('storeload='.length);
}

/** etcd v3.7.3 as the Kubernetes tests find it: test/k8s/build-tools.sh's cache. */
export async function etcdBinary(): Promise<string> {
  const { bins } = await buildTools(['etcd'] as const);
  return bins.etcd;
}

interface Member {
  readonly server: Server;
  readonly clientUrl: string;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    return r.ok && (await r.text()).includes('"true"');
  } catch {
    return false;
  }
}

/**
 * Three members on 127.x.y.1-3 (client port 2379, peer port 2380), durable (etcd's defaults: the
 * WAL fsynced before a proposal is acknowledged), data dirs under `root`; resolves once every
 * member reports healthy (it has a leader).
 */
export async function startEtcd(bin: string, root: string): Promise<Member[]> {
  const block = loopbackBlock();
  const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
  const initial = hosts.map((h, i) => `etcd-${i}=http://${h}:2380`).join(',');
  const members: Member[] = [];
  const failures: Promise<never>[] = [];
  for (const [i, host] of hosts.entries()) {
    const dir = tempDir(root, 'etcd-bench-');
    const clientUrl = `http://${host}:2379`;
    const args = [`--name=etcd-${i}`, `--data-dir=${dir}`];
    args.push(`--listen-client-urls=${clientUrl}`, `--advertise-client-urls=${clientUrl}`);
    args.push(`--listen-peer-urls=http://${host}:2380`);
    args.push(`--initial-advertise-peer-urls=http://${host}:2380`);
    args.push(`--initial-cluster=${initial}`, '--initial-cluster-state=new');
    args.push('--initial-cluster-token=kvstore-bench', '--log-level=warn');
    const spawnedAt = performance.now();
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = track(child);
    failures.push(exited.then((why) => Promise.reject(new Error(`bench: etcd-${i} ${why}`))));
    const server = { name: `etcd-${i}`, child, host, port: 2379, dir, spawnedAt, readyMs: 0 };
    members.push({ server, clientUrl });
  }
  const ready = (async () => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const m of members) {
      while (!(await healthy(m.clientUrl))) {
        if (Date.now() > deadline) throw new Error(`bench: ${m.server.name} not healthy`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  try {
    await Promise.race([ready, ...failures]);
  } catch (err) {
    await Promise.all(members.map((m) => stopServer(m.server)));
    throw err;
  } finally {
    for (const f of failures) f.catch(() => {});
  }
  return members;
}

const cpuMs = (servers: readonly Server[]) =>
  servers.reduce((s, x) => s + processCpuMs(x.child.pid, 100), 0);

export async function storeload(
  bin: string,
  store: StoreName,
  servers: readonly Server[],
  op: StoreOp | 'fill',
  o: EtcdOptions,
): Promise<{ result: StoreloadResult; serverCpuPct: number }> {
  const args = ['-store', store, '-op', op];
  args.push('-endpoints', servers.map((s) => `${s.host}:${s.port}`).join(','));
  args.push('-clients', String(o.clients), '-keys', String(o.keys));
  args.push('-value-bytes', String(o.valueBytes));
  args.push('-duration-s', String(o.durationS), '-warmup-s', String(o.warmupS));
  const cpu0 = cpuMs(servers);
  const t0 = performance.now();
  const timeout = Math.max(300_000, (o.durationS + o.warmupS) * 20_000);
  let stdout: string;
  try {
    const running = execFileAsync(bin, args, { timeout, maxBuffer: 2 ** 20 });
    track(running.child); // killed by cleanupSync() if the bench is stopped
    ({ stdout } = await running);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`bench: storeload ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
  const serverCpuPct = (100 * (cpuMs(servers) - cpu0)) / (performance.now() - t0);
  return { result: JSON.parse(stdout) as StoreloadResult, serverCpuPct };
}

/** The three goals of issue 17 on this comparison. */
export function etcdGoals(cells: readonly StoreCell[]): Goal[] {
  const at = (store: StoreName, op: StoreOp) =>
    cells.find((c) => c.store === store && c.op === op)?.result;
  const kvPut = at('kvstore', 'put');
  const etcdPut = at('etcd', 'put');
  const ops = (n: number) => `${num(n)} ops/s`;
  const msUnit = (n: number) => `${ms(n)} ms`;
  const what = '3 nodes RF=3 W=2 R=2, 50 clients';
  const put = { kind: 'storeload', op: 'put' } as const;
  return [
    ratioGoal(
      `${what}, durable writes: kvstore >= 3x etcd puts/s`,
      kvPut?.opsPerSec,
      etcdPut?.opsPerSec,
      { min: 3 },
      ops,
      put,
    ),
    ratioGoal(
      `${what}, durable writes: kvstore p99 <= 0.5x etcd's`,
      kvPut?.latencyMs.p99,
      etcdPut?.latencyMs.p99,
      { max: 0.5 },
      msUnit,
      put,
    ),
    ratioGoal(
      `${what}, reads: kvstore >= 5x etcd linearizable gets/s`,
      at('kvstore', 'get')?.opsPerSec,
      at('etcd', 'get')?.opsPerSec,
      { min: 5 },
      ops,
      { kind: 'storeload', op: 'get' },
    ),
  ];
}

/**
 * Runs `store`'s puts, then its gets, for `o.durationS` each, and throws away what they measured
 * but errors. The same for both stores, so that each cell measures a store that has been serving
 * for a while, as a store in use has: on a fresh 3-node kvstore cluster, successive 5 s windows
 * of puts and gets cost 190, 140, 126, 121 and 119 µs of CPU per put and 86, 52, 44, 40 and 39 per
 * get (2026-12-06, docs/performance.md), V8 compiling the code and the main thread running it
 * slower until it has. etcd is compiled ahead of time, and settles as much as it needs to.
 */
async function settle(
  bin: string,
  store: StoreName,
  servers: readonly Server[],
  o: EtcdOptions,
): Promise<void> {
  for (const op of ['put', 'get'] as const) {
    const { result } = await storeload(bin, store, servers, op, o);
    if (result.errors > 0) {
      throw new Error(`bench: ${result.errors} errors settling ${store}: ${result.firstError}`);
    }
  }
}

/**
 * Starts both 3-node stores, fills each with the key space, runs every cell of PLAN on one or
 * the other in turn, and stops everything. A failure (a build, a start, a fill, storeload) ends
 * the comparison with `error` set and the cells measured so far, so the rest of the bench's
 * report is kept; run.ts's cleanupSync removes the data dirs.
 */
export async function etcdComparison(
  o: EtcdOptions,
  say: (line: string) => void,
): Promise<EtcdComparison> {
  const loadAvgAtStart = loadAverage();
  const stores = new Map<StoreName, Server[]>();
  const fillS = { etcd: 0, kvstore: 0 };
  const cells: StoreCell[] = [];
  let etcdVersion = 'unknown';
  let error: string | null = null;
  try {
    const [etcdBin, loadBin] = [await etcdBinary(), await storeloadBinary()];
    const { stdout } = await execFileAsync(etcdBin, ['--version']);
    etcdVersion = /etcd Version: (\S+)/.exec(stdout)?.[1] ?? etcdVersion;
    say(`starting 3 etcd ${etcdVersion} members and a 3-node kvstore cluster`);
    stores.set(
      'etcd',
      (await startEtcd(etcdBin, o.dataRoot)).map((m) => m.server),
    );
    stores.set('kvstore', await startCluster(o.dataRoot));
    for (const [store, servers] of stores) {
      say(`filling ${store} with ${o.keys} keys (storeload, batches of 100)`);
      const { result } = await storeload(loadBin, store, servers, 'fill', o);
      if (result.errors > 0)
        throw new Error(`bench: ${result.errors} errors filling ${store}: ${result.firstError}`);
      fillS[store] = result.windowS;
    }
    const settleS = o.settleS ?? 0;
    if (settleS > 0) {
      for (const [store, servers] of stores) {
        say(`settling ${store}: ${settleS} s of puts, then of gets, unmeasured`);
        await settle(loadBin, store, servers, { ...o, durationS: settleS, warmupS: 0 });
      }
    }
    for (const [store, op] of PLAN) {
      const loadBefore = loadAverage()[0]!;
      const { result, serverCpuPct } = await storeload(loadBin, store, stores.get(store)!, op, o);
      cells.push({ store, op, result, serverCpuPct, loadBefore });
      const l = result.latencyMs;
      const err = result.errors === 0 ? '' : ` ERRORS ${result.errors} (${result.firstError})`;
      say(
        `${CELL_LABELS[store][op].padEnd(44)} ${num(result.opsPerSec).padStart(7)} ops/s p50 ${ms(l.p50)} ms p99 ${ms(l.p99)} ms (load ${loadBefore})${err}`,
      );
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    say(`the etcd comparison FAILED: ${error}`);
  } finally {
    await Promise.all([...stores.values()].flat().map(stopServer));
  }
  const { clients, keys, valueBytes, durationS, warmupS } = o;
  return {
    etcdVersion,
    clients,
    keys,
    valueBytes,
    durationS,
    warmupS,
    settleS: o.settleS ?? 0,
    fillS,
    cells,
    goals: etcdGoals(cells),
    loadAvgAtStart,
    loadAvgAtEnd: loadAverage(),
    error,
  };
}

const CELL_LABELS: Record<StoreName, Record<StoreOp, string>> = {
  kvstore: {
    put: 'kvstore SET (W=2, durable)',
    get: 'kvstore GET (R=2)',
    'get-serializable': 'kvstore -',
  },
  etcd: {
    put: 'etcd Put (Raft quorum, fsynced)',
    get: 'etcd Get, linearizable',
    'get-serializable': 'etcd Get, serializable',
  },
};

/** One table: every cell, and on each etcd row kvstore's figure of the same kind over it. */
export function etcdTable(c: EtcdComparison): string[][] {
  const head = ['workload', 'store, request', 'conns', 'ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms'];
  head.push('server CPU%', 'load', 'kvstore/etcd ops', 'kvstore/etcd p99');
  const rows = [head];
  for (const cell of c.cells) {
    const r = cell.result;
    const kv = c.cells.find(
      (x) => x.store === 'kvstore' && x.op === (cell.op === 'put' ? 'put' : 'get'),
    );
    const vs = cell.store === 'etcd' && kv !== undefined;
    const errors = r.errors + r.misses > 0 ? ` (${r.errors} errors, ${r.misses} misses!)` : '';
    rows.push([
      cell.op === 'put' ? 'durable writes' : 'reads',
      CELL_LABELS[cell.store][cell.op] + errors,
      String(r.connections),
      num(r.opsPerSec),
      ms(r.latencyMs.p50),
      ms(r.latencyMs.p99),
      ms(r.latencyMs.p999),
      cell.serverCpuPct.toFixed(0),
      cell.loadBefore.toFixed(2),
      vs ? ratio(kv.result.opsPerSec, r.opsPerSec) : '',
      vs ? ratio(kv.result.latencyMs.p99, r.latencyMs.p99) : '',
    ]);
  }
  return rows;
}

/** The comparison's section of the report (Markdown, readable on the console). */
export function etcdSection(c: EtcdComparison): string[] {
  return [
    `## 3 nodes: kvstore vs etcd ${c.etcdVersion}, one load generator`,
    '',
    `Both stores run three members on their own loopback addresses (127.x.y.1-3), data dirs on the`,
    `same filesystem, writes durable: kvstore RF=3 W=2 R=2 (OK after two replicas' write-ahead logs`,
    `are on disk), etcd with its defaults (a Put is acknowledged once a quorum fsynced it). The same`,
    `Go program (bench/storeload: go.etcd.io/etcd/client/v3 for etcd, go-redis v9 over RESP for`,
    `kvstore) runs ${c.clients} clients, one request at a time each, client i on member i mod 3; each`,
    `store's clients connect as its client library is meant to be used: a connection each to kvstore`,
    `(RESP carries one request at a time), one gRPC connection per member shared by its clients to etcd`,
    `(HTTP/2 multiplexes them; faster for etcd than a connection each). Keys uniformly random over`,
    `${num(c.keys)} pre-filled keys, ${c.valueBytes}-byte values;`,
    `${c.warmupS} s warm-up, then ${c.durationS} s measured; latency of every request (exact percentiles).`,
    ...(c.settleS > 0
      ? [
          `After its fill and before its first cell, each store ran ${c.settleS} s of puts and then ${c.settleS} s of gets, unmeasured`,
          `(a fresh node's code is still being compiled in its first tens of seconds of load).`,
        ]
      : []),
    `Filling the key space (batches of 100) took ${c.fillS.etcd.toFixed(1)} s on etcd and ${c.fillS.kvstore.toFixed(1)} s on kvstore.`,
    `Server CPU% sums the three processes (% of one core); load = 1-minute load average before the`,
    `run (${c.loadAvgAtStart.join(' ')} at the start of the comparison, ${c.loadAvgAtEnd.join(' ')} at its end).`,
    '',
    ...(c.error === null ? [] : [`**The comparison FAILED**: ${c.error}`, '']),
    markdownTable(etcdTable(c), 2),
    '',
    markdownTable(goalsTable(c.goals)),
    '',
  ];
}
