// retransmitting() (peer/socket.ts): what the kernel says of one socket is read from that socket's
// line of /proc/net/tcp, also when another socket of the process has the same local port and the
// same remote port (Linux gives one local port to connections to different hosts; peers listen on
// one port, 7946): one connection to a member whose link is down, one to a live member.
// Real sockets in a network namespace of their own, whose firewall drops what one host receives.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { NODE } from '../helpers/node-process.ts';

const run = promisify(execFile);
const SOCKET = join(import.meta.dirname, '../../src/peer/socket.ts');

/** Runs in the namespace: two listeners, a connection to each from one local port, one link cut. */
const script = `
const net = require('node:net');
const { execFileSync } = require('node:child_process');
const P = 7946;
const listen = (host) => new Promise((r) => net.createServer((c) => c.resume()).listen(P, host, r));
const open = (host) =>
  new Promise((res, rej) => {
    const s = net.connect({ host, port: P, localAddress: '127.0.0.1', localPort: 40000 }, () => res(s));
    s.on('error', rej);
  });
import(${JSON.stringify(SOCKET)}).then(async ({ retransmitting }) => {
  await listen('127.0.0.2');
  await listen('127.0.0.3');
  const live = await open('127.0.0.2');
  const cut = await open('127.0.0.3');
  if (live.localPort !== cut.localPort) throw new Error('not one local port');
  // The link to 127.0.0.3 goes down: what is sent to it is resent, never acknowledged.
  execFileSync('iptables', ['-A', 'INPUT', '-d', '127.0.0.3', '-j', 'DROP']);
  cut.write(Buffer.alloc(64 * 1024, 1));
  live.write('x');
  const end = Date.now() + 20_000;
  let seen;
  do {
    await new Promise((r) => setTimeout(r, 200));
    seen = { cut: await retransmitting(cut), live: await retransmitting(live) };
  } while (seen.cut !== true && Date.now() < end);
  process.stdout.write(JSON.stringify(seen));
  process.exit(0);
});
`;

it('tells a connection the kernel resends on from a live one with the same local and remote ports', async () => {
  const { stdout } = await run(
    'unshare',
    ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" -e "$1"', NODE, script],
    { timeout: 60_000 },
  );
  // Before: both sockets read the first line with their ports, the same one: both true, or the
  // cut connection never seen resending.
  expect(JSON.parse(stdout)).toEqual({ cut: true, live: false });
}, 90_000);
