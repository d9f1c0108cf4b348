// A member back on an empty data directory while the others refill it: writes of its keys are
// still taken where no read can miss them, and a member that loses its new volume too before
// the ring settled is filled again. Real node processes on loopback.

import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  NO_ANTI_ENTROPY,
  openClient,
  peersOf,
  startMember,
  startStaticCluster,
  waitSettled,
} from '../helpers/cluster.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

/** What `observer` last heard from `name`: its incarnation, and when (ms since the epoch). */
async function heardOf(observer: ClusterNode, name: string) {
  const m = (await clusterInfo(observer)).members.find((x) => x.name === name) as
    | { incarnation: string | null; lastContact: string | null }
    | undefined;
  return {
    incarnation: m?.incarnation ?? null,
    at: m?.lastContact ? Date.parse(m.lastContact) : 0,
  };
}

describe('a lost volume at RF 3, W 3, R 1', () => {
  it('writes through every member are taken while the member back empty is refilled, and read back everywhere', async () => {
    // W 3 reaches the member back empty too (an owner in the target ring), and it refuses reads
    // that expect its old directory: no read can miss such a write. Before, every write of its
    // keys (all keys, at 3 members) was refused `write refused: 1 of the key's 3 settled owners
    // are recorded lost` until the refill ended. The others stream at 300 bytes/s, so the ring
    // stays moving for the whole test.
    const args = [
      ...['--replication-factor', '3', '--write-quorum', '3', '--read-quorum', '1'],
      ...['--read-repair-chance', '0', '--rebalance-rate-bytes', '300'],
      ...NO_ANTI_ENTROPY,
    ];
    const nodes = await startStaticCluster(3, args);
    const [k0, k1, k2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const c0 = await openClient(k0);
    for (let i = 0; i < 200; i++) expect(await c0.call(`PUT z-${i} ${'p'.repeat(40)}`)).toBe('OK');
    expect(await c0.call('PUT k v1')).toBe('OK');

    // kvstore-2 loses its volume: back under its name on a new, empty directory.
    const old = (await clusterInfo(k2)).incarnation;
    await k2.proc.stop('SIGKILL');
    const back = await startMember(
      k2.name,
      k2.host,
      ['--peers', peersOf(nodes), ...args],
      tempDir(),
    );
    const fresh = (await clusterInfo(back)).incarnation;
    expect(fresh).not.toBe(old);
    // Every member has recorded it lost, it has adopted that ring, and each has heard from it
    // since (its hello says it is active and lost in its own ring).
    for (const n of [k0, k1]) {
      await expect
        .poll(
          async () => {
            const info = await clusterInfo(n);
            const m = info.members.find((x) => x.name === k2.name) as
              | { incarnation: string | null; recorded: string | null }
              | undefined;
            return [info.ring.moving, m?.incarnation, m?.recorded];
          },
          { timeout: 30_000, interval: 100 },
        )
        .toEqual([true, fresh, null]);
    }
    await expect
      .poll(async () => (await clusterInfo(back)).ring.epoch - (await clusterInfo(k0)).ring.epoch, {
        timeout: 30_000,
        interval: 100,
      })
      .toBe(0);
    const adopted = Date.now();
    for (const n of [k0, k1]) {
      await expect
        .poll(
          async () => {
            const h = await heardOf(n, k2.name);
            return { incarnation: h.incarnation, since: h.at > adopted };
          },
          { timeout: 30_000, interval: 100 },
        )
        .toEqual({ incarnation: fresh, since: true });
      expect((await clusterInfo(n)).ring.moving).toBe(true);
    }

    const clients = [c0, await openClient(k1), await openClient(back)];
    for (const [i, c] of clients.entries())
      expect(await c.call(`PUT k v${i + 2}`), `via ${i}`).toBe('OK');
    for (const [i, c] of clients.entries()) expect(await c.call('GET k'), `via ${i}`).toBe('v4');
    // Still in the window: the writes did not wait for the refill.
    expect((await clusterInfo(k0)).ring.moving).toBe(true);
  }, 120_000);
});

const KEYS = 200;
const VALUE = 'p'.repeat(40);

describe('a member that loses its new volume again while it is refilled', () => {
  it('is refilled again before the ring settles: read from it alone, every acknowledged write is there', async () => {
    // The streams send at 1000 bytes/s: the ring is still moving when the second volume goes.
    const args = [
      ...['--replication-factor', '3', '--write-quorum', '3', '--read-quorum', '1'],
      ...['--read-repair-chance', '0', '--rebalance-rate-bytes', '1000', '--max-hints', '0'],
      ...NO_ANTI_ENTROPY,
    ];
    const nodes = await startStaticCluster(3, args);
    const [k0, k1, k2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const c0 = await openClient(k0);
    for (let i = 0; i < KEYS; i++) expect(await c0.call(`PUT z-${i} ${VALUE}`)).toBe('OK');
    const backEmpty = async () => {
      await k2.proc.stop('SIGKILL');
      const peers = ['--peers', peersOf(nodes), ...args];
      k2.proc = (await startMember(k2.name, k2.host, peers, tempDir())).proc;
      return (await clusterInfo(k2)).incarnation;
    };
    // kvstore-2 loses its volume; the others send the new directory its keys.
    const second = await backEmpty();
    const sent = async (n: ClusterNode) => (await clusterInfo(n)).transfer?.sent ?? 0;
    await expect
      .poll(async () => Math.min(await sent(k0), await sent(k1)), { timeout: 60_000 })
      .toBeGreaterThan(20);
    // Then that one too, before the ring settled. Before 2026-12-07 the streams that had filled
    // the second directory did not start again, and the ring settled with kvstore-2 holding
    // none of its keys (all 200 NOT_FOUND below).
    expect((await clusterInfo(k0)).ring.moving).toBe(true);
    const third = await backEmpty();
    expect(third).not.toBe(second);
    await waitSettled(nodes, [k0.name, k1.name, k2.name], 120_000);
    // kvstore-2 counts as a holder of every key now: R 1 answers from it alone.
    k0.proc.child.kill('SIGSTOP');
    k1.proc.child.kill('SIGSTOP');
    try {
      const c2 = await openClient(k2);
      const wrong: string[] = [];
      for (let i = 0; i < KEYS; i++) {
        const got = await c2.call(`GET z-${i}`);
        if (got !== VALUE) wrong.push(`z-${i}: ${got}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      k0.proc.child.kill('SIGCONT');
      k1.proc.child.kill('SIGCONT');
    }
  }, 240_000);
});
