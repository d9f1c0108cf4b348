// A write that a member taken out of the ring (and not told yet) acknowledged is not lost when it hears.

import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  openClient,
  peersOf,
  restart,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { cleanup } from '../helpers/node-process.ts';

afterEach(cleanup);

/** Every one of `nodes` sees them all up and routes by one settled ring of them. */
const formed = (nodes: readonly ClusterNode[]) =>
  waitAllUp(nodes, 30_000).then(() =>
    waitSettled(
      nodes,
      nodes.map((n) => n.name),
    ),
  );

describe('a member taken out of the ring that has not heard yet', () => {
  it('loses no write it acknowledged (--write-quorum 1) when it hears and drops its records', async () => {
    const nodes = await startStaticCluster(4, []);
    const [a, b, c, d] = nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    // d takes writes with --write-quorum 1 and probes 10 minutes apart: nothing but its own
    // requests tells it of the ring the others settle without it.
    await d.proc.stop('SIGTERM');
    await restart(d, [
      '--peers',
      peersOf(nodes),
      '--probe-interval-ms',
      '600000',
      '--write-quorum',
      '1',
    ]);
    await formed(nodes);
    const three = [a, b, c];
    for (const n of three) {
      await n.proc.stop('SIGTERM');
      // d leaves their list at once (--unlisted-grace-ms 0): taken out, not a pod made again;
      // with the default 30 s grace they held their ring from settling that long.
      await restart(n, ['--peers', peersOf(three), '--unlisted-grace-ms', '0']);
    }
    await formed(three);
    // A write of a key d owns in its ring is acknowledged once d stored it (W 1). Whatever d
    // does once it hears of the others' ring, what it acknowledged must be held by them.
    const viaD = await openClient(d);
    const keys = Array.from({ length: 30 }, (_, i) => `fresh${i}`);
    viaD.send(keys.map((k) => `PUT ${k} w-${k}\n`).join(''));
    const replies = await viaD.lines(keys.length);
    const acked = keys.filter((_, i) => replies[i] === 'OK');
    console.log(JSON.stringify({ acked: acked.length, replies: [...new Set(replies)] }));
    expect(acked.length).toBeGreaterThan(0);
    const lost = async () => {
      const c = await openClient(a);
      const out: string[] = [];
      for (const k of acked) if ((await c.call(`GET ${k}`)) !== `w-${k}`) out.push(k);
      return out;
    };
    await expect.poll(lost, { timeout: 30_000, interval: 1000 }).toEqual([]);
  }, 180_000);
});
