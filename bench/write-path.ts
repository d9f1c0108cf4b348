// `node bench/write-path.ts`: the CPU a durable write (or, --op get, a quorum read) costs along its
// path (coordinator, local store and log, the replicas' handlers, stores and logs) in one process,
// without the sockets: what a change to that code saves, apart from the machine's load and the kernel.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, constants as perf } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { ClusterCoordinator } from '../src/coordinator/index.ts';
import { KvError, toKvError } from '../src/errors/index.ts';
import { settledRing, Topology } from '../src/membership/index.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeError,
  encodeRequest,
  encodeResult,
} from '../src/peer/index.ts';
import type { Reply } from '../src/protocol/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  Replicas,
} from '../src/replica/index.ts';
import { Storage } from '../src/storage/index.ts';

const USAGE = `Usage: node bench/write-path.ts [options]
Three stores in this process (data dirs under the OS temp dir), node a coordinating RF=3 W=2
PUTs; the other two answer through their real replica handlers, every request and reply going
through the peer codec (msgpack) as on the wire, with no socket. \`clients\` writers each keep
one PUT in flight (as many connections at pipeline 1); the requests to a member made in one
turn go as one apply, as on a node. Prints per PUT, per round and their medians: the main
thread's CPU (the JavaScript of the path: steadier on a shared machine), the process's CPU
(user + system, every thread: the logs' writes, LMDB's commits and V8's helpers included),
and the young-generation collections per 1,000 PUTs (what the path allocates).
  --clients N    concurrent writers (default 50)
  --writes N     PUTs per round (default 50000)
  --rounds N     rounds (default 5; the first also warms up and is not counted)
  --keys N       key space (default 100000), 100-byte values
  --members N    3 (default), or 1: one store, RF=1 (a single node's durable SET: the store,
                 its log and LMDB without the replicas)
  --op put|get   put (default), or get: R=2 GETs of the keys (every one filled first), each
                 counted for the reply budget first (Coordinator.sizeHere) as a client GET is,
                 read repair's share of turns asking every replica (--read-repair-chance)
  --read-repair-chance X   for --op get (default 0, the node's)
Also prints each round's PUT latency p99 and max (from the call to its resolution).`;

const { values: o } = parseArgs({
  options: {
    clients: { type: 'string', default: '50' },
    writes: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '5' },
    keys: { type: 'string', default: '100000' },
    members: { type: 'string', default: '3' },
    op: { type: 'string', default: 'put' },
    'read-repair-chance': { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const clients = Number(o.clients);
const writes = Number(o.writes);
const rounds = Number(o.rounds);
const keys = Number(o.keys);
const op = o.op;
if (op !== 'put' && op !== 'get') throw new Error('bench/write-path: --op put or get');
const OP = op.toUpperCase();

const root = mkdtempSync(join(tmpdir(), 'kvstore-write-path-'));
const names = o.members === '1' ? ['a'] : ['a', 'b', 'c'];
if (o.members !== '1' && o.members !== '3') throw new Error('bench/write-path: --members 1 or 3');
/** Each member's store and the replica handler that serves it (incarnation `inc-<name>`). */
function member(name: string) {
  const storage = Storage.open({ path: join(root, name), nodeName: name });
  const hello = () => ({}) as HelloReply;
  const incarnation = `inc-${name}`;
  return {
    storage,
    handler: createReplicaHandler({ storage, hello, incarnation, maxScanEntries: 1 }),
  };
}
const members = new Map(names.map((n) => [n, member(n)] as const));
let id = 0;
/** A peer request as the wire has it: encoded, decoded, handled, its reply encoded and decoded. */
const call: PeerCall = async (name, method, body) => {
  const req = decodeRequest(encodeRequest(++id, method, body));
  let frame: Buffer;
  try {
    frame = encodeResult(req.i, await members.get(name)!.handler(req.m, req.b));
  } catch (err) {
    frame = encodeError(req.i, toKvError(err, 'peer'));
  }
  const res = decodeResponse(frame);
  if (!res.ok) throw new KvError(res.code, res.message);
  return res.r;
};
const recorded = Object.fromEntries(names.map((n) => [n, `inc-${n}`]));
const topology = new Topology(names, settledRing(1, names, recorded), names.length);
const local = members.get('a')!.storage;
const coordinator = new ClusterCoordinator({
  storage: local,
  topology,
  replicas: new Replicas('a', local, call, (n) => topology.readTerms(n)),
  isUp: () => true,
  hint: () => {
    throw new Error('bench/write-path: a replica failed a write');
  },
  info: () => ({}),
  readQuorum: Math.min(2, names.length),
  writeQuorum: Math.min(2, names.length),
  readRepairChance: op === 'get' ? Number(o['read-repair-chance']) : 0,
  readSpeculateMs: 1000,
  maxScanKeys: 100,
  registry: new Registry(),
});

const value = Buffer.alloc(100, 'v');
const key = (n: number) => Buffer.from(`key:${String(n).padStart(12, '0')}`);

let scavenges = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === perf.NODE_PERFORMANCE_GC_MINOR) scavenges++;
  }
}).observe({ entryTypes: ['gc'] });

