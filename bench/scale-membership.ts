// scale-membership: membership and probe traffic per node for 3..1000 members, real membership code on a simulated network.
//
// Run: node bench/scale-membership.ts [--members 3,10,50,100,1000] [--seconds 3] [--out bench/results]
//
// What is REAL here (the code every node runs, imported from src/):
// - `Membership` (src/membership/manager.ts): the member list from a `staticSource`, and its
//   failure detector, `probeNow()`, which probes every other member once per probe interval.
// - The bytes of every probe: the request is `encodeRequest(id, 'hello', {})` and the answer
//   `encodeResult(id, hello)` (src/peer/codec.ts, msgpack), each behind the 4-byte frame header
//   (FRAME_HEADER_BYTES); the prober decodes it with `decodeResponse` and `readHello`, as
//   src/node/cluster.ts does.
// - The hello each member answers has the shape src/node/cluster.ts builds (selfHello): the
//   ring id and transfer id of a real `Topology` of all N members at rest, its settled ring
//   record (every member's name and 16-hex-digit incarnation), and the load figures.
//
// What is SIMULATED, and why:
// - The network: no sockets. A probe is a function call that counts messages and bytes at both
//   ends (frame bytes; TCP/IP and TLS overhead and the one-time auth handshake are not counted).
//   1000 real processes do not fit on this 2-core machine, and the byte counts do not depend on
//   the transport.
// - Time: each simulated second is one `probeNow()` round on every node (the default
//   --probe-interval-ms is 1000), so the counts are per second of a real cluster however long
//   the simulation takes to compute them. Resolving the static source sends nothing.
// - Above --full-up-to members (default 100), only --sample nodes (default 3) run Membership;
//   the others only answer, and each sends every sampled node the one hello probe per round its
//   own Membership would send. The sampled nodes' counts (in and out) are therefore complete;
//   the row is marked "sampled".
// - CPU: both ends of a probe run in this one process. "CPU per node" is the process CPU time
//   per probe exchange times the exchanges one node takes part in per second (N-1 as prober,
//   N-1 as target, each exchange's cost shared by its two ends): an estimate, not a profile.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { DEFAULTS } from '../src/config/index.ts';
import {
  type MemberAddress,
  Membership,
  readHello,
  settledRing,
  staticSource,
  Topology,
} from '../src/membership/index.ts';
import { createLogger } from '../src/observability/index.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResult,
  FRAME_HEADER_BYTES,
} from '../src/peer/index.ts';
import { type HelloReply, METHODS } from '../src/replica/index.ts';
import { positiveInt } from './procs.ts';
import { loadAverage, reportStamp } from './report.ts';
import { markdownTable, num } from './table.ts';

const HELP = `Usage: node bench/scale-membership.ts [options]

Measures membership and probe traffic per node (messages/s, bytes/s) for clusters of each size,
driving the real Membership failure detector over a simulated in-process network.

Options:
  --members <list>    cluster sizes, comma-separated (default 3,10,50,100,1000)
  --seconds <n>       simulated seconds (probe rounds) measured per size (default 3)
  --full-up-to <n>    sizes up to this run Membership on every node (default 100)
  --sample <n>        above that, nodes that run Membership (default 3)
  --out <dir>         where the report goes (default bench/results)
  --help              this text
`;

interface Counters {
  msgsOut: number;
  msgsIn: number;
  bytesOut: number;
  bytesIn: number;
}

/** One cluster size's result: per node figures are means over the nodes running Membership. */
export interface ScaleRow {
  readonly members: number;
  /** Nodes that ran Membership (all of them, or a sample). */
  readonly probers: number;
  readonly seconds: number;
  readonly msgsPerNode: number;
  readonly bytesPerNode: number;
  readonly bytesSentPerNode: number;
  readonly helloBytes: number;
  readonly clusterBytes: number;
  readonly cpuMsPerNode: number;
  readonly downSeen: number;
}

const PROBE_INTERVAL_MS = DEFAULTS.probeIntervalMs;

function memberAt(i: number): MemberAddress {
  return {
    name: `kvstore-${i}`,
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    peerPort: 7946,
  };
}

