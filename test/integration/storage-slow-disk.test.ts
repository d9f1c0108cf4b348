// A slow disk is not a dead one: nodes whose data directory is on powerlossfs with every sync
// slowed down (a degraded RAID, a throttled cloud volume) keep acknowledging writes at one sync
// per group of writes, and their peers neither time out on them nor call them down.

import { describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  loopbackBlock,
  metric,
  startMember,
  waitAllUp,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { startNodeProcess } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';

const binary = usePowerlossfs();

/** Connections to `port` at `host`, one each, answered by `node`. */
async function clients(host: string, port: number, n: number): Promise<LineClient[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = await LineClient.connect(port, host);
      defer(() => c.socket.destroy());
      return c;
    }),
  );
}

/**
 * `conns` connections to `port` at `host`, each sending `perConn` PUTs of its own keys at once
 * (pipelined); resolves with every reply that is not OK.
 */
async function burst(
  host: string,
  port: number,
  prefix: string,
  conns: number,
  perConn: number,
): Promise<string[]> {
  const cs = await clients(host, port, conns);
  const replies = await Promise.all(
    cs.map((c, i) => {
      const lines = Array.from({ length: perConn }, (_, j) => `PUT ${prefix}:${i}:${j} v${j}\r\n`);
      c.send(lines.join(''));
      return c.lines(perConn, 60_000);
    }),
  );
  return replies.flat().filter((r) => r !== 'OK');
}

/**
 * `conns` connections to `port` at `host`, each writing `perConn` keys of its own one after the
 * other (the next PUT once the last was answered); resolves with every reply that is not OK.
 */
async function stream(
  host: string,
  port: number,
  prefix: string,
  conns: number,
  perConn: number,
): Promise<string[]> {
  const cs = await clients(host, port, conns);
  const bad: string[] = [];
  await Promise.all(
    cs.map(async (c, i) => {
      for (let j = 0; j < perConn; j++) {
        c.send(`PUT ${prefix}:${i}:${j} v${j}\r\n`);
        const [reply] = await c.lines(1, 30_000);
        if (reply !== 'OK') bad.push(reply!);
      }
    }),
  );
  return bad;
}

/** The counts of a histogram's `le` bucket and of all its observations. */
async function bucket(
  node: { host: string; httpPort: number },
  name: string,
  le: string,
): Promise<{ within: number; count: number }> {
  const text = await (await fetch(`http://${node.host}:${node.httpPort}/metrics`)).text();
  const value = (series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
  };
  return { within: value(`${name}_bucket{le="${le}"}`), count: value(`${name}_count`) };
}

describe('slow disk', () => {
  it('a write-ahead log group is one sync however many records it holds', async () => {
    const { disk, dataDir } = await diskWithDataDir(binary());
    const node = await startNodeProcess({ dataDir });
    await disk.slow(700);
    // 4,000 writes at once: while the first group syncs (700 ms) the rest pile up into the next,
    // more records than one writev takes (1,024 buffers). Each write call on the log's O_DSYNC
    // descriptor is a sync: the group took four of them (2.8 s) before it was written in one.
    expect(await burst('127.0.0.1', node.port, 'k', 4, 1000)).toEqual([]);
    const groups = await bucket(
      { host: '127.0.0.1', httpPort: node.httpPort },
      'kvstore_wal_group_commit_records',
      '1024',
    );
    expect(groups.count - groups.within).toBeGreaterThan(0); // a group of over 1,024 records
    const syncs = await bucket(
      { host: '127.0.0.1', httpPort: node.httpPort },
      'kvstore_wal_sync_duration_seconds',
      '1',
    );
    expect(syncs).toEqual({ within: syncs.count, count: syncs.count }); // each under 1 s
  }, 60_000);

  it('with one replica on a disk whose syncs take 700 ms, writes need no hints and it stays up', async () => {
    const block = loopbackBlock();
    const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
    const names = hosts.map((_, i) => `kvstore-${i}`);
    const peers = ['--peers', hosts.map((h, i) => `${names[i]}=${h}:7946`).join(',')];
    const { disk, dataDir } = await diskWithDataDir(binary());
    const nodes: ClusterNode[] = await Promise.all(
      hosts.map((h, i) => startMember(names[i]!, h, peers, i === 2 ? dataDir : undefined)),
    );
    await waitAllUp(nodes);
    await disk.slow(700);
    // 5,000 writes through each healthy node, 8 at a time, every one replicated to the slow one
    // too. Its groups of over 1,024 records each took several syncs: about 1 in 10 of its copies
    // answered after the 2 s peer timeout and became a hint.
    const [e0, e1] = await Promise.all([
      stream(nodes[0]!.host, nodes[0]!.proc.port, 'a', 8, 625),
      stream(nodes[1]!.host, nodes[1]!.proc.port, 'b', 8, 625),
    ]);
    expect([...e0, ...e1]).toEqual([]);
    for (const n of nodes.slice(0, 2)) {
      expect({
        node: n.name,
        timeouts: await metric(n, 'kvstore_peer_errors_total{code="PEER_TIMEOUT",side="client"}'),
        hints: await metric(n, 'kvstore_hints_stored'),
        down: await metric(n, 'kvstore_members{state="down"}'),
      }).toEqual({ node: n.name, timeouts: 0, hints: 0, down: 0 });
    }
  }, 90_000);
});
