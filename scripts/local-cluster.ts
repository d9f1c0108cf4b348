// Runs a local 3-node cluster as plain processes: kvstore1..3 on the seed's ports 8081..8083.
//
// Ctrl-C drains every node. The terminal signals the whole process group, nodes included, and
// this script sends each node one SIGTERM as well (for a `kill` of this script alone); a node
// takes a second signal within its 1 s grace period as part of the same stop and keeps
// draining. A second Ctrl-C, later than that, makes each node exit at once. The exit code is 0
// when every node exited 0.
//
// Environment: KV_LOCAL_NODES (3), KV_LOCAL_DATA (./kvstore-cluster-data), KV_LOCAL_HOST
// (127.0.0.1), KV_LOCAL_PORT_OFFSET (0, added to every port). Arguments go to every node.

import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = `Usage: npm run cluster [-- <kvstore options for every node>]
Starts kvstore1..N as local processes: client ports 8081.., HTTP 9091.., peer 7947...
Environment: KV_LOCAL_NODES (default 3), KV_LOCAL_DATA (default ./kvstore-cluster-data),
  KV_LOCAL_HOST (default 127.0.0.1), KV_LOCAL_PORT_OFFSET (default 0, added to every port).
Ctrl-C drains every node (each exits 0); a second Ctrl-C, over a second later, stops them at once.`;
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const count = Number(process.env.KV_LOCAL_NODES ?? 3);
const host = process.env.KV_LOCAL_HOST || '127.0.0.1';
const offset = Number(process.env.KV_LOCAL_PORT_OFFSET ?? 0);
const dataRoot = resolve(process.env.KV_LOCAL_DATA ?? join(ROOT, 'kvstore-cluster-data'));
const nodes = Array.from({ length: count }, (_, i) => ({
  name: `kvstore${i + 1}`,
  port: offset + 8081 + i,
  httpPort: offset + 9091 + i,
  peerPort: offset + 7947 + i,
}));
const peers = nodes.map((n) => `${n.name}=${host}:${n.peerPort}`).join(',');
const children: ChildProcess[] = [];
let failed = false;

for (const n of nodes) {
  // Through the launcher, as the image and npm's bin start a node: its `#!` line's Node flags.
  const child = spawn(
    join(ROOT, 'bin/kvstore.js'),
    [
      ...['--node-name', n.name, '--host', host, '--port', String(n.port)],
      ...['--http-port', String(n.httpPort), '--peer-port', String(n.peerPort), '--peers', peers],
      ...['--data-dir', join(dataRoot, n.name), ...process.argv.slice(2)],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    process.stdout.write(`${n.name.padEnd(9)}| ${line}\n`);
  });
  child.on('exit', (code, signal) => {
    process.stdout.write(`${n.name.padEnd(9)}| exited (${code ?? signal})\n`);
    if (code !== 0) failed = true;
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) {
      process.exit(failed ? 1 : 0);
    }
  });
  children.push(child);
}
process.stdout.write(
  `local cluster: client ports ${nodes.map((n) => n.port).join(', ')} on ${host}; metrics on ${nodes
    .map((n) => n.httpPort)
    .join(', ')}; data in ${dataRoot}; Ctrl-C stops all\n`,
);
let forwarded = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    // Once: later Ctrl-Cs reach the nodes from the terminal and count there.
    if (forwarded) return;
    forwarded = true;
    for (const c of children) c.kill('SIGTERM');
  });
}
