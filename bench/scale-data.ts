// scale-data: how a node's cost grows with the data: GET/SET at 10k, 1M and 10M keys, and scan cost against keys returned.
//
// Run: node bench/scale-data.ts [--sizes 10000,1000000,10000000] [--scan-keys 1000000] [--help]
//
// 1. For each key count N: a compiled node (the build of scripts/build.ts, what the image runs)
//    with RF=1 W=1 R=1, filled with N distinct 100-byte values under redis-benchmark's own keys
//    (`key:%012d`, pipelined MSET, checked with DBSIZE and a read-back). All nodes stay up, and
//    redis-benchmark -c 50 SET and GET at P1 and P16 with `-r N` (random keys over the whole key
//    space) run on each in turn, --rounds times: medians. Node CPU per request is utime+stime
//    from /proc/PID/stat over each run; RSS, the data dir and LMDB's B+tree of the data (depth,
//    pages, read from the stopped node's dir) at each N.
// 2. Once the node holding --scan-keys is loaded (before any larger one), a 3-node cluster
//    (RF=3 W=2 R=2: a scan asks every member) gets the same keys, and RANGE and PREFIX over RESP
//    returning 1, 10, 100, 1k, 10k keys run on the one node and the cluster in turn: one at a
//    time on one connection, from random places in the key space; every reply is checked (count,
//    first and last key). Latency per scan and per key returned, node CPU per scan (all members
//    summed), and a fit of fixed cost + per-key cost.

import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CLUSTER_START_MS, startCluster } from './cluster.ts';
import { quiet } from './memory.ts';
import {
  cleanupSync,
  NODE,
  processCpuMs,
  processRss,
  ROOT,
  type Rss,
  type Server,
  SINGLE_NODE_ARGS,
  startKvstore,
  stopServer,
  tempDir,
} from './procs.ts';
import { measureRb, prefillRb, RB_CELLS, type RbCell, type RbMeasurement } from './redisbench.ts';
import { loadAverage, reportStamp } from './report.ts';
import { rbKey, respCall, respLoad } from './respload.ts';
import { buildCompiled } from './startup-memory.ts';
import { markdownTable, mib, ms, num, us } from './table.ts';

const HELP = `Usage: node bench/scale-data.ts [options]

How a node's cost grows with the data (docs/scaling.md): GET/SET throughput,
p50/p99 and node CPU per request at each key count, and scan latency against keys returned on one
node and on a 3-node cluster. Needs redis-benchmark; compiles the sources into a temp dir.

Options:
  --sizes <list>        key counts for the GET/SET table (default 10000,1000000,10000000)
  --seconds <n>         each redis-benchmark cell lasts about this long (default 3)
  --rounds <n>          every cell on every key count in turn, this many times (default 3)
  --scan-keys <n>       keys stored for the scan table (default 1000000)
  --scan-sizes <list>   keys returned per scan (default 1,10,100,1000,10000)
  --scan-seconds <n>    scans per size, command and target run this long (default 2)
  --value-bytes <n>     value size (default 100)
  --data-root <dir>     data dirs and the build go under here (default the OS temp dir)
  --out <dir>           where the report goes (default bench/results)
  --help                this text
`;

const CLIENTS = 50;

export interface SizeResult {
  readonly keys: number;
  readonly valueBytes: number;
  readonly loadMs: number;
  /** Waiting for the node's CPU to go quiet after the load (LMDB commits behind the log). */
  readonly settleMs: number;
  readonly rssLoaded: Rss;
  readonly rssAfter: Rss;
  /** Each cell's runs, one a round. */
  readonly cells: readonly { readonly cell: RbCell; readonly runs: readonly RbMeasurement[] }[];
  readonly dataDir: { readonly bytes: number; readonly allocated: number };
  readonly lmdb: LmdbStats | null;
}

export interface LmdbStats {
  readonly treeDepth: number;
  readonly treeBranchPageCount: number;
  readonly treeLeafPageCount: number;
  readonly overflowPages: number;
  readonly entryCount: number;
  readonly pageSize: number;
}

