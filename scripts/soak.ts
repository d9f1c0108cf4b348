// Soak test: a local 3-node cluster under mixed load for N minutes, sampling throughput, errors,
// memory and file descriptors, then a verdict on growth. `npm run soak -- --minutes 10`.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { KvClient } from '../src/client/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = `Usage: npm run soak -- [options]
A local 3-node cluster (client ports 18181..18183) under mixed load, sampling throughput, errors,
anonymous RSS and open fds; exits 1 on errors or a growth trend. Needs 5+ minutes (warm-up).
  --minutes N          how long to run (default 10)
  --clients N          concurrent clients (default 8)
  --sample-seconds N   seconds between samples (default 10)
  --keys N             key space (default 20000)
  --help               print this text and start nothing
Ctrl-C or SIGTERM stops the nodes and removes the temporary data directory.`;

function options(): { minutes: number; clients: number; sampleSec: number; keySpace: number } {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      clients: { type: 'string', default: '8' },
      'sample-seconds': { type: 'string', default: '10' },
      keys: { type: 'string', default: '20000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: keyof typeof values) => {
    const n = Number(values[name]);
    if (!(n > 0) || !Number.isFinite(n)) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  return {
    minutes: num('minutes'),
    clients: num('clients'),
    sampleSec: num('sample-seconds'),
    keySpace: num('keys'),
  };
}

let parsed: ReturnType<typeof options>;
try {
  parsed = options();
} catch (err) {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)} (see --help)\n`);
  process.exit(2);
}
const { minutes, clients, sampleSec, keySpace } = parsed;

const dir = mkdtempSync(join(tmpdir(), 'kvstore-soak-'));
const nodes = [0, 1, 2].map((i) => ({
  name: `soak${i}`,
  port: 18181 + i,
  peer: 17947 + i,
  http: 19191 + i,
}));
const peers = nodes.map((n) => `${n.name}=127.0.0.1:${n.peer}`).join(',');
const procs: ChildProcess[] = [];

function memFd(pid: number): { rssMiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  // Anonymous memory only: LMDB's file-backed map pages grow with the data set, not with leaks.
  const rss = Number(/RssAnon:\s+(\d+)/.exec(status)![1]) / 1024;
  return { rssMiB: Math.round(rss), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function start(): Promise<void> {
  await Promise.all(
    nodes.map(
      (n) =>
        new Promise<void>((ok, fail) => {
          const p = spawn(process.execPath, [
            join(ROOT, 'src/main.ts'),
            ...['--node-name', n.name, '--port', String(n.port), '--http-port', String(n.http)],
            ...['--peer-port', String(n.peer), '--peers', peers, '--data-dir', join(dir, n.name)],
            ...['--tombstone-grace-ms', '30000', '--gc-interval-ms', '10000'],
          ]);
          procs.push(p);
          createInterface({ input: p.stdout! }).on('line', (l) => {
            if (l.includes('"node listening"')) ok();
          });
          p.once('exit', (code) => fail(new Error(`${n.name} exited ${code}`)));
        }),
    ),
  );
}

interface Counters {
  ops: number;
  errors: number;
}

async function worker(id: number, until: number, c: Counters): Promise<void> {
  const node = nodes[id % nodes.length]!;
  const client = await KvClient.connect({ host: '127.0.0.1', port: node.port, timeoutMs: 10_000 });
  let i = 0;
  while (Date.now() < until) {
    const key = `soak:${Math.floor(Math.random() * keySpace)}`;
    const r = Math.random();
    try {
      if (r < 0.4) await client.put(key, `v-${id}-${i++}-${'x'.repeat(64)}`);
      else if (r < 0.85) await client.get(key);
      else if (r < 0.97) await client.remove(key);
      else await client.prefix(`soak:${Math.floor(Math.random() * 10)}`, { limit: 50 });
      c.ops++;
    } catch {
      c.errors++;
    }
  }
  await client.close();
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<number> {
  await start();
  const until = Date.now() + minutes * 60_000;
  const c: Counters = { ops: 0, errors: 0 };
  const work = Promise.all(Array.from({ length: clients }, (_, i) => worker(i, until, c)));
  const rows: { t: number; opsPerSec: number; errors: number; rss: number[]; fds: number[] }[] = [];
  const t0 = Date.now();
  let lastOps = 0;
  console.log('  t(s)   ops/s  errors  anon RSS MiB (per node)  open fds (per node)');
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, sampleSec * 1000));
    const s = procs.map((p) => memFd(p.pid!));
    const row = {
      t: Math.round((Date.now() - t0) / 1000),
      opsPerSec: Math.round((c.ops - lastOps) / sampleSec),
      errors: c.errors,
      rss: s.map((x) => x.rssMiB),
      fds: s.map((x) => x.fds),
    };
    lastOps = c.ops;
    rows.push(row);
    console.log(
      `${String(row.t).padStart(6)} ${String(row.opsPerSec).padStart(7)} ${String(row.errors).padStart(7)}  ${row.rss.join(' / ').padEnd(20)} ${row.fds.join(' / ')}`,
    );
  }
  await work;
  // Growth is judged on the second half, after caches and the data set have warmed up.
  const half = rows.slice(Math.floor(rows.length / 2));
  const xs = half.map((r) => r.t / 60);
  const rssSlopes = nodes.map((_, i) =>
    slope(
      xs,
      half.map((r) => r.rss[i]!),
    ),
  );
  const fdSlopes = nodes.map((_, i) =>
    slope(
      xs,
      half.map((r) => r.fds[i]!),
    ),
  );
  console.log(`\nops ${c.ops}, errors ${c.errors}, ${minutes} min, ${clients} clients`);
  console.log(
    `RSS trend (MiB/min, second half): ${rssSlopes.map((s) => s.toFixed(2)).join(' / ')}`,
  );
  console.log(`fd trend (per min, second half): ${fdSlopes.map((s) => s.toFixed(2)).join(' / ')}`);
  const growing = rssSlopes.some((s) => s > 2) || fdSlopes.some((s) => s > 1);
  console.log(growing ? 'verdict: GROWTH (investigate)' : 'verdict: no growth trend');
  return c.errors > 0 || growing ? 1 : 0;
}

/** Stops the nodes (SIGTERM, SIGKILL after 15 s), then removes the data directory. */
async function stop(): Promise<void> {
  const running = procs.filter((p) => p.exitCode === null && p.signalCode === null);
  await Promise.all(
    running.map(
      (p) =>
        new Promise<void>((done) => {
          const force = setTimeout(() => p.kill('SIGKILL'), 15_000);
          p.once('exit', () => {
            clearTimeout(force);
            done();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}

let stopping = false;
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    stop().finally(() => process.exit(code));
  });
}
main().then(
  async (code) => {
    await stop();
    process.exit(code);
  },
  async (err: unknown) => {
    console.error(err);
    await stop();
    process.exit(1);
  },
);