/** The hello of each member of an N-member cluster at rest, as src/node/cluster.ts builds it. */
function helloFactory(members: readonly MemberAddress[]): (name: string) => HelloReply {
  const names = members.map((m) => m.name);
  const incarnations = Object.fromEntries(
    names.map((n, i) => [n, i.toString(16).padStart(16, '0')]),
  );
  const topology = new Topology(
    names,
    settledRing(1, names, incarnations),
    DEFAULTS.replicationFactor,
  );
  const settled = topology.settledRing;
  const ringId = topology.target.id;
  const rebalanced = topology.transferId;
  return (name) => ({
    name,
    incarnation: incarnations[name]!,
    status: 'active',
    ringId,
    rebalanced,
    settled,
    hints: 0,
    load: { keys: 1_000_000, tombstones: 1_000, bytes: 2 ** 30, hintsFor: {}, transfer: null },
  });
}

/** The simulated network: a hello probe is a call that encodes, counts and decodes both frames. */
class SimNet {
  readonly counters = new Map<string, Counters>();
  exchanges = 0;
  readonly #hello: (name: string) => HelloReply;
  readonly #ids = new Map<string, number>();

  constructor(names: readonly string[], hello: (name: string) => HelloReply) {
    this.#hello = hello;
    for (const n of names) this.counters.set(n, { msgsOut: 0, msgsIn: 0, bytesOut: 0, bytesIn: 0 });
  }

