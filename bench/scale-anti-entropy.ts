// scale-anti-entropy: how long an anti-entropy pass takes and what CPU it costs, by key count.
//
// Run: node bench/scale-anti-entropy.ts [--keys 100000,1000000] [--value-bytes 100] [--out bench/results]
//
// For each key count N, on a fresh cluster of three real kvstore processes on loopback (RF=3 W=2
// R=2: every member owns every key, so each pair compares the whole keyspace), with
// --anti-entropy-interval-ms --interval-s:
// 1. N keys written once through RESP (pipelined MSET), then the first pass after the load is
//    awaited (every member's kvstore_anti_entropy_last_completed_timestamp_seconds moved past the
//    load's end), with replicas in step: the cost of a pass that finds nothing;
// 2. paced GETs through kvstore-0 (--gets-per-s), first with no pass running, then during its
//    next pass: what a pass costs the reads it runs beside;
// 3. then --diverge keys are written to one replica only (a peer `apply`, as a coordinator that
//    died mid-write leaves them) and the pass that repairs them is awaited.
// Reported per N: each member's last pass (kvstore_anti_entropy_last_pass_seconds; kvstore-0
// walks with two members, kvstore-1 with one, kvstore-2 only answers), keys hashed, CPU of each
// process over one whole interval with no client load (the passes' share of a core), and the
// time from the divergent writes until every replica held them.

import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/observability/index.ts';
import { PeerClient } from '../src/peer/index.ts';
import { METHODS } from '../src/replica/index.ts';
import { encodeRecord } from '../src/storage/index.ts';
import { CLUSTER_START_MS, startCluster } from './cluster.ts';
import type { LatencySummary } from './histogram.ts';
import { PacedGets } from './paced-gets.ts';
import {
  cleanupOnExit,
  positiveInt,
  processCpuMs,
  progressLog,
  runBench,
  type Server,
  scrapeMetrics,
  stopServer,
  tempDir,
  until as waitUntil,
} from './procs.ts';
import { loadAverage, reportStamp } from './report.ts';
import { rbKey, respLoad } from './respload.ts';

const HELP = `Usage: node bench/scale-anti-entropy.ts [options]

Measures anti-entropy passes on three members (RF=3) holding N keys each: pass time, keys
hashed, CPU over one interval, and the time to repair keys written to one replica only.

Options:
  --keys <list>         key counts N, comma-separated (default 100000,1000000)
  --value-bytes <n>     value size (default 100)
  --interval-s <n>      --anti-entropy-interval-ms of the members, in seconds (default 30)
  --diverge <n>         keys written to one replica only, then repaired (default 100)
  --gets-per-s <n>      paced GETs through kvstore-0 without a pass and during one (default 1000)
  --out <dir>           where the report goes (default bench/results)
  --data-root <dir>     where the members' data directories go (default the system temp dir)
  --help                this text
`;

const HTTP_PORT = 9090;
const PEER_PORT = 7946;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TICKS = 100; // USER_HZ on Linux

const metrics = (node: Server) => scrapeMetrics(node.host, HTTP_PORT);

const until = (what: string, timeoutMs: number, ok: () => Promise<boolean>) =>
  waitUntil('scale-anti-entropy', what, timeoutMs, ok);

const LAST = 'kvstore_anti_entropy_last_completed_timestamp_seconds';

/**
 * How long to wait for passes: `baseMs`, plus 20 times the longest last pass of any member. A
 * member starts a pass at most a tenth of the time (9 times the last one's length after it), so
 * on a loaded machine a pass of a few seconds puts the next one a minute away.
 */
async function passWaitMs(nodes: readonly Server[], baseMs: number): Promise<number> {
  const last = (await Promise.all(nodes.map(metrics))).map(
    (m) => m.get('kvstore_anti_entropy_last_pass_seconds') ?? 0,
  );
  return baseMs + 20_000 * Math.max(...last);
}

/** Resolves once every member completed a pass that started after `afterS` (epoch seconds). */
async function passesAfter(nodes: readonly Server[], afterS: number, baseMs: number) {
  await until('no pass completed', await passWaitMs(nodes, baseMs), async () => {
    for (const n of nodes) {
      const m = await metrics(n);
      if ((m.get(LAST) ?? 0) - (m.get('kvstore_anti_entropy_last_pass_seconds') ?? 0) < afterS)
        return false;
    }
    return true;
  });
}

export interface KeysResult {
  readonly keys: number;
  readonly loadS: number;
  /** Per member: its last pass in step (s), and keys it hashed in that interval. */
  readonly passS: number[];
  readonly hashed: number[];
  /** CPU ms of each process over `windowS` seconds with no client load. */
  readonly cpuMs: number[];
  readonly windowS: number;
  readonly repairS: number;
  readonly repaired: number;
  /** Paced GETs through kvstore-0 with no pass running, and during its pass. */
  readonly getsQuiet: LatencySummary;
  readonly getsDuring: LatencySummary;
}