interface Round {
  readonly mainUs: number;
  readonly processUs: number;
  readonly scavengesPer1k: number;
  /** PUT latency, ms. */
  readonly p99: number;
  readonly max: number;
}

async function round(): Promise<Round> {
  let left = writes;
  const process0 = process.cpuUsage();
  const main0 = process.threadCpuUsage();
  const scavenges0 = scavenges;
  const latencies = new Float64Array(writes);
  let at = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (left-- > 0) {
        const started = performance.now();
        const k = key(Math.floor(Math.random() * keys));
        let reply: Reply;
        if (op === 'put') reply = await coordinator.execute({ type: 'put', key: k, value });
        else {
          coordinator.sizeHere(k);
          reply = await coordinator.execute({ type: 'get', key: k });
        }
        latencies[at++] = performance.now() - started;
        if (reply.type !== (op === 'put' ? 'ok' : 'value'))
          throw new Error(`bench/write-path: ${OP} said ${reply.type}`);
      }
    }),
  );
  latencies.sort();
  const main = process.threadCpuUsage(main0);
  const all = process.cpuUsage(process0);
  // Observer entries arrive after the collection: let them in.
  await new Promise((r) => setImmediate(r));
  return {
    mainUs: (main.user + main.system) / writes,
    processUs: (all.user + all.system) / writes,
    scavengesPer1k: ((scavenges - scavenges0) * 1000) / writes,
    p99: latencies[Math.floor(writes * 0.99)]!,
    max: latencies[writes - 1]!,
  };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
try {
  if (op === 'get') {
    // Every key filled, 256 PUTs in flight.
    for (let n = 0; n < keys; n += 256) {
      const batch = Array.from({ length: Math.min(256, keys - n) }, (_, i) =>
        coordinator.execute({ type: 'put', key: key(n + i), value }),
      );
      await Promise.all(batch);
    }
  }
  const done: Round[] = [];
  const show = (r: Round) =>
    `main thread ${r.mainUs.toFixed(1)} µs, process ${r.processUs.toFixed(1)} µs CPU per ${OP}, ${r.scavengesPer1k.toFixed(2)} scavenges per 1,000, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms`;
  for (let n = 0; n < rounds; n++) {
    const r = await round();
    console.log(`round ${n}: ${show(r)}${n === 0 ? ' (warm-up)' : ''}`);
    if (n > 0) done.push(r);
  }
  const med = (f: (r: Round) => number) => median(done.map(f));
  console.log(
    `median of ${done.length} rounds: ${show({ mainUs: med((r) => r.mainUs), processUs: med((r) => r.processUs), scavengesPer1k: med((r) => r.scavengesPer1k), p99: med((r) => r.p99), max: med((r) => r.max) })}`,
  );
} finally {
  for (const m of members.values()) await m.storage.close();
  rmSync(root, { recursive: true, force: true });
}