  #send(from: string, to: string, body: Buffer): void {
    const bytes = FRAME_HEADER_BYTES + body.length;
    const a = this.counters.get(from)!;
    const b = this.counters.get(to)!;
    a.msgsOut++;
    a.bytesOut += bytes;
    b.msgsIn++;
    b.bytesIn += bytes;
  }

  /** `from` asks `to` who it is: the request and the answer cross the network. */
  probe(from: string, to: string): HelloReply {
    const id = (this.#ids.get(from) ?? 0) + 1;
    this.#ids.set(from, id);
    const request = encodeRequest(id, METHODS.hello, {});
    this.#send(from, to, request);
    const asked = decodeRequest(request);
    const answer = encodeResult(asked.i, this.#hello(to));
    this.#send(to, from, answer);
    this.exchanges++;
    const res = decodeResponse(answer);
    if (!res.ok) throw new Error(`scale-membership: ${to} answered ${res.code}`);
    return res.r as HelloReply;
  }

  reset(): void {
    this.exchanges = 0;
    for (const c of this.counters.values())
      Object.assign(c, { msgsOut: 0, msgsIn: 0, bytesOut: 0, bytesIn: 0 });
  }
}

/** Runs `seconds` probe rounds (after one warm-up round) on a cluster of `n` members. */
export async function measure(
  n: number,
  seconds: number,
  fullUpTo: number,
  sample: number,
): Promise<ScaleRow> {
  const members = Array.from({ length: n }, (_, i) => memberAt(i));
  const hello = helloFactory(members);
  const net = new SimNet(
    members.map((m) => m.name),
    hello,
  );
  const probers = n <= fullUpTo ? members : members.slice(0, Math.min(sample, n));
  const proberNames = new Set(probers.map((m) => m.name));
  const logger = createLogger('silent', {});
  const nodes = probers.map((self) => {
    const m = new Membership({
      self,
      source: staticSource(members),
      probe: async (to) => readHello(net.probe(self.name, to.name)),
      selfHello: () => hello(self.name),
      resolveIntervalMs: DEFAULTS.resolveIntervalMs,
      probeIntervalMs: PROBE_INTERVAL_MS,
      probeFailures: DEFAULTS.probeFailures,
      logger,
      registry: new Registry(),
    });
    return m;
  });
  for (const m of nodes) await m.resolveNow();
  const round = async () => {
    await Promise.all(nodes.map((m) => m.probeNow()));
    // Members that do not run Membership here still probe the sampled ones once per round.
    for (const from of members) {
      if (proberNames.has(from.name)) continue;
      for (const to of probers) readHello(net.probe(from.name, to.name));
    }
  };
  await round();
  net.reset();
  const cpu0 = process.cpuUsage();
  for (let s = 0; s < seconds; s++) await round();
  const cpu = process.cpuUsage(cpu0);
  const scale = 1000 / PROBE_INTERVAL_MS / seconds;
  let msgs = 0;
  let bytes = 0;
  let sent = 0;
  for (const p of probers) {
    const c = net.counters.get(p.name)!;
    msgs += c.msgsOut + c.msgsIn;
    bytes += c.bytesOut + c.bytesIn;
    sent += c.bytesOut;
  }
  const downSeen = nodes.reduce(
    (k, m) => k + m.members().filter((v) => v.state !== 'up').length,
    0,
  );
  for (const m of nodes) m.stop();
  const cpuMsPerExchange = (cpu.user + cpu.system) / 1000 / Math.max(1, net.exchanges);
  const bytesSentPerNode = (sent / probers.length) * scale;
  return {
    members: n,
    probers: probers.length,
    seconds,
    msgsPerNode: (msgs / probers.length) * scale,
    bytesPerNode: (bytes / probers.length) * scale,
    bytesSentPerNode,
    helloBytes: FRAME_HEADER_BYTES + encodeResult(1, hello(members[0]!.name)).length,
    clusterBytes: bytesSentPerNode * n,
    cpuMsPerNode: cpuMsPerExchange * (n - 1) * (1000 / PROBE_INTERVAL_MS),
    downSeen,
  };
}

const human = (b: number) =>
  b >= 2 ** 30
    ? `${(b / 2 ** 30).toFixed(2)} GiB`
    : b >= 2 ** 20
      ? `${(b / 2 ** 20).toFixed(1)} MiB`
      : b >= 1024
        ? `${(b / 1024).toFixed(1)} KiB`
        : `${Math.round(b)} B`;

/** The result table: one row per cluster size. */
export function renderTable(rows: readonly ScaleRow[]): string {
  const header = [
    'members',
    'probing nodes',
    'messages/s per node',
    'bytes/s per node',
    'hello reply',
    'whole-cluster bytes/s',
    'probe CPU per node',
  ];
  return markdownTable([
    header,
    ...rows.map((r) => [
      num(r.members),
      r.probers === r.members ? 'all' : `${r.probers} (sampled)`,
      num(r.msgsPerNode),
      `${num(r.bytesPerNode)} (${human(r.bytesPerNode)})`,
      `${num(r.helloBytes)} B`,
      `${num(r.clusterBytes)} (${human(r.clusterBytes)})`,
      `${r.cpuMsPerNode.toFixed(r.cpuMsPerNode >= 10 ? 0 : 2)} ms/s`,
    ]),
  ]);
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      members: { type: 'string', default: '3,10,50,100,1000' },
      seconds: { type: 'string', default: '3' },
      'full-up-to': { type: 'string', default: '100' },
      sample: { type: 'string', default: '3' },
      out: { type: 'string', default: join(import.meta.dirname, 'results') },
      help: { type: 'boolean', default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const positive = (flag: string, raw: string) => positiveInt('scale-membership', flag, raw);
  const sizes = v.members.split(',').map((s) => positive('members', s.trim()));
  if (sizes.some((s) => s < 2))
    throw new Error('scale-membership: --members sizes must be at least 2');
  const seconds = positive('seconds', v.seconds);
  const fullUpTo = positive('full-up-to', v['full-up-to']);
  const sample = positive('sample', v.sample);
  const loadBefore = loadAverage();
  const startedAt = new Date().toISOString();
  const rows: ScaleRow[] = [];
  for (const n of sizes) {
    const t0 = performance.now();
    const row = await measure(n, seconds, fullUpTo, sample);
    rows.push(row);
    process.stderr.write(
      `${n} members: ${((performance.now() - t0) / 1000).toFixed(1)} s to simulate\n`,
    );
  }
  const table = renderTable(rows);
  const down = rows.reduce((k, r) => k + r.downSeen, 0);
  const md = [
    `# Membership and probe traffic by cluster size (${startedAt})`,
    '',
    `\`node bench/scale-membership.ts --members ${sizes.join(',')} --seconds ${seconds}\`: the real`,
    '`Membership` failure detector and peer codec over a simulated network (see the script header).',
    `Per node: sent + received, frame bytes, each node probing at the default ${PROBE_INTERVAL_MS} ms`,
    'interval; whole-cluster: bytes sent by all nodes. "probe CPU" is an in-process estimate.',
    '',
    table,
    '',
    `Members seen not up at the end (must be 0): ${down}.`,
    `Load average ${loadBefore.join(' ')} -> ${loadAverage().join(' ')}.`,
    '',
  ].join('\n');
  mkdirSync(v.out, { recursive: true });
  const file = join(v.out, `${reportStamp(startedAt)}-scale-membership.md`);
  writeFileSync(file, md);
  process.stdout.write(`${md}\nWrote ${file}\n`);
}

if (import.meta.main) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
