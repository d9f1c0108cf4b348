// Over a slow link: small peer requests do not wait behind large ones to the same member (lanes).

import { afterEach, describe, expect, it } from 'vitest';
import { lanCluster, scrape, smallOps, writeBulk } from '../helpers/lan-cluster.ts';
import { shapeLink } from '../helpers/netns.ts';
import { cleanup } from '../helpers/node-process.ts';

describe('the peer lanes', () => {
  afterEach(cleanup);

  // Every request to a member went on one connection: a 100-byte read or write of a key waited
  // behind the 4 MiB values queued to it, seconds each over a slow link, and timed out.
  it('answers small quorum reads and writes while 4 MiB values queue to the same member over a slow link', async () => {
    // Every write and read waits for all three, b included.
    const { lan, a, b } = await lanCluster(['--write-quorum', '3', '--read-quorum', '3']);
    // 8 Mbit/s both ways for b: every 4 MiB copy a sends it takes over 4 s on the wire.
    await shapeLink(b, { rateKbit: 8000, lossPct: 0 });
    // The small commands start once the writers have filled the link.
    const [bulk, small] = await Promise.all([writeBulk(lan, a, 25, 2), smallOps(lan, a, 20, 3)]);
    const lanes = (await scrape(lan, a))
      .split('\n')
      .filter((l) =>
        /^kvstore_peer_(lane_requests_total|requests_dropped_total|queued_bytes)/.test(l),
      );
    console.log(JSON.stringify({ bulk, small }), '\n', lanes.join('\n'));
    // The link carried large values to b all along (their copies to b time out: W is 3).
    expect(bulk.ok + Object.values(bulk.other).reduce((n, c) => n + c, 0)).toBeGreaterThan(4);
    expect(small.ops).toBeGreaterThan(0);
    expect(small.errors).toEqual({});
    // A command slower than the peer timeout (2 s) would have failed: none came close.
    expect(small.max).toBeLessThan(2000);
  }, 180_000);
});
