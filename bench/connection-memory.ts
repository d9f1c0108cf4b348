// What one idle client connection costs in memory: N idle connections (text, RESP, TLS) into a
// fresh node, anonymous RSS before, with them open, and after they close; Redis for reference.
// `npm run bench:connections -- [--connections N]`. A measurement, not a test.

import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { forceGc } from './memory.ts';
import {
  cleanupSync,
  freePort,
  processRss,
  type Server,
  startKvstore,
  startRedis,
  stopServer,
  tempDir,
} from './procs.ts';

const USAGE = `Usage: npm run bench:connections -- [--connections N]
Opens N idle client connections (default 5000) to a fresh kvstore node per kind (text, RESP, TLS)
and to Redis, each after one PING, and prints the anonymous RSS they cost per connection.`;

type Kind = 'text' | 'resp' | 'tls' | 'redis';
const PING: Record<Kind, string> = {
  text: 'PING\n',
  resp: '*1\r\n$4\r\nPING\r\n',
  tls: 'PING\n',
  redis: '*1\r\n$4\r\nPING\r\n',
};

function open(kind: Kind, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s =
      kind === 'tls'
        ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false })
        : connect({ host: '127.0.0.1', port });
    s.once('error', reject);
    s.once('data', () => resolve(s)); // the reply to the PING: the node set the connection up
    s.once(kind === 'tls' ? 'secureConnect' : 'connect', () => s.write(PING[kind]));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** Anonymous RSS, and V8's heap in use after a full GC (kvstore only: over its inspector). */
async function sample(pid: number | undefined, inspectPort: number | null) {
  const heap = inspectPort === null ? null : (await forceGc(inspectPort)).after.heapUsed;
  return { anon: processRss(pid).anon, heap };
}

async function measure(kind: Kind, n: number, root: string): Promise<string> {
  let server: Server;
  let inspectPort: number | null = null;
  if (kind === 'redis') server = await startRedis(root, false);
  else {
    inspectPort = await freePort();
    const args = ['--max-connections', String(n + 100)];
    if (kind === 'tls') {
      const dir = tempDir(root, 'kvstore-cert-');
      const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
      execFileSync(
        'openssl',
        [
          ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
          ...['-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '1'],
        ],
        { stdio: 'ignore' },
      );
      args.push('--tls-cert-file', cert, '--tls-key-file', key);
    }
    server = await startKvstore(root, { args, nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`] });
  }
  const pid = server.child.pid;
  const warm = await open(kind, server.port);
  await sleep(2000);
  const before = await sample(pid, inspectPort);
  const sockets: Socket[] = [warm];
  for (let i = 1; i < n; i += 250) {
    const batch = Math.min(250, n - i);
    sockets.push(
      ...(await Promise.all(Array.from({ length: batch }, () => open(kind, server.port)))),
    );
  }
  await sleep(2000);
  const during = await sample(pid, inspectPort);
  for (const s of sockets) s.destroy();
  await Promise.all(sockets.map((s) => (s.closed ? null : once(s, 'close'))));
  await sleep(3000);
  const after = await sample(pid, inspectPort);
  await stopServer(server);
  const kib = (bytes: number) => (bytes / n / 1024).toFixed(1);
  const mib = (bytes: number) => (bytes / MiB).toFixed(1);
  const heap =
    before.heap === null || during.heap === null ? 'n/a' : kib(during.heap - before.heap);
  return `| ${kind} | ${n} | ${mib(before.anon)} | ${mib(during.anon)} | ${kib(during.anon - before.anon)} | ${heap} | ${mib(after.anon)} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '5000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const n = Number(values.connections);
  if (!Number.isInteger(n) || n < 1) throw new Error('--connections must be a positive integer');
  const root = tempDir(tmpdir(), 'kvstore-connmem-');
  console.log(
    '| server | connections | anon RSS before (MiB) | with them open (MiB) | RSS per connection (KiB) | V8 heap per connection after GC (KiB) | anon RSS after they closed (MiB) |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const kind of ['text', 'resp', 'tls', 'redis'] as const) {
    console.log(await measure(kind, n, root));
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanupSync();
    process.exit(1);
  });
}
main().then(
  () => cleanupSync(),
  (err: unknown) => {
    console.error(`connection-memory: ${err instanceof Error ? err.message : String(err)}`);
    cleanupSync();
    process.exitCode = 1;
  },
);
