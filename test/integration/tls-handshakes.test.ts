// TLS handshakes that never finish on the client port: bounded in number and in time, and a real
// client is served beside them.

import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createPki, peerTlsArgs } from '../helpers/certs.ts';
import { defer } from '../helpers/defer.ts';
import { metric } from '../helpers/node-memory.ts';
import { cleanup, logged, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(cleanup);

/** Bound of the node's TLS handshakes in progress (src/server/handshakes.ts). */
const MAX_HANDSHAKES = 1024;

async function tlsNode(): Promise<{ node: NodeProcess; ca: Buffer }> {
  const pki = createPki();
  const { cert, key } = pki.issue('kvstore', ['127.0.0.1']);
  const node = await startNodeProcess({ args: ['--tls-cert-file', cert, '--tls-key-file', key] });
  return { node, ca: readFileSync(pki.ca) };
}

const openFds = (node: NodeProcess) => readdirSync(`/proc/${node.child.pid}/fd`).length;
const dropped = (node: NodeProcess) =>
  metric(node, 'kvstore_connections_rejected_total{reason="tls_handshake"}');

/** Sockets of silentSockets() that the node closed. */
const closedByNode = new WeakSet<Socket>();

/** `n` TCP connections that send nothing: each a TLS handshake that never starts. */
async function silentSockets(node: NodeProcess, n: number): Promise<Socket[]> {
  const out: Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from(
      { length: Math.min(100, n - i) },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port: node.port }, () => resolve(s));
          s.once('error', reject);
          defer(() => s.destroy());
        }),
    );
    for (const s of await Promise.all(batch)) {
      s.on('error', () => {});
      s.once('close', () => closedByNode.add(s));
      s.resume();
      out.push(s);
    }
  }
  return out;
}

async function tlsClient(node: NodeProcess, ca: Buffer): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port: node.port, ca });
  defer(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

async function ping(socket: TLSSocket): Promise<string> {
  const reply = new Promise<string>((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(String(d)));
    socket.once('close', () => reject(new Error('closed')));
  });
  socket.write('PING\n');
  return reply;
}

describe('TLS handshakes on the client port', () => {
  // Before: 1,500 silent connections held 1,500 descriptors (and about 42 KB each) for Node's
  // default 120 s, outside --max-connections; now at most 1,024 at once, each for 10 s.
  it('holds at most 1,024 unfinished handshakes, the oldest closed first; a client is served', async () => {
    const { node, ca } = await tlsNode();
    const served = await tlsClient(node, ca);
    const base = openFds(node);
    const silent = await silentSockets(node, 1500);
    // Until every connection was accepted (some wait in the listen backlog a while) or the node
    // holds more than the bound.
    const over = () => openFds(node) - base > MAX_HANDSHAKES + 10;
    const settled = async () => (await dropped(node)) >= 1500 - MAX_HANDSHAKES || over();
    await expect.poll(settled, { timeout: 15_000 }).toBe(true);
    expect(openFds(node) - base).toBeLessThanOrEqual(MAX_HANDSHAKES + 10);
    expect(await dropped(node)).toBeGreaterThanOrEqual(1500 - MAX_HANDSHAKES);
    // The first ones were closed, the last ones are still waiting.
    await expect.poll(() => closedByNode.has(silent[0]!)).toBe(true);
    expect(closedByNode.has(silent.at(-1)!)).toBe(false);
    // A connection whose handshake finished is not one of them, and a new client still gets in.
    expect(await ping(served)).toBe('PONG\n');
    expect(await ping(await tlsClient(node, ca))).toBe('PONG\n');
  }, 60_000);

  it('closes a handshake not finished within 10 s, also when its client keeps the connection', async () => {
    const { node } = await tlsNode();
    const base = openFds(node);
    await silentSockets(node, 50);
    await expect.poll(() => openFds(node) - base, { timeout: 5_000 }).toBeGreaterThanOrEqual(50);
    // (+2: a descriptor or two the node opens meanwhile, such as an HTTP keep-alive.)
    await expect.poll(() => openFds(node), { timeout: 30_000 }).toBeLessThanOrEqual(base + 2);
    expect(await dropped(node)).toBe(50);
  }, 60_000);

  // Before: each connection closed by its client before its handshake (a port scan, a TCP probe)
  // stayed open on the node for good (CLOSE-WAIT): 10,000 such held 10,000 descriptors.
  it('closes a connection whose client left before finishing its handshake', async () => {
    const { node } = await tlsNode();
    const base = openFds(node);
    for (const s of await silentSockets(node, 200)) s.destroy();
    // Within the handshake timeout (10 s).
    await expect.poll(() => openFds(node), { timeout: 20_000 }).toBeLessThanOrEqual(base + 2);
  }, 60_000);

  // Before: the peer port's handshakes too stayed open once timed out or left by their client,
  // each holding one of its 512 connection slots for good: 512 such shut its peers out.
  it('the peer port closes handshakes timed out or left by their client, and frees their slots', async () => {
    const node = await startNodeProcess({ args: peerTlsArgs(createPki()) });
    const started = Date.now();
    const base = openFds(node);
    const peerPort = { ...node, port: node.peerPort };
    const gone = await silentSockets(peerPort, 100);
    await silentSockets(peerPort, 100);
    for (const s of gone) s.destroy();
    await expect.poll(() => openFds(node) - base, { timeout: 5_000 }).toBeGreaterThanOrEqual(100);
    // Within the peer port's handshake timeout (5 s).
    await expect.poll(() => openFds(node), { timeout: 20_000 }).toBeLessThanOrEqual(base + 2);
    // Said once a second at most, with the failures not said (before: a line for each of 200).
    const failed = await logged(node, 'peer TLS handshake failed');
    expect(failed.level).toBe(40);
    const lines = node.logs.filter((l) => l.msg === 'peer TLS handshake failed');
    expect(lines.length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000) + 1);
    const said = lines.reduce((n, l) => n + 1 + (l.since as number), 0);
    expect(said).toBeLessThanOrEqual(200);
  }, 60_000);
});
