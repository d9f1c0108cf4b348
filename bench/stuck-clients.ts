// Where a coordinator's memory goes when many clients stop reading: a 3-node cluster, N clients
// that each pipeline M GETs of a 1 MiB value and never read, then the coordinator's anonymous
// RSS against the replies it holds (kvstore_client_output_bytes), process.memoryUsage() before
// and after a full GC, and after glibc's malloc_trim(0) (through gdb). A measurement, not a
// test: `node bench/stuck-clients.ts [--clients 40] [--gets 400] [--trace]` (docs/operations.md,
// "Memory after a burst"). The environment (MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX) passes to
// the nodes.

import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { startCluster } from './cluster.ts';
import { type Inspector, memoryUsage, openInspector } from './inspector.ts';
import {
  cleanupSync,
  freePort,
  processRss,
  type Server,
  scrapeMetrics,
  stopServer,
  tempDir,
} from './procs.ts';
import { respCall } from './respload.ts';

const MiB = 1024 * 1024;
/** How long the clients run before the node is measured: every close is done by then. */
const SETTLE_MS = 12_000;
const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '40' },
    gets: { type: 'string', default: '400' },
    trace: { type: 'boolean', default: false },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => (b / MiB).toFixed(0);
const EVICTED = 'kvstore_connections_rejected_total{reason="output_full"}';

/** Prints the coordinator's memory, what it holds of replies, and the peers' anonymous RSS. */
async function sample(what: string, nodes: Server[], inspector: Inspector) {
  const [coord] = nodes;
  const m = await memoryUsage(inspector);
  const anon = processRss(coord!.child.pid).anon;
  const metrics = await scrapeMetrics(coord!.host, 9090);
  const held = metrics.get('kvstore_client_output_bytes') ?? 0;
  const peers = nodes.slice(1).map((n) => mib(processRss(n.child.pid).anon));
  console.log(
    `${what}: anon ${mib(anon)} MiB = heapTotal ${mib(m.heapTotal)} + arrayBuffers ${mib(m.arrayBuffers)} + other ${mib(anon - m.heapTotal - m.arrayBuffers)} (heapUsed ${mib(m.heapUsed)}); replies held ${mib(held)} MiB, closed ${metrics.get(EVICTED)}; peers anon ${peers.join(', ')} MiB`,
  );
  return { anon, held };
}

/** Opens the clients; samples the coordinator's RSS (and with --trace its metrics) meanwhile. */
async function stuckClients(coord: Server): Promise<{ sockets: Socket[]; peak: number }> {
  const gets = Number(values.gets);
  const req = Buffer.from(Array.from({ length: gets }, (_, i) => `GET big${i % 8}\n`).join(''));
  const sockets = Array.from({ length: Number(values.clients) }, () => {
    const s = connect({ host: coord.host, port: coord.port }, () => {
      s.pause();
      s.write(req);
    });
    s.on('error', () => {});
    return s;
  });
  let peak = 0;
  const t0 = Date.now();
  let traced = 0;
  while (Date.now() - t0 < SETTLE_MS) {
    peak = Math.max(peak, processRss(coord.child.pid).anon);
    if (values.trace && Date.now() - traced >= 250) {
      traced = Date.now();
      const m = await scrapeMetrics(coord.host, 9090);
      const held = m.get('kvstore_client_output_bytes') ?? 0;
      const started = m.get('kvstore_requests_total{command="get"}');
      const reserved = m.get('kvstore_client_reply_reserved_bytes') ?? 0;
      const waiting = m.get('kvstore_client_reply_waiting_connections');
      console.log(
        `  ${traced - t0} ms: anon ${mib(processRss(coord.child.pid).anon)} MiB, held ${mib(held)} MiB, in the making ${mib(reserved)} MiB (${waiting} waiting), closed ${m.get(EVICTED)}, GETs started ${started}`,
      );
    }
    await sleep(50);
  }
  return { sockets, peak };
}

async function main() {
  const root = tempDir(tmpdir(), 'kvstore-stuck-');
  const inspectPort = await freePort();
  const nodes = await startCluster(root, 3, undefined, { inspectPort });
  try {
    const coord = nodes[0]!;
    const value = 'v'.repeat(MiB);
    for (let i = 0; i < 8; i++) await respCall(coord.host, coord.port, ['SET', `big${i}`, value]);
    const inspector = await openInspector(inspectPort, coord.host);
    await inspector.call('HeapProfiler.collectGarbage');
    const before = await sample('before', nodes, inspector);
    const { sockets, peak } = await stuckClients(coord);
    console.log(`peak anon ${mib(peak)} MiB (+${mib(peak - before.anon)})`);
    await sample('settled', nodes, inspector);
    await inspector.call('HeapProfiler.collectGarbage');
    await sleep(500);
    const gc = await sample('after a full GC', nodes, inspector);
    const trim = ['-p', String(coord.child.pid), '-batch', '-ex', 'call (int) malloc_trim(0)'];
    execFileSync('gdb', trim, { stdio: 'ignore', timeout: 60_000 });
    const trimmed = await sample('after malloc_trim(0)', nodes, inspector);
    const beyond = (s: { anon: number; held: number }) => mib(s.anon - before.anon - s.held);
    console.log(
      `beyond the replies held: after GC +${beyond(gc)}, after trim +${beyond(trimmed)} MiB`,
    );
    for (const s of sockets) s.destroy();
    await sleep(2000);
    await sample('clients gone', nodes, inspector);
    inspector.close();
  } finally {
    await Promise.all(nodes.map(stopServer));
    cleanupSync();
  }
}

await main();
