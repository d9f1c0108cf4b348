// Runs a local 3-node cluster as plain processes: kvstore1..3 on the seed's ports 8081..8083.

import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '..');
const count = Number(process.env.KV_LOCAL_NODES ?? 3);
const dataRoot = resolve(process.env.KV_LOCAL_DATA ?? join(ROOT, 'kvstore-data'));
const nodes = Array.from({ length: count }, (_, i) => ({
  name: `kvstore${i + 1}`,
  port: 8081 + i,
  httpPort: 9091 + i,
  peerPort: 7947 + i,
}));
const peers = nodes.map((n) => `${n.name}=127.0.0.1:${n.peerPort}`).join(',');
const children: ChildProcess[] = [];

for (const n of nodes) {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'src/main.ts'),
      ...['--node-name', n.name, '--port', String(n.port), '--http-port', String(n.httpPort)],
      ...['--peer-port', String(n.peerPort), '--peers', peers],
      ...['--data-dir', join(dataRoot, n.name), ...process.argv.slice(2)],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    process.stdout.write(`${n.name.padEnd(9)}| ${line}\n`);
  });
  child.on('exit', (code, signal) => {
    process.stdout.write(`${n.name.padEnd(9)}| exited (${code ?? signal})\n`);
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(0);
  });
  children.push(child);
}
process.stdout.write(
  `local cluster: client ports ${nodes.map((n) => n.port).join(', ')}; metrics on ${nodes
    .map((n) => n.httpPort)
    .join(', ')}; data in ${dataRoot}; Ctrl-C stops all\n`,
);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    for (const c of children) c.kill('SIGTERM');
  });
}