async function measure(
  root: string,
  keys: number,
  o: { valueBytes: number; intervalS: number; diverge: number; getsPerS: number },
  say: (s: string) => void,
): Promise<KeysResult> {
  const nodes = await startCluster(root, 3, CLUSTER_START_MS, {
    args: ['--anti-entropy-interval-ms', String(o.intervalS * 1000)],
  });
  try {
    const t0 = performance.now();
    for (let from = 0; from < keys; from += 100_000) {
      const to = Math.min(keys, from + 100_000);
      const spec = { host: nodes[0]!.host, port: nodes[0]!.port, from, to };
      const r = await respLoad({
        ...spec,
        valueBytes: o.valueBytes,
        connections: 4,
        depth: 8,
        pairs: 20,
      });
      if (r.errors > 0) throw new Error(`scale-anti-entropy: loading: ${r.firstError}`);
    }
    const loadS = (performance.now() - t0) / 1000;
    say(`${keys} keys loaded in ${loadS.toFixed(1)} s`);
    const timeout = (o.intervalS * 4 + 60) * 1000 + keys / 10;
    await passesAfter(nodes, Date.now() / 1000, timeout);
    // GET latency through kvstore-0 (which asks a replica besides itself) with no pass running,
    // then during its next pass.
    const kv0 = await metrics(nodes[0]!);
    const lastEnd = kv0.get(LAST)!;
    const lastLength = kv0.get('kvstore_anti_entropy_last_pass_seconds')!;
    const nextStart = lastEnd + Math.max(o.intervalS, 9 * lastLength);
    const gets = () =>
      new PacedGets({
        host: nodes[0]!.host,
        port: nodes[0]!.port,
        keys,
        valueBytes: o.valueBytes,
        ratePerS: o.getsPerS,
      });
    const quietGets = gets();
    await quietGets.start();
    await sleep(Math.max(1000, Math.min(8000, (nextStart - Date.now() / 1000 - 3) * 1000)));
    const quiet = await quietGets.stop();
    await sleep(Math.max(0, (nextStart - 1 - Date.now() / 1000) * 1000));
    const passGets = gets();
    await passGets.start();
    await until('kvstore-0 pass not completed', await passWaitMs(nodes, timeout), async () => {
      return ((await metrics(nodes[0]!)).get(LAST) ?? 0) > lastEnd;
    });
    const during = await passGets.stop();
    if (quiet.wrong + during.wrong > 0)
      throw new Error(`scale-anti-entropy: GETs failed: ${quiet.firstWrong ?? during.firstWrong}`);
    say(
      `GET p99 ${(quiet.latency.p99Us / 1000).toFixed(2)} ms without a pass, ${(during.latency.p99Us / 1000).toFixed(2)} ms during one`,
    );
    // One whole interval, no client load: every member's passes and the digests it served.
    const before = await Promise.all(nodes.map(metrics));
    const cpu0 = nodes.map((n) => processCpuMs(n.child.pid, TICKS));
    const w0 = performance.now();
    const windowStart = Date.now() / 1000;
    await sleep(o.intervalS * 1000);
    // At least one whole pass of every member inside the window.
    await passesAfter(nodes, windowStart, timeout);
    const cpuMs = nodes.map((n, i) => processCpuMs(n.child.pid, TICKS) - cpu0[i]!);
    const windowS = (performance.now() - w0) / 1000;
    const after = await Promise.all(nodes.map(metrics));
    const hashed = after.map(
      (m, i) =>
        (m.get('kvstore_anti_entropy_keys_compared_total') ?? 0) -
        (before[i]!.get('kvstore_anti_entropy_keys_compared_total') ?? 0),
    );
    const passS = after.map((m) => m.get('kvstore_anti_entropy_last_pass_seconds') ?? 0);
    say(`passes ${passS.map((s) => s.toFixed(2)).join(', ')} s; CPU ${cpuMs.join(', ')} ms`);
    // Keys on one replica only (kvstore-2, which walks with nobody: the others find them).
    const peer = new PeerClient({
      address: `${nodes[2]!.host}:${PEER_PORT}`,
      logger: createLogger('silent', {}),
      timeoutMs: 10_000,
    });
    const wall = Date.now() + 1;
    const entries = Array.from({ length: o.diverge }, (_, i) => [
      Buffer.from(rbKey(i * Math.max(1, Math.floor(keys / o.diverge)))),
      encodeRecord({
        version: { wall, logical: 0, node: 'bench' },
        tombstone: false,
        value: Buffer.from('diverged'),
      }),
    ]);
    const moved = async () => {
      let n = 0;
      for (const m of await Promise.all(nodes.map(metrics))) {
        n += m.get('kvstore_anti_entropy_repaired_total{direction="pushed"}') ?? 0;
        n += m.get('kvstore_anti_entropy_repaired_total{direction="pulled"}') ?? 0;
      }
      return n;
    };
    const movedBefore = await moved();
    const r0 = performance.now();
    try {
      await peer.request(METHODS.apply, { e: entries });
    } finally {
      await peer.close();
    }
    await until('divergent keys not repaired', await passWaitMs(nodes, timeout), async () => {
      return (await moved()) - movedBefore >= 2 * o.diverge;
    });
    const repairS = (performance.now() - r0) / 1000;
    say(`${o.diverge} keys on one replica repaired in ${repairS.toFixed(1)} s`);
    return {
      keys,
      loadS,
      passS,
      hashed,
      cpuMs,
      windowS,
      repairS,
      repaired: (await moved()) - movedBefore,
      getsQuiet: quiet.latency,
      getsDuring: during.latency,
    };
  } finally {
    await Promise.all(nodes.map(stopServer));
  }
}

