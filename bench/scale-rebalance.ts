// scale-rebalance: time and bytes moved when a 4th member joins a loaded 3-member cluster, per data size, extrapolated.
//
// Run: node bench/scale-rebalance.ts [--sizes-mb 50,200,500] [--value-bytes 1024] [--out bench/results]
//
// For each size D, on a fresh cluster of real kvstore processes on loopback (127.a.b.1-4, RF=3
// W=2 R=2, the default --rebalance-rate-bytes unless given), found through a real DNS server
// (test/helpers/dns-server.ts) as on Kubernetes (a headless Service's A records):
// 1. three members; D bytes of keys and values written once through RESP (pipelined MSET);
// 2. a light paced GET load (--gets-per-s, one connection) for --probe-s: latency before;
// 3. the join: a 4th member starts, then its address is added to the DNS records (time 0). The
//    same GET load runs until every member routes by the 4-member settled ring with no data
//    moving (CLUSTER on all four, polled every 200 ms): that is the rebalance time. Each
//    sender's stream end is the first poll its CLUSTER `transfer` shows done;
// 4. then the old owners drop what they no longer own: the time until the members hold 3 copies
//    of each key again (the sum of kvstore_storage_keys).
// Bytes and keys moved come from kvstore_rebalance_{bytes,keys}_sent_total; CPU from /proc.
// A least-squares line time = fixed + D / rate over the sizes gives the extrapolation to 1, 10
// and 50 GB: an extrapolation, not a measurement (see the report's notes for what bends it).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDnsServer, type TestDnsServer } from '../test/helpers/dns-server.ts';
import { CLUSTER_ARGS, loopbackBlock } from './cluster.ts';
import { PacedGets } from './paced-gets.ts';
import {
  cleanupOnExit,
  processCpuMs,
  progressLog,
  runBench,
  type Server,
  scrapeMetrics,
  startKvstore,
  stopServer,
  tempDir,
  until as waitUntil,
} from './procs.ts';
import { loadAverage, reportStamp } from './report.ts';
import { rbKey, respCall, respLoad } from './respload.ts';
import { renderReport, type SizeResult } from './scale-rebalance-report.ts';

const HELP = `Usage: node bench/scale-rebalance.ts [options]

Measures the rebalance when a 4th member joins a 3-member cluster (RF=3) holding D bytes, for
each size, and extrapolates time and bytes moved to 1, 10 and 50 GB.

Options:
  --sizes-mb <list>     data sizes D in MB (10^6 bytes of keys + values), comma-separated
                        (default 50,200,500)
  --value-bytes <n>     value size (default 1024); keys are 16 bytes
  --rate-bytes <n>      pass --rebalance-rate-bytes to every member (default: the node's default)
  --gets-per-s <n>      the light GET load before and during the join (default 200)
  --probe-s <n>         seconds of GET load measured before the join (default 5)
  --timeout-s <n>       longest wait for a load, a rebalance or the clean-up (default 900)
  --out <dir>           where the report goes (default bench/results)
  --help                this text
`;

/** Client, HTTP and peer ports: the same on every member, each on its own loopback address. */
const PORTS = [8081, 9090, 7946] as const;
const SERVICE = 'kvstore-headless.bench.svc.cluster.local';
const NAMES = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ClusterView {
  readonly ring: { readonly moving: boolean };
  readonly members: readonly { readonly name: string; readonly share: number }[];
  readonly transfer: { readonly done: boolean; readonly ringId: string } | null;
}

async function cluster(node: Server): Promise<ClusterView | null> {
  try {
    const reply = await respCall(node.host, node.port, ['CLUSTER'], 10_000);
    return typeof reply === 'string' ? (JSON.parse(reply) as ClusterView) : null;
  } catch {
    return null;
  }
}

/** True when `view` routes by one settled ring of exactly `names` with no data moving. */
function settledOn(view: ClusterView | null, names: readonly string[]): boolean {
  if (view === null || view.ring.moving) return false;
  const ring = view.members.filter((m) => m.share > 0).map((m) => m.name);
  return JSON.stringify(ring) === JSON.stringify(names);
}

const metrics = (node: Server) => scrapeMetrics(node.host, PORTS[1]);

const metric = async (node: Server, name: string) => (await metrics(node)).get(name) ?? 0;

const until = (what: string, timeoutMs: number, ok: () => Promise<boolean>) =>
  waitUntil('scale-rebalance', what, timeoutMs, ok);

interface Options {
  readonly valueBytes: number;
  readonly rateBytes: number | null;
  readonly getsPerS: number;
  readonly probeS: number;
  readonly timeoutMs: number;
}

