// A write that failed may still take effect, but never after a delete that followed it on its
// connection: commands that read the key at quorum and found it absent (docs/cluster.md).

import { afterEach, describe, expect, it } from 'vitest';
import type { PeerClient } from '../../src/peer/index.ts';
import type { ApplyReply, GetReply } from '../../src/replica/index.ts';
import { decodeRecord, encodeRecord } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  openClient,
  peerClientOf,
  startStaticCluster,
} from '../helpers/cluster.ts';
import { cleanup } from '../helpers/node-process.ts';
import { closeResp, ioredis } from '../helpers/resp-tools.ts';

afterEach(async () => {
  closeResp();
  await cleanup();
});

const TOMBSTONE = '(tombstone)';

/** What each of `peers` (one per replica) holds of `key`: its value, TOMBSTONE, or null. */
function held(peers: readonly PeerClient[], key: string): Promise<(string | null)[]> {
  return Promise.all(
    peers.map(async (p) => {
      const { r } = await p.request<GetReply>('get', { k: Buffer.from(key) });
      if (r === null) return null;
      const rec = decodeRecord(Buffer.from(r));
      return rec.tombstone ? TOMBSTONE : rec.value.toString();
    }),
  );
}

describe('a command after a write that failed, applied on one replica its read did not ask', () => {
  it('a delete of a key its read found absent deletes it on every replica; an expiry change leaves the value', async () => {
    const nodes = await startStaticCluster(3, ['--anti-entropy-interval-ms', '1000']);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const t = Date.now();
    // As a's own PUT that failed would be: versioned by a, before the commands below.
    const record = (value: string | null, wall: number) =>
      encodeRecord({
        version: { wall, logical: 0, node: a.name },
        tombstone: value === null,
        value: Buffer.from(value ?? ''),
      });
    const peers = nodes.map(peerClientOf);
    const apply = (n: number, entries: [string, Buffer][]) =>
      peers[n]!.request<ApplyReply>('apply', {
        e: entries.map(([k, raw]) => [Buffer.from(k), raw]),
      });
    // The commands, through a, each on a key where 'failed-put' reaches c only; the key `again`
    // is deleted on a and b before it (its read finds that older tombstone).
    const deletes: [string, (string | number)[], unknown][] = [
      ['exp0', ['EXPIRE', 'exp0', 0], 0],
      ['pexp', ['PEXPIRE', 'pexp', -1], 0],
      ['expat', ['EXPIREAT', 'expat', 1], 0],
      ['pexpat', ['PEXPIREAT', 'pexpat', t - 5000], 0],
      ['getex', ['GETEX', 'getex', 'PXAT', 1], null],
      ['again', ['EXPIRE', 'again', -5], 0],
    ];
    const changes: [string, (string | number)[], unknown][] = [
      ['later', ['EXPIRE', 'later', 100], 0],
      ['pers', ['PERSIST', 'pers'], 0],
      ['getexpx', ['GETEX', 'getexpx', 'PX', 100_000], null],
    ];
    const inExec = 'exec'; // EXPIRE inside MULTI/EXEC
    const viaDel = ['del1', 'del2']; // DEL is a REMOVE of each key
    const keys = [...deletes, ...changes].map(([k]) => k).concat(inExec, ...viaDel, 'kttl');
    for (const n of [0, 1]) await apply(n, [['again', record(null, t - 2000)]]);
    const r = await ioredis(a.host, a.proc.port);
    await peers[2]!.request<GetReply>('get', { k: Buffer.from('warm') }); // connected to c

    // c does not answer: every read asks a and b, where nothing live is. The failed PUTs' copies
    // wait in c's socket and land once it runs again, after the commands: as a copy delayed on
    // the network would, and no anti-entropy pass can spread them to a and b before.
    c.proc.child.kill('SIGSTOP');
    let late: Promise<unknown> = Promise.resolve();
    try {
      late = apply(
        2,
        keys.map((k) => [k, record('failed-put', t - 1000)]),
      ).catch((err: unknown) => err); // it may time out before c runs again: c applies it all the same
      for (const [, cmd, reply] of [...deletes, ...changes]) {
        expect({ cmd, reply: await r.call(...(cmd as [string, ...string[]])) }).toEqual({
          cmd,
          reply,
        });
      }
      expect(await r.multi().call('EXPIRE', inExec, '0').exec()).toEqual([[null, 0]]);
      expect(await r.del(...viaDel)).toBe(0);
      expect(await r.call('SET', 'kttl', 'new', 'KEEPTTL')).toBe('OK');
      // An expiry change yields to a value written after the one its read found (its base,
      // docs/redis.md), a failed write as another client's: it wrote nothing (a tombstone would
      // be on a and b now, and would delete that other client's acknowledged write).
      const onAB = async (k: string) => [k, await held(peers.slice(0, 2), k)];
      expect(Object.fromEntries(await Promise.all(changes.map(([k]) => onAB(k))))).toEqual(
        Object.fromEntries(changes.map(([k]) => [k, [null, null]])),
      );
    } finally {
      c.proc.child.kill('SIGCONT');
    }
    await late;

    // Once c took its copies (direct or hinted): the deletes' tombstones on all three; before,
    // the keys deleted by an expiry read 'failed-put' on c, and on all three once anti-entropy ran.
    const want = new Map<string, string>();
    for (const [k] of deletes) want.set(k, TOMBSTONE);
    for (const k of [inExec, ...viaDel]) want.set(k, TOMBSTONE);
    want.set('kttl', 'new'); // a new value, versioned above everything its read found
    const everywhere = async () =>
      Object.fromEntries(
        await Promise.all([...want.keys()].map(async (k) => [k, await held(peers, k)])),
      );
    await expect
      .poll(everywhere, { timeout: 20_000 })
      .toEqual(Object.fromEntries([...want].map(([k, v]) => [k, [v, v, v]])));
    for (const n of nodes) {
      const cn = await openClient(n);
      for (const [k, v] of want) {
        expect({ node: n.name, k, got: await cn.call(`GET ${k}`) }).toEqual({
          node: n.name,
          k,
          got: v === TOMBSTONE ? 'NOT_FOUND' : v,
        });
      }
    }
  }, 90_000);
});