const ms = (us: number) => (us / 1000).toFixed(2);
const lat = (l: LatencySummary) =>
  `${ms(l.p50Us)} / ${ms(l.p99Us)} / ${ms(l.p999Us)} / ${ms(l.maxUs)}`;

function render(input: {
  startedAt: string;
  command: string;
  results: KeysResult[];
  o: { valueBytes: number; intervalS: number; diverge: number; getsPerS: number };
  loadBefore: number[];
  loadAfter: number[];
}): string {
  const rows = input.results.map((r) => {
    const perKey = (r.passS[0]! * 1e6) / r.keys;
    const share = `${r.cpuMs.join(' / ')} (${r.windowS.toFixed(0)} s)`;
    return `| ${r.keys.toLocaleString('en-US')} | ${r.passS.map((s) => s.toFixed(2)).join(' / ')} | ${perKey.toFixed(2)} | ${r.hashed.map((h) => h.toLocaleString('en-US')).join(' / ')} | ${share} | ${r.repairS.toFixed(1)} s (${r.repaired} copies) |`;
  });
  return `# Anti-entropy passes by key count

Run ${input.startedAt}: \`${input.command}\`. Load average ${input.loadBefore.map((l) => l.toFixed(2)).join(' ')} at start, ${input.loadAfter.map((l) => l.toFixed(2)).join(' ')} at end.

Three members on loopback, RF=3 (each pair compares every key), ${input.o.valueBytes}-byte values,
\`--anti-entropy-interval-ms ${input.o.intervalS * 1000}\`, no client load during the passes. The window
is one interval and then until every member completed a pass that started inside it; its CPU
includes the idle node's own (probes, timers).
Members: kvstore-0 walks with two members, kvstore-1 with one, kvstore-2 only answers.

| keys | last pass, s (kv0 / kv1 / kv2) | µs per key (kv0) | keys hashed in the window | CPU ms in the window (its length) | ${input.o.diverge} keys on one replica repaired in |
|---:|---|---:|---|---|---|
${rows.join('\n')}

Paced GETs of random keys through kvstore-0 (${input.o.getsPerS}/s, one connection, open loop: latency from
each request's scheduled time), first with no pass running, then from just before kvstore-0's
next pass until it completed:

| keys | no pass: p50 / p99 / p99.9 / max, ms | during a pass: p50 / p99 / p99.9 / max, ms | GETs (no pass / pass) |
|---:|---|---|---|
${input.results.map((r) => `| ${r.keys.toLocaleString('en-US')} | ${lat(r.getsQuiet)} | ${lat(r.getsDuring)} | ${r.getsQuiet.count} / ${r.getsDuring.count} |`).join('\n')}
`;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      keys: { type: 'string', default: '100000,1000000' },
      'value-bytes': { type: 'string', default: '100' },
      'interval-s': { type: 'string', default: '30' },
      diverge: { type: 'string', default: '100' },
      'gets-per-s': { type: 'string', default: '1000' },
      out: { type: 'string', default: 'bench/results' },
      'data-root': { type: 'string', default: tmpdir() },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const positive = (flag: string, raw: string) => positiveInt('scale-anti-entropy', flag, raw);
  const counts = v.keys.split(',').map((k) => positive('keys', k));
  const o = {
    valueBytes: positive('value-bytes', v['value-bytes']),
    intervalS: positive('interval-s', v['interval-s']),
    diverge: positive('diverge', v.diverge),
    getsPerS: positive('gets-per-s', v['gets-per-s']),
  };
  const say = progressLog();
  cleanupOnExit();
  const root = tempDir(v['data-root'], 'kvstore-scale-ae-');
  const startedAt = new Date().toISOString();
  const loadBefore = loadAverage();
  const results: KeysResult[] = [];
  for (const keys of counts) results.push(await measure(root, keys, o, say));
  const command = `node bench/scale-anti-entropy.ts --keys ${v.keys} --value-bytes ${o.valueBytes} --interval-s ${o.intervalS} --diverge ${o.diverge} --gets-per-s ${o.getsPerS}`;
  const md = render({ startedAt, command, results, o, loadBefore, loadAfter: loadAverage() });
  mkdirSync(v.out, { recursive: true });
  const file = join(v.out, `${reportStamp(startedAt)}-scale-anti-entropy.md`);
  writeFileSync(file, md);
  writeFileSync(
    file.replace(/\.md$/, '.json'),
    `${JSON.stringify({ startedAt, o, results }, null, 2)}\n`,
  );
  process.stdout.write(`${md}\nWrote ${file}\n`);
}

if (import.meta.main) runBench(main);