export interface ScanRow {
  readonly target: string;
  readonly command: 'RANGE' | 'PREFIX';
  readonly keys: number;
  readonly scans: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Node CPU per scan, all members summed. */
  readonly cpuMs: number;
}

/** Node CPU per request in µs over one redis-benchmark run. */
export const cpuUsPerRequest = (m: RbMeasurement) =>
  (m.serverCpuPct * m.wallMs * 10) / Math.max(1, m.requests);

function dirUsage(dir: string): { bytes: number; allocated: number } {
  let bytes = 0;
  let allocated = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const sub = dirUsage(p);
      bytes += sub.bytes;
      allocated += sub.allocated;
    } else {
      const st = lstatSync(p);
      bytes += st.size;
      allocated += st.blocks * 512;
    }
  }
  return { bytes, allocated };
}

/** LMDB's statistics of the `data` database of a stopped node's dir, read in a child process. */
function lmdbStats(dir: string): LmdbStats | null {
  const check = pathToFileURL(join(ROOT, 'src/storage/lmdb-check.ts')).href;
  const code = `const { open } = await import('lmdb');
const { LMDB_ENV_OPTIONS } = await import(${JSON.stringify(check)});
const root = open({ path: process.argv[1], ...LMDB_ENV_OPTIONS, readOnly: true });
const db = root.openDB({ name: 'data', keyEncoding: 'binary', encoding: 'binary' });
process.stdout.write(JSON.stringify(db.getStats()));
await root.close();`;
  try {
    const out = execFileSync(NODE, ['--input-type=module', '-e', code, dir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    return JSON.parse(out) as LmdbStats;
  } catch {
    return null;
  }
}

/** One RESP connection that sends a scan and reads its array of bulk strings. */
class ScanConn {
  readonly #socket: Socket;
  #buf = Buffer.alloc(0);
  #pos = 0;
  #expected = -1;
  #got = 0;
  #first: string | null = null;
  #last: string | null = null;
  #done: ((r: { count: number; first: string | null; last: string | null }) => void) | null = null;
  #fail: ((err: Error) => void) | null = null;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (err) => this.#fail?.(err));
    socket.on('close', () => this.#fail?.(new Error('scale-data: the node closed the connection')));
  }

  static open(host: string, port: number): Promise<ScanConn> {
    return new Promise((res, rej) => {
      const s = connect({ host, port }, () => {
        s.off('error', rej);
        s.setNoDelay(true);
        res(new ScanConn(s));
      });
      s.once('error', rej);
    });
  }

  /** Sends `args` and resolves with the array's length and its first and last element. */
  call(args: readonly string[]) {
    const frame = [`*${args.length}\r\n`, ...args.map((a) => `$${a.length}\r\n${a}\r\n`)];
    this.#buf = Buffer.alloc(0);
    this.#pos = 0;
    this.#expected = -1;
    this.#got = 0;
    this.#first = null;
    this.#last = null;
    return new Promise<{ count: number; first: string | null; last: string | null }>((res, rej) => {
      this.#done = res;
      this.#fail = rej;
      this.#socket.write(frame.join(''));
    });
  }

  #onData(d: Buffer): void {
    const problem = this.#parse(d);
    if (problem !== null) this.#fail?.(new Error(`scale-data: scan answered ${problem}`));
  }

  /** Reads what arrived; resolves the call once the whole array is in; a bad reply's text. */
  #parse(d: Buffer): string | null {
    this.#buf = Buffer.concat([this.#buf.subarray(this.#pos), d]);
    this.#pos = 0;
    const b = this.#buf;
    for (;;) {
      const nl = b.indexOf('\r\n', this.#pos);
      if (nl === -1) return null;
      const line = b.toString('latin1', this.#pos + 1, nl);
      const type = b[this.#pos];
      if (this.#expected === -1) {
        if (type !== 0x2a) return b.toString('latin1', this.#pos, nl);
        this.#expected = Number(line);
        this.#pos = nl + 2;
      } else {
        if (type !== 0x24) return `an element ${b.toString('latin1', this.#pos, nl)}`;
        const n = Number(line);
        if (b.length < nl + 2 + n + 2) return null;
        const key = b.toString('latin1', nl + 2, nl + 2 + n);
        this.#first ??= key;
        this.#last = key;
        this.#got++;
        this.#pos = nl + 2 + n + 2;
      }
      if (this.#got === this.#expected) {
        const done = this.#done;
        this.#done = null;
        this.#fail = null;
        done?.({ count: this.#got, first: this.#first, last: this.#last });
        return null;
      }
    }
  }

  close(): void {
    this.#fail = null;
    this.#socket.destroy();
  }
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/**
 * Scans returning `k` keys from random places in a key space of `total` keys, for `seconds`
 * (at least 10 scans, after 3 unmeasured ones). PREFIX needs k a power of 10 dividing `total`.
 */
async function scanCell(
  target: string,
  conn: ScanConn,
  pids: readonly number[],
  command: 'RANGE' | 'PREFIX',
  k: number,
  total: number,
  seconds: number,
): Promise<ScanRow> {
  const digits = Math.round(Math.log10(k));
  const one = async () => {
    let first: number;
    let args: string[];
    if (command === 'RANGE') {
      first = Math.floor(Math.random() * (total - k + 1));
      args = ['RANGE', rbKey(first), rbKey(first + k - 1)];
    } else {
      const j = Math.floor(Math.random() * (total / k));
      first = j * k;
      args = ['PREFIX', rbKey(first).slice(0, 16 - digits)];
    }
    const t0 = performance.now();
    const r = await conn.call(args);
    const elapsed = performance.now() - t0;
    if (r.count !== k || r.first !== rbKey(first) || r.last !== rbKey(first + k - 1))
      throw new Error(
        `scale-data: ${target} ${args.join(' ')} returned ${r.count} keys (${r.first} .. ${r.last}), expected ${k}`,
      );
    return elapsed;
  };
  for (let i = 0; i < 3; i++) await one();
  const cpuNow = () => pids.reduce((s, p) => s + processCpuMs(p, 100), 0);
  const times: number[] = [];
  const cpu0 = cpuNow();
  const t0 = performance.now();
  while (times.length < 10 || performance.now() - t0 < seconds * 1000) times.push(await one());
  const cpuMs = (cpuNow() - cpu0) / times.length;
  const sorted = [...times].sort((a, b) => a - b);
  const meanMs = times.reduce((s, t) => s + t, 0) / times.length;
  return {
    target,
    command,
    keys: k,
    scans: times.length,
    meanMs,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    cpuMs,
  };
}

interface ScanTarget {
  readonly name: string;
  readonly node: Server;
  /** Every member's pid: the CPU a scan costs is summed over them. */
  readonly pids: readonly number[];
}

/** Every command and size on each target in turn (side by side), one connection per target. */
async function scanRows(
  targets: readonly ScanTarget[],
  total: number,
  sizes: readonly number[],
  seconds: number,
  log: (line: string) => void,
): Promise<ScanRow[]> {
  const conns: ScanConn[] = [];
  const rows: ScanRow[] = [];
  try {
    for (const t of targets) conns.push(await ScanConn.open(t.node.host, t.node.port));
    for (const command of ['RANGE', 'PREFIX'] as const) {
      for (const k of sizes) {
        const power = 10 ** Math.round(Math.log10(k));
        if (command === 'PREFIX' && (power !== k || total % k !== 0)) continue;
        for (const [i, t] of targets.entries()) {
          const row = await scanCell(t.name, conns[i]!, t.pids, command, k, total, seconds);
          log(`${t.name} ${command} ${k}: ${row.scans} scans, mean ${ms(row.meanMs)} ms`);
          rows.push(row);
        }
      }
    }
  } finally {
    for (const c of conns) c.close();
  }
  const order = (r: ScanRow) => targets.findIndex((t) => t.name === r.target);
  return rows.sort((a, b) => order(a) - order(b));
}

/** y = fixed + perKey * k, least squares on relative errors (every size counts alike). */
export function fitLine(points: readonly { k: number; y: number }[]) {
  let sw = 0;
  let sk = 0;
  let sy = 0;
  let skk = 0;
  let sky = 0;
  for (const { k, y } of points) {
    const w = 1 / Math.max(y, 1e-9) ** 2;
    sw += w;
    sk += w * k;
    sy += w * y;
    skk += w * k * k;
    sky += w * k * y;
  }
  const det = sw * skk - sk * sk;
  const perKey = det === 0 ? 0 : (sw * sky - sk * sy) / det;
  const fixed = (sy - perKey * sk) / sw;
  const worst = Math.max(
    ...points.map(({ k, y }) => Math.abs(fixed + perKey * k - y) / Math.max(y, 1e-9)),
  );
  return { fixed, perKey, worst };
}

async function fillChecked(node: Server, keys: number, valueBytes: number) {
  const { ms: loadMs } = await prefillRb(node, keys, valueBytes);
  const size = Number(await respCall(node.host, node.port, ['DBSIZE'], 60_000));
  if (size !== keys) throw new Error(`scale-data: DBSIZE ${size} after loading ${keys} keys`);
  const last = await respCall(node.host, node.port, ['GET', rbKey(keys - 1)]);
  if (typeof last !== 'string' || last.length !== valueBytes)
    throw new Error(`scale-data: GET ${rbKey(keys - 1)} after the load answered ${String(last)}`);
  return loadMs;
}

interface Options {
  readonly sizes: readonly number[];
  readonly seconds: number;
  readonly rounds: number;
  readonly scanKeys: number;
  readonly scanSizes: readonly number[];
  readonly scanSeconds: number;
  readonly valueBytes: number;
  readonly root: string;
}

/**
 * Loads the keys into a cluster through all members, a range each; writes that fail (a quorum
 * timing out on a busy machine) are written again, up to 3 times in all.
 */
async function fillCluster(cluster: readonly Server[], keys: number, valueBytes: number) {
  const share = Math.ceil(keys / cluster.length);
  await Promise.all(
    cluster.map(async (node, i) => {
      for (let attempt = 1; ; attempt++) {
        const r = await respLoad({
          host: node.host,
          port: node.port,
          from: i * share,
          to: Math.min(keys, (i + 1) * share),
          valueBytes,
          connections: 2,
          depth: 8,
          pairs: 20,
        });
        if (r.errors === 0) return;
        if (attempt === 3)
          throw new Error(`scale-data: ${r.errors} errors filling the cluster: ${r.firstError}`);
      }
    }),
  );
}

/** Scans on `one` (holding --scan-keys) and on a 3-node cluster holding the same keys. */
async function clusterAndScans(
  o: Options,
  script: string,
  scanArgs: readonly string[],
  one: Server,
  log: (line: string) => void,
): Promise<ScanRow[]> {
  log(`scans: a 3-node cluster (RF=3), loading ${num(o.scanKeys)} keys`);
  const cluster = await startCluster(o.root, 3, CLUSTER_START_MS, { script, args: scanArgs });
  try {
    await fillCluster(cluster, o.scanKeys, o.valueBytes);
    for (const node of cluster) await quiet(node.child.pid);
    return await scanRows(
      [
        { name: '1 node', node: one, pids: [one.child.pid!] },
        { name: '3 nodes', node: cluster[0]!, pids: cluster.map((n) => n.child.pid!) },
      ],
      o.scanKeys,
      o.scanSizes,
      o.scanSeconds,
      log,
    );
  } finally {
    await Promise.all(cluster.map(stopServer));
  }
}

export async function scaleData(o: Options, log: (line: string) => void) {
  log('compiling the sources (scripts/build.ts)');
  const script = buildCompiled(o.root);
  const scanArgs = ['--max-scan-keys', String(Math.max(10_000, ...o.scanSizes))];
  const args = [...SINGLE_NODE_ARGS, ...scanArgs];
  // One node per key count, all up at once, so that every cell runs on each in turn; the scans
  // use the node holding --scan-keys (one more node when that is not among --sizes).
  const counts = o.sizes.includes(o.scanKeys) ? o.sizes : [...o.sizes, o.scanKeys];
  const nodes: Server[] = [];
  const loaded: { keys: number; node: Server; loadMs: number; settleMs: number; rssLoaded: Rss }[] =
    [];
  const runs = o.sizes.map(() => RB_CELLS.map((): RbMeasurement[] => []));
  const rssAfter: Rss[] = [];
  let scans: ScanRow[] = [];
  try {
    for (const keys of counts) {
      const node = await startKvstore(o.root, { name: `scale-data-${keys}`, script, args });
      nodes.push(node);
      log(`${num(keys)} keys: loading`);
      const loadMs = await fillChecked(node, keys, o.valueBytes);
      log(`${num(keys)} keys: loaded in ${(loadMs / 1000).toFixed(1)} s; waiting for quiet`);
      const settleMs = await quiet(node.child.pid);
      loaded.push({ keys, node, loadMs, settleMs, rssLoaded: processRss(node.child.pid) });
      // The scans, on this node and a cluster side by side, before the larger key counts load.
      if (keys === o.scanKeys) scans = await clusterAndScans(o, script, scanArgs, node, log);
    }
    for (let round = 1; round <= o.rounds; round++) {
      for (const [ci, cell] of RB_CELLS.entries()) {
        for (const [si, keys] of o.sizes.entries()) {
          const node = loaded[si]!.node;
          const target = {
            name: 'kvstore',
            host: node.host,
            port: node.port,
            pids: [node.child.pid!],
          } as const;
          const opts = {
            clients: CLIENTS,
            keys,
            valueBytes: o.valueBytes,
            durationS: o.seconds,
            fixedRequests: null,
          };
          const m = await measureRb(target, cell, opts);
          if (m.error !== null)
            throw new Error(`scale-data: ${cell.op} P${cell.pipeline} at ${keys} keys: ${m.error}`);
          log(
            `round ${round}, ${num(keys)} keys: ${cell.op} P${cell.pipeline} ${num(m.rps)}/s p99 ${m.p99Ms} ms, ${us(cpuUsPerRequest(m))} µs CPU/req`,
          );
          runs[si]![ci]!.push(m);
        }
      }
    }
    for (const l of loaded.slice(0, o.sizes.length)) rssAfter.push(processRss(l.node.child.pid));
  } finally {
    await Promise.all(nodes.map(stopServer));
  }
  const sizes: SizeResult[] = o.sizes.map((keys, si) => {
    const l = loaded[si]!;
    return {
      keys,
      valueBytes: o.valueBytes,
      loadMs: l.loadMs,
      settleMs: l.settleMs,
      rssLoaded: l.rssLoaded,
      rssAfter: rssAfter[si]!,
      cells: RB_CELLS.map((cell, ci) => ({ cell, runs: runs[si]![ci]! })),
      dataDir: dirUsage(l.node.dir),
      lmdb: lmdbStats(l.node.dir),
    };
  });
  return { sizes, scans };
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const pct = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');
/** Bytes as GiB, MiB or KiB. */
const size = (n: number) =>
  n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(2)} GiB`
    : n >= 2 ** 20
      ? `${(n / 2 ** 20).toFixed(n >= 100 * 2 ** 20 ? 0 : 1)} MiB`
      : `${(n / 1024).toFixed(0)} KiB`;

export function sizeTables(sizes: readonly SizeResult[]): string[] {
  const base = sizes[0]!;
  const cellRows = RB_CELLS.flatMap((cell, ci) =>
    sizes.map((s) => {
      const runs = s.cells[ci]!.runs;
      const first = base.cells[ci]!.runs;
      const cpu = runs.map(cpuUsPerRequest);
      const cpuRange = cpu.length > 1 ? ` (${us(Math.min(...cpu))}-${us(Math.max(...cpu))})` : '';
      return [
        `${cell.op.toUpperCase()} P${cell.pipeline}`,
        num(s.keys),
        num(median(runs.map((m) => m.rps))),
        ms(median(runs.map((m) => m.p50Ms))),
        ms(median(runs.map((m) => m.p99Ms))),
        `${us(median(cpu))}${cpuRange}`,
        pct(median(cpu), median(first.map(cpuUsPerRequest))),
        pct(median(runs.map((m) => m.rps)), median(first.map((m) => m.rps))),
      ];
    }),
  );
  const cells = markdownTable(
    [
      [
        'cell',
        'keys',
        'ops/s',
        'p50 ms',
        'p99 ms',
        'node CPU µs/req',
        'CPU/req vs first',
        'ops/s vs first',
      ],
      ...cellRows,
    ],
    2,
  );
  const store = markdownTable([
    [
      'keys',
      'load s',
      'load keys/s',
      'RSS loaded',
      'RSS after cells',
      'anon',
      'file-backed',
      'data dir',
      'raw',
      'LMDB depth',
      'branch pages',
      'leaf pages',
    ],
    ...sizes.map((s) => [
      num(s.keys),
      (s.loadMs / 1000).toFixed(1),
      num(s.keys / (s.loadMs / 1000)),
      mib(s.rssLoaded.rss),
      mib(s.rssAfter.rss),
      mib(s.rssAfter.anon),
      mib(s.rssAfter.file),
      size(s.dataDir.allocated),
      size(s.keys * (rbKey(0).length + s.valueBytes)),
      s.lmdb === null ? '?' : String(s.lmdb.treeDepth),
      s.lmdb === null ? '?' : num(s.lmdb.treeBranchPageCount),
      s.lmdb === null ? '?' : num(s.lmdb.treeLeafPageCount),
    ]),
  ]);
  return [cells, '', store];
}

export function scanTables(scans: readonly ScanRow[]): string[] {
  const rows = markdownTable(
    [
      [
        'target',
        'command',
        'keys returned',
        'scans',
        'mean ms',
        'p50 ms',
        'p99 ms',
        'µs per key',
        'node CPU ms/scan',
      ],
      ...scans.map((r) => [
        r.target,
        r.command,
        num(r.keys),
        num(r.scans),
        ms(r.meanMs),
        ms(r.p50Ms),
        ms(r.p99Ms),
        us((r.meanMs * 1000) / r.keys),
        ms(r.cpuMs),
      ]),
    ],
    2,
  );
  const groups = new Map<string, ScanRow[]>();
  for (const r of scans) {
    const key = `${r.target}|${r.command}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const fits = [...groups.values()].map((g) => {
    const t = fitLine(g.map((r) => ({ k: r.keys, y: r.meanMs })));
    const c = fitLine(g.map((r) => ({ k: r.keys, y: r.cpuMs })));
    return [
      g[0]!.target,
      g[0]!.command,
      ms(t.fixed),
      us(t.perKey * 1000),
      `${(t.worst * 100).toFixed(0)}%`,
      ms(c.fixed),
      us(c.perKey * 1000),
    ];
  });
  const fit = markdownTable(
    [
      [
        'target',
        'command',
        'latency: fixed ms',
        '+ µs per key',
        'worst error',
        'node CPU: fixed ms',
        '+ µs per key',
      ],
      ...fits,
    ],
    2,
  );
  return [rows, '', fit];
}

function cacheSizes(): string {
  try {
    const base = '/sys/devices/system/cpu/cpu0/cache';
    return readdirSync(base)
      .filter((d) => d.startsWith('index'))
      .map((d) => {
        const f = (n: string) => readFileSync(join(base, d, n), 'utf8').trim();
        return `L${f('level')}${f('type') === 'Instruction' ? 'i' : f('type') === 'Data' ? 'd' : ''} ${f('size')}`;
      })
      .join(', ');
  } catch {
    return 'unknown';
  }
}

function list(flag: string, raw: string): number[] {
  return raw.split(',').map((s) => positive(flag, s.trim()));
}

function positive(flag: string, raw: string): number {
  const x = Number(raw);
  if (!Number.isSafeInteger(x) || x < 1)
    throw new Error(`scale-data: --${flag} must be a positive integer, got '${raw}'`);
  return x;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000,1000000,10000000' },
      seconds: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      'scan-keys': { type: 'string', default: '1000000' },
      'scan-sizes': { type: 'string', default: '1,10,100,1000,10000' },
      'scan-seconds': { type: 'string', default: '2' },
      'value-bytes': { type: 'string', default: '100' },
      'data-root': { type: 'string', default: tmpdir() },
      out: { type: 'string', default: join(import.meta.dirname, 'results') },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const seconds = (flag: 'seconds' | 'scan-seconds') => {
    const x = Number(v[flag]);
    if (!(x > 0)) throw new Error(`scale-data: --${flag} must be > 0, got '${v[flag]}'`);
    return x;
  };
  const o = {
    sizes: list('sizes', v.sizes),
    seconds: seconds('seconds'),
    rounds: positive('rounds', v.rounds),
    scanKeys: positive('scan-keys', v['scan-keys']),
    scanSizes: list('scan-sizes', v['scan-sizes']),
    scanSeconds: seconds('scan-seconds'),
    valueBytes: positive('value-bytes', v['value-bytes']),
    root: '',
  };
  if (new Set(o.sizes).size !== o.sizes.length)
    throw new Error('scale-data: --sizes must not repeat a key count');
  if (o.scanSizes.some((k) => k > o.scanKeys))
    throw new Error('scale-data: --scan-sizes must not exceed --scan-keys');
  process.once('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  const root = tempDir(resolve(v['data-root']), 'kvstore-scale-data-');
  const t0 = performance.now();
  const log = (line: string) =>
    process.stderr.write(
      `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`,
    );
  const loadBefore = loadAverage();
  const startedAt = new Date().toISOString();
  const commit = (() => {
    try {
      return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], {
        encoding: 'utf8',
      }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const { sizes, scans } = await scaleData({ ...o, root }, log);
  const md = [
    `# How cost grows with the data (${startedAt})`,
    '',
    `\`node bench/scale-data.ts --sizes ${o.sizes.join(',')} --seconds ${o.seconds} --rounds ${o.rounds} --scan-keys ${o.scanKeys} --scan-sizes ${o.scanSizes.join(',')} --scan-seconds ${o.scanSeconds}\` at ${commit}.`,
    `One compiled node (RF=1 W=1 R=1) per key count, ${o.valueBytes}-byte values under redis-benchmark's keys;`,
    `redis-benchmark -c ${CLIENTS} -r <keys> (random keys over the whole key space), each cell about ${o.seconds} s;`,
    `all nodes up at once, every cell on each key count in turn, ${o.rounds} rounds: medians (CPU: and the range).`,
    'Node CPU is utime+stime of the node process over the run divided by the requests: the figure',
    'to compare on this shared machine; ops/s and latencies move with the load beside the run.',
    '',
    ...sizeTables(sizes),
    '',
    `Scans: ${num(o.scanKeys)} keys stored; one connection, one scan at a time from random places;`,
    'latency as the client sees it (the whole reply read); node CPU summed over all members.',
    '',
    ...scanTables(scans),
    '',
    `Machine: ${availableParallelism()} cores, ${cacheSizes()}. Load average ${loadBefore.join(' ')} -> ${loadAverage().join(' ')}; ${((performance.now() - t0) / 1000).toFixed(0)} s in all.`,
    '',
  ].join('\n');
  mkdirSync(v.out, { recursive: true });
  const file = join(v.out, `${reportStamp(startedAt)}-scale-data.md`);
  writeFileSync(file, md);
  process.stdout.write(`${md}\nWrote ${file}\n`);
}

if (import.meta.main) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
