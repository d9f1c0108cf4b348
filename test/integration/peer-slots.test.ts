// Strangers that crowd the peer port with connections that never prove anything (idle, a
// handshake never finished) must not keep a member out: a real 3-node cluster whose member comes
// back while an attacker keeps every connection slot of another member filled.

import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import { PeerClient } from '../../src/peer/index.ts';
import { createPki } from '../helpers/certs.ts';
import { openClient, peersOf, restart, startStaticCluster, waitAllUp } from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

/** Members of a 3-node cluster hold 6 connections on each; room for 14 more. */
const CAP = 20;

/**
 * An attacker that keeps `n` idle connections open to `host`'s peer port (7946), sending nothing,
 * and opens another at once whenever the node closes one (as a flood would); stopped with the
 * test. `closed` counts the connections the node closed.
 */
function crowd(host: string, n: number) {
  const open = new Set<Socket>();
  let stopped = false;
  let closed = 0;
  const dial = () => {
    if (stopped) return;
    const s = netConnect({ host, port: 7946 });
    open.add(s);
    s.on('error', () => {});
    s.once('close', () => {
      open.delete(s);
      if (stopped) return;
      closed++;
      // 20 ms apart: quick enough to take every slot a member frees before it dials again.
      setTimeout(dial, 20);
    });
  };
  for (let i = 0; i < n; i++) dial();
  const stop = () => {
    stopped = true;
    for (const s of open) s.destroy();
  };
  defer(stop);
  return { stop, closed: () => closed, open: () => open.size };
}

describe('peer connection slots', { timeout: 120_000 }, () => {
  it.each([
    ['without a cluster secret', []],
    ['with a cluster secret', ['--cluster-secret', 'swordfish']],
  ])('a member comes back while strangers fill every slot %s', async (_, secretArgs) => {
    // R = W = 3: every read and write through kvstore-1 needs kvstore-0's answer.
    const args = [
      '--max-peer-connections',
      String(CAP),
      '--read-quorum',
      '3',
      '--write-quorum',
      '3',
      ...secretArgs,
    ];
    const nodes = await startStaticCluster(3, args);
    const [target, back] = [nodes[0]!, nodes[1]!];
    // More than the free slots: the node is full and the attacker keeps trying.
    const attacker = crowd(target.host, CAP);
    await until(
      async () =>
        (await peerMetric(target.proc, 'kvstore_peer_connections{side="server"}', target.host)) >=
        CAP,
      20_000,
      'the peer port full',
      50,
    );
    await back.proc.stop('SIGTERM');
    await restart(back, ['--peers', peersOf(nodes), ...args]);
    // kvstore-1 must reach kvstore-0 again: before, every slot it freed was taken by the
    // attacker's next dial and its own connections were closed at once (reason "limit").
    await waitAllUp(nodes, 30_000);
    const c = await openClient(back);
    for (let i = 0; i < 20; i++) expect(await c.call(`PUT slot-${i} v${i}`)).toBe('OK');
    for (let i = 0; i < 20; i++) expect(await c.call(`GET slot-${i}`)).toBe(`v${i}`);
    // The attacker was still at it: its connections were the ones closed to make room.
    expect(attacker.open()).toBeGreaterThan(0);
    const evicted = await evictedOn(target.proc, target.host);
    console.log(
      `attacker: ${attacker.closed()} of its connections closed, ${evicted} evicted for others`,
    );
    expect(evicted).toBeGreaterThan(0);
    attacker.stop();
  });

  // Over TLS the slot is held by the TCP socket under the TLS one: a member proved on the TLS
  // connection must be known as proven there, or it would be closed like a stranger.
  it('over peer TLS, a member that authenticated keeps its connection while strangers churn', async () => {
    const pki = createPki();
    const { cert, key } = pki.issue('peer', ['127.0.0.1']);
    const tlsArgs = ['--peer-tls-cert-file', cert, '--peer-tls-key-file', key];
    const node = await startNodeProcess({
      args: [...tlsArgs, '--peer-tls-ca-file', pki.ca, '--max-peer-connections', '4'],
    });
    const m = new PeerClient({
      address: `127.0.0.1:${node.peerPort}`,
      logger: createLogger('silent', {}),
      timeoutMs: 5000,
      tls: {
        ca: readFileSync(pki.ca),
        cert: readFileSync(cert),
        key: readFileSync(key),
        checkServerIdentity: () => undefined,
      },
    });
    defer(() => m.close());
    expect(((await m.request('hello', {})) as { name: string }).name).toBe('test-node');
    const strangers = await Promise.all(Array.from({ length: 10 }, () => idle(node)));
    // 3 slots for 10 strangers: 7 of them closed, oldest first, and never the member.
    await until(
      async () => (await evictedOn(node)) === 7,
      15_000,
      () => 'the 7 oldest strangers closed',
    );
    expect(strangers.slice(0, 7).every((s) => s.destroyed)).toBe(true);
    expect(((await m.request('hello', {})) as { name: string }).name).toBe('test-node');
    // The same connection: accepted once (the strangers never finished a TLS handshake).
    expect(await peerMetric(node, 'kvstore_peer_connections_accepted_total')).toBe(1);
  });
});

async function peerMetric(node: NodeProcess, series: string, host = '127.0.0.1'): Promise<number> {
  const text = await (await fetch(`http://${host}:${node.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

const evictedOn = (node: NodeProcess, host?: string) =>
  peerMetric(node, 'kvstore_peer_connections_rejected_total{reason="evicted"}', host);

/** A TCP connection to the peer port that sends nothing (no TLS handshake either). */
function idle(node: NodeProcess): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port: node.peerPort });
    defer(() => s.destroy());
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}
