// A member taken out of the ring that has not heard yet answers no read from its old copy (--read-quorum 1).

import { afterEach, describe, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.ts';
import {
  type ClusterNode,
  openClient,
  peersOf,
  restart,
  startStaticCluster,
  waitFormed,
} from '../helpers/cluster.ts';
import { cleanup, logged } from '../helpers/node-process.ts';

afterEach(cleanup);

/** Written, then deleted through the others once d is out. */
const DELETED = Array.from({ length: 40 }, (_, i) => `k${i}`);
/**
 * Every node reads with --read-quorum 1, and no read asks every replica (read repair's chance:
 * such a read reaches the others, whose fence refuses it, and d learns from that): a read
 * through d is answered by d alone.
 */
const R1 = ['--read-quorum', '1', '--read-repair-chance', '0'];
const DROPPED = 'records of a ring left while away dropped';
/**
 * d, left out of the others' --peers, leaves at once (--unlisted-grace-ms 0): taken out by the
 * operator, not a pod being made again. With the default 30 s grace the restarted nodes, which
 * never knew it as a member, held their ring from settling that long (no case here is about it).
 */
const LEAVE_AT_ONCE = ['--unlisted-grace-ms', '0'];

/** Every one of `nodes` sees them all up and routes by one settled ring of them. */
const formed = (nodes: readonly ClusterNode[]) => waitFormed(nodes, 30_000);

/** The deleted keys of `keys` a read through `n` answered with their old value (an error is no value). */
async function oldValues(n: ClusterNode, keys = DELETED): Promise<string[]> {
  const c = await openClient(n);
  const out: string[] = [];
  for (const k of keys) if ((await c.call(`GET ${k}`)) === `v-${k}`) out.push(k);
  return out;
}

/**
 * The deleted keys `d` is a replica of in the four members' ring: a read of one through it asks
 * no one (a read of another asks its owners, whose fence refuses d, which then hears).
 */
const ownedBy = (d: ClusterNode, nodes: readonly ClusterNode[]) => {
  const ring = new Ring(nodes.map((n) => n.name));
  return DELETED.filter((k) => ring.owners(Buffer.from(k), 3).includes(d.name));
};

/**
 * Four members (R 1), every key written and held by d; d restarted with `dArgs`; then a, b and c
 * are restarted listing only themselves (each at `moved(n)`: its address, or a new one), settle a
 * ring without d, and delete every key. d is told nothing: the others no longer call it.
 */
async function takenOut(
  dArgs: string[] | ((d: ClusterNode) => string[]),
  moved: (n: ClusterNode) => ClusterNode,
) {
  const nodes = await startStaticCluster(4, R1);
  const [a, b, c, d] = nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
  const w = await openClient(a);
  for (const k of DELETED) expect(await w.call(`PUT ${k} v-${k}`)).toBe('OK');
  await d.proc.stop('SIGTERM');
  const extra = typeof dArgs === 'function' ? dArgs(d) : dArgs;
  const dRestart = ['--peers', peersOf(nodes), ...R1, ...extra];
  await restart(d, dRestart);
  await formed(nodes);
  // d holds its share (RF 3 of 4: three keys in four) and answers them alone.
  expect((await oldValues(d)).length).toBeGreaterThan(DELETED.length / 2);
  const three = [a, b, c].map(moved);
  for (const [i, n] of [a, b, c].entries()) {
    await n.proc.stop('SIGTERM');
    await restart(three[i]!, ['--peers', peersOf(three), ...R1, ...LEAVE_AT_ONCE]);
  }
  await formed(three);
  const r = await openClient(three[0]!);
  for (const k of DELETED) expect(await r.call(`REMOVE ${k}`)).toBe('OK');
  return { three, d, owned: ownedBy(d, nodes), dRestart };
}

describe('a member taken out of the ring that has not heard yet, reading with --read-quorum 1', () => {
  it('running on with probes 10 minutes apart: asks the members before it answers alone, and answers no deleted value', async () => {
    const { three, d, owned } = await takenOut(['--probe-interval-ms', '600000'], (n) => n);
    const first = await oldValues(d, owned);
    console.log(JSON.stringify({ owned: owned.length, firstRound: first.length }));
    // Within a few of the others' probe intervals of their last probe of it, d still answers
    // alone (the bound); then it asks them first, hears their ring, and drops what it held.
    await expect.poll(() => oldValues(d, owned), { timeout: 30_000, interval: 500 }).toEqual([]);
    expect(await logged(d.proc, DROPPED, 30_000)).toBeTruthy();
    expect({ viaD: await oldValues(d), others: await oldValues(three[0]!) }).toEqual({
      viaD: [],
      others: [],
    });
  }, 180_000);

  it.each([
    ['listening where it is listed', (_d: ClusterNode): string[] => []],
    // The address listed for its name is not the one it listens on by that spelling (as with
    // --host 0.0.0.0 and a name or a pod address listed, the operator's and compose's way): it
    // probes that address every interval, and its own hello reaches itself.
    [
      'listed at another spelling of its address',
      (d: ClusterNode): string[] => ['--peer-host', `::ffff:${d.host}`],
    ],
    // b moved to a's old address: d's probes of a are answered there, by b, whose answer d's
    // membership refuses ('says it is b') and takes no ring from.
    ['another member answering at an old address', (_d: ClusterNode): string[] => [], [11, 1, 13]],
  ] as [string, (d: ClusterNode) => string[], number[]?][])(
    'cut off (the others moved to addresses it does not know), %s: refuses to answer alone',
    async (_how, dArgs, to = [11, 12, 13]) => {
      const block = (n: ClusterNode) => n.host.split('.').slice(0, 3).join('.');
      // .11, .12, .13 of the same block: d's --peers still names .1, .2, .3, where nothing listens.
      const moved = (n: ClusterNode): ClusterNode => ({
        ...n,
        host: `${block(n)}.${to[Number(n.host.split('.')[3]) - 1]}`,
      });
      const { three, d, dRestart } = await takenOut(dArgs, moved);
      console.log(JSON.stringify({ firstRound: (await oldValues(d)).length }));
      // Once it has heard from none of them for the failure detector's time (the bound), it asks
      // them first, none answers, and it refuses: an error, never a guess.
      await expect.poll(() => oldValues(d), { timeout: 30_000, interval: 500 }).toEqual([]);
      const c = await openClient(d);
      const t0 = performance.now();
      for (const k of DELETED) expect(await c.call(`GET ${k}`)).toMatch(/^ERR UNAVAILABLE /);
      console.log(JSON.stringify({ refusedMs: Math.round(performance.now() - t0) }));
      expect(await oldValues(three[0]!)).toEqual([]);
      // Restarted, still cut off: nothing since the start says its ring is current, so it
      // answers no read alone from the start on either.
      await d.proc.stop('SIGTERM');
      await restart(d, dRestart);
      expect(await oldValues(d)).toEqual([]);
    },
    180_000,
  );
});