/** Starts member i at host, finding the others through the DNS server's A records of SERVICE. */
function member(root: string, dns: TestDnsServer, i: number, host: string, o: Options) {
  const args = ['--discovery', `dns:${SERVICE}`, '--dns-servers', `127.0.0.1:${dns.port}`];
  args.push('--resolve-interval-ms', '300', ...CLUSTER_ARGS);
  if (o.rateBytes !== null) args.push('--rebalance-rate-bytes', String(o.rateBytes));
  return startKvstore(root, { name: NAMES[i]!, host, ports: PORTS, args });
}

const cpuOf = (nodes: readonly Server[]) => nodes.map((n) => processCpuMs(n.child.pid, 100));

async function lightLoad(node: Server, keys: number, o: Options): Promise<PacedGets> {
  const gets = new PacedGets({
    host: node.host,
    port: node.port,
    keys,
    valueBytes: o.valueBytes,
    ratePerS: o.getsPerS,
  });
  await gets.start();
  return gets;
}

/**
 * Writes keys rbKey(0..keys-1) through node's RESP port in chunks of 20,000 (pipelined MSET);
 * a chunk with an error (a write quorum timing out on a loaded machine) is written again, at
 * most 3 times: rewriting a key is harmless.
 */
async function fill(node: Server, keys: number, valueBytes: number, say: (l: string) => void) {
  const t0 = performance.now();
  let retries = 0;
  for (let from = 0; from < keys; from += 20_000) {
    const to = Math.min(keys, from + 20_000);
    for (let attempt = 0; ; attempt++) {
      const spec = { host: node.host, port: node.port, from, to, valueBytes };
      const r = await respLoad({ ...spec, connections: 4, depth: 8, pairs: 20 });
      if (r.errors === 0) break;
      if (attempt === 3) throw new Error(`scale-rebalance: filling: ${r.firstError}`);
      retries++;
      say(`${r.errors} errors writing keys ${from}-${to} (${r.firstError}); again`);
    }
  }
  return { ms: performance.now() - t0, retries };
}

/** One size: a fresh 3-member cluster, D bytes loaded, a 4th member joins; every figure. */
async function measureSize(
  root: string,
  dns: TestDnsServer,
  dataBytes: number,
  o: Options,
  say: (line: string) => void,
): Promise<SizeResult> {
  const keyBytes = rbKey(0).length;
  const keys = Math.max(1, Math.round(dataBytes / (keyBytes + o.valueBytes)));
  const block = loopbackBlock();
  const hosts = NAMES.map((_, i) => `${block}.${i + 1}`);
  dns.setA(SERVICE, hosts.slice(0, 3));
  const nodes: Server[] = [];
  try {
    const started = await Promise.allSettled(
      [0, 1, 2].map((i) => member(root, dns, i, hosts[i]!, o)),
    );
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const three = NAMES.slice(0, 3);
    await until('3 members not settled', o.timeoutMs, async () =>
      (await Promise.all(nodes.map(cluster))).every((v) => settledOn(v, three)),
    );

    say(`${(dataBytes / 1e6).toFixed(0)} MB: loading ${keys} keys of ${o.valueBytes} B`);
    const load = await fill(nodes[0]!, keys, o.valueBytes, say);
    // W=2: the third copy may still be on its way; every member holds every key at RF=3.
    await until('the load not on every member', o.timeoutMs, async () =>
      (await Promise.all(nodes.map((n) => metric(n, 'kvstore_storage_keys')))).every(
        (k) => k === keys,
      ),
    );
    await sleep(2000); // the last LMDB batches commit

    say('GET load before the join');
    const warm = await lightLoad(nodes[1]!, keys, o);
    await sleep(1000);
    await warm.stop();
    const probe = await lightLoad(nodes[1]!, keys, o);
    await sleep(o.probeS * 1000);
    const before = await probe.stop();

    say('join: starting kvstore-3');
    const joiner = await member(root, dns, 3, hosts[3]!, o);
    nodes.push(joiner);
    const m0 = await Promise.all(nodes.map(metrics));
    const gets = await lightLoad(nodes[1]!, keys, o);
    const cpu0 = cpuOf(nodes);
    // A stream counts as done once CLUSTER shows a finished one toward another transfer.
    const earlier = (await Promise.all(nodes.map(cluster))).map((v) => v?.transfer?.ringId);
    const t0 = performance.now();
    dns.setA(SERVICE, hosts);
    const streamMs: (number | null)[] = [null, null, null, null];
    let moved = false;
    await until('the rebalance not done', o.timeoutMs, async () => {
      const views = await Promise.all(nodes.map(cluster));
      const at = performance.now() - t0;
      views.forEach((v, i) => {
        if (v?.ring.moving) moved = true;
        const t = v?.transfer;
        if (streamMs[i] === null && t?.done === true && t.ringId !== earlier[i]) streamMs[i] = at;
      });
      return moved && views.every((v) => settledOn(v, NAMES));
    });
    const rebalanceMs = performance.now() - t0;
    const cpu1 = cpuOf(nodes);
    const during = await gets.stop();
    const m1 = await Promise.all(nodes.map(metrics));

    say('waiting for the old owners to drop what they no longer own');
    await until('the clean-up not done', o.timeoutMs, async () => {
      const held = await Promise.all(nodes.map((n) => metric(n, 'kvstore_storage_keys')));
      return held.reduce((a, b) => a + b, 0) === 3 * keys;
    });
    const cleanupMs = performance.now() - t0;
    const m2 = await Promise.all(nodes.map(metrics));
    const delta = (name: string, a: Map<string, number>[], b: Map<string, number>[]) =>
      b.map((m, i) => (m.get(name) ?? 0) - (a[i]!.get(name) ?? 0));
    return {
      dataBytes: keys * (keyBytes + o.valueBytes),
      keys,
      valueBytes: o.valueBytes,
      loadMs: load.ms,
      loadRetries: load.retries,
      rebalanceMs,
      cleanupMs,
      streamMs,
      sentBytes: delta('kvstore_rebalance_bytes_sent_total', m0, m1),
      sentKeys: delta('kvstore_rebalance_keys_sent_total', m0, m1),
      removedKeys: delta('kvstore_rebalance_keys_removed_total', m0, m2),
      heldAfter: m2.map((m) => m.get('kvstore_storage_keys') ?? 0),
      cpuPct: cpu1.map((c, i) => (100 * (c - cpu0[i]!)) / rebalanceMs),
      before,
      during,
    };
  } finally {
    await Promise.all(nodes.map(stopServer));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
  }
}

function positive(flag: string, raw: string): number {
  const x = Number(raw);
  if (!Number.isFinite(x) || x <= 0)
    throw new Error(`scale-rebalance: --${flag} must be a positive number, got '${raw}'`);
  return x;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      'sizes-mb': { type: 'string', default: '50,200,500' },
      'value-bytes': { type: 'string', default: '1024' },
      'rate-bytes': { type: 'string' },
      'gets-per-s': { type: 'string', default: '200' },
      'probe-s': { type: 'string', default: '5' },
      'timeout-s': { type: 'string', default: '900' },
      out: { type: 'string', default: join(import.meta.dirname, 'results') },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const sizes = v['sizes-mb'].split(',').map((s) => positive('sizes-mb', s.trim()) * 1e6);
  if (new Set(sizes).size < 2)
    throw new Error(
      'scale-rebalance: --sizes-mb needs two sizes or more (the fit has a fixed cost)',
    );
  const o: Options = {
    valueBytes: Math.round(positive('value-bytes', v['value-bytes'])),
    rateBytes: v['rate-bytes'] === undefined ? null : positive('rate-bytes', v['rate-bytes']),
    getsPerS: positive('gets-per-s', v['gets-per-s']),
    probeS: positive('probe-s', v['probe-s']),
    timeoutMs: positive('timeout-s', v['timeout-s']) * 1000,
  };
  const t0 = performance.now();
  const say = progressLog();
  cleanupOnExit();
  const root = tempDir(tmpdir(), 'kvstore-scale-rebalance-');
  const loadBefore = loadAverage();
  const startedAt = new Date().toISOString();
  const dns = await startDnsServer();
  const results: SizeResult[] = [];
  const failed: string[] = [];
  try {
    for (const d of sizes) {
      // A size that fails (a timeout on a loaded machine) is reported; the others still run.
      try {
        results.push(await measureSize(root, dns, d, o, say));
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        say(`${d / 1e6} MB failed: ${why}`);
        failed.push(`${d / 1e6} MB: ${why}`);
      }
    }
  } finally {
    await dns.close();
  }
  if (results.length < 2)
    throw new Error(`scale-rebalance: fewer than two sizes measured: ${failed.join('; ')}`);
  const command = [
    'node bench/scale-rebalance.ts',
    `--sizes-mb ${v['sizes-mb']}`,
    `--value-bytes ${o.valueBytes}`,
    ...(o.rateBytes === null ? [] : [`--rate-bytes ${o.rateBytes}`]),
  ].join(' ');
  const input = {
    startedAt,
    command,
    results,
    failed,
    rateBytes: o.rateBytes,
    getsPerS: o.getsPerS,
    loadBefore,
    loadAfter: loadAverage(),
    seconds: (performance.now() - t0) / 1000,
  };
  const md = renderReport(input);
  mkdirSync(v.out, { recursive: true });
  const file = join(v.out, `${reportStamp(startedAt)}-scale-rebalance.md`);
  writeFileSync(file, md);
  writeFileSync(
    file.replace(/\.md$/, '.json'),
    `${JSON.stringify({ ...input, options: o }, null, 2)}\n`,
  );
  process.stdout.write(`${md}\nWrote ${file}\n`);
}

if (import.meta.main) runBench(main);
