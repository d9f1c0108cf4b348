// Anti-entropy: replicas that hold different records of a key come back into step without any
// read of it. Real node processes on loopback; the divergence is made the way a coordinator that
// dies mid-write leaves it: a peer `apply` to some replicas only (the method a coordinator uses).

import { afterEach, describe, expect, it } from 'vitest';
import type { PeerClient } from '../../src/peer/index.ts';
import { ANTI_ENTROPY_METHODS, DIGEST_BUCKETS, DIGEST_BYTES } from '../../src/rebalance/index.ts';
import { METHODS } from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import { decodeRecord, encodeRecord, type StoredRecord } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  metric,
  openClient,
  peerClientOf,
  peersOf,
  restart,
  startStaticCluster,
  waitAllUp,
} from '../helpers/cluster.ts';
import { cleanup } from '../helpers/node-process.ts';

afterEach(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function record(value: string | null, wall = Date.now()): Buffer {
  const r: StoredRecord = {
    version: { wall, logical: 0, node: 'a-dead-coordinator' },
    tombstone: value === null,
    value: Buffer.from(value ?? ''),
  };
  return encodeRecord(r);
}

/** The record each node stores at `key` (peer `get`: a read that repairs nothing). */
async function stored(peers: readonly PeerClient[], key: string): Promise<(string | null)[]> {
  return Promise.all(
    peers.map(async (p) => {
      const { r } = await p.request<{ r: Uint8Array | null }>(METHODS.get, {
        k: Buffer.from(key),
      });
      if (r === null) return null;
      const rec = decodeRecord(Buffer.from(r));
      return rec.tombstone ? '(tombstone)' : rec.value.toString();
    }),
  );
}

async function apply(peer: PeerClient, entries: [string, Buffer][]): Promise<void> {
  await peer.request(METHODS.apply, { e: entries.map(([k, raw]) => [Buffer.from(k), raw]) });
}

/** Waits until every replica of every key in `want` holds what `want` says. */
async function converged(
  peers: readonly PeerClient[],
  want: ReadonlyMap<string, string | null>,
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    const apart: string[] = [];
    for (const [k, v] of want) {
      const got = await stored(peers, k);
      if (got.some((g) => g !== v)) apart.push(`${k}: ${JSON.stringify(got)}`);
    }
    if (apart.length === 0) return;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`replicas still apart after ${timeoutMs} ms:\n${apart.join('\n')}`);
    }
    await sleep(200);
  }
}

async function sumOf(nodes: readonly ClusterNode[], series: string): Promise<number> {
  const all = await Promise.all(nodes.map((n) => metric(n, series)));
  return all.reduce((a, b) => a + b, 0);
}

/**
 * Records all nodes moved by anti-entropy, pushed and pulled, and those a repair sent without
 * seeing them confirmed: on a loaded machine a push can time out and land all the same (then no
 * later pass has it to move again), which the counter rightly leaves out.
 */
async function copiesMoved(nodes: readonly ClusterNode[]): Promise<number> {
  const series = 'kvstore_anti_entropy_repaired_total';
  const unconfirmed = nodes
    .flatMap((n) => n.proc.logs)
    .filter((l) => l.msg === 'anti-entropy repair not applied')
    .reduce((sum, l) => sum + Number(l.unconfirmed), 0);
  return (
    (await sumOf(nodes, `${series}{direction="pushed"}`)) +
    (await sumOf(nodes, `${series}{direction="pulled"}`)) +
    unconfirmed
  );
}

/** Node flags: replication factor `rf`, a pass every second while at rest. */
function fastPasses(rf: number): string[] {
  return ['--replication-factor', String(rf), '--anti-entropy-interval-ms', '1000'];
}

describe('anti-entropy', () => {
  it('brings replicas that hold different records of a key into step, without reads', async () => {
    // RF 3 on 3 nodes: every node owns every key, so each pair shares the whole keyspace.
    const nodes = await startStaticCluster(3, fastPasses(3));
    const peers = nodes.map(peerClientOf);
    const c = await openClient(nodes[0]!);
    // Data in step on every replica, so most buckets agree and only the ones below differ.
    for (let i = 0; i < 2000; i++) expect(await c.call(`PUT base${i} v${i}`)).toBe('OK');
    for (let i = 0; i < 40; i++) expect(await c.call(`PUT old${i} before`)).toBe('OK');

    const want = new Map<string, string | null>();
    const later = Date.now() + 1;
    // A new key that reached one replica only (on each node in turn: pushed and pulled).
    for (let i = 0; i < 30; i++) {
      await apply(peers[i % 3]!, [[`only${i}`, record(`only-${i}`, later)]]);
      want.set(`only${i}`, `only-${i}`);
    }
    // A newer value that reached two replicas of three, and one that reached one.
    for (let i = 0; i < 20; i++) {
      const raw = record(`newer-${i}`, later);
      await apply(peers[i % 3]!, [[`old${i}`, raw]]);
      if (i % 2 === 0) await apply(peers[(i + 1) % 3]!, [[`old${i}`, raw]]);
      want.set(`old${i}`, `newer-${i}`);
    }
    // A delete that reached one replica.
    for (let i = 20; i < 40; i++) {
      await apply(peers[i % 3]!, [[`old${i}`, record(null, later)]]);
      want.set(`old${i}`, '(tombstone)');
    }
    await converged(peers, want, 20_000);
    // Through any node, a read answers the repaired value.
    for (const n of nodes) {
      const cn = await openClient(n);
      expect(await cn.call('GET only7')).toBe('only-7');
      expect(await cn.call('GET old4')).toBe('newer-4');
      expect(await cn.call('GET old25')).toBe('NOT_FOUND');
      expect(await cn.call('GET base1999')).toBe('v1999');
    }
    // Every copy a replica lacked was moved (one may arrive twice: pushed by one member while
    // pulled from another), and no read repaired anything.
    const moved = await copiesMoved(nodes);
    // 30 keys on 1 replica (2 copies each), 10 on 2 (1), 10 on 1 (2), 20 deletes on 1 (2).
    expect(moved).toBeGreaterThanOrEqual(30 * 2 + 10 * 1 + 10 * 2 + 20 * 2);
    expect(await sumOf(nodes, 'kvstore_read_repairs_total')).toBe(0);
    expect(
      await sumOf(nodes, 'kvstore_anti_entropy_passes_total{result="completed"}'),
    ).toBeGreaterThan(0);
  }, 120_000);

  it('runs when the cluster comes back to rest: a write that reached one replica while another was down', async () => {
    // The default interval (10 minutes): only coming back to rest starts the pass here. As in
    // chaos seed 8406: an owner is away, the coordinator reaches one replica and dies before it
    // has a hint for the others; the owner comes back, and no read ever asks for the key.
    const args = ['--replication-factor', '3'];
    const nodes = await startStaticCluster(3, args);
    const c = await openClient(nodes[0]!);
    for (let i = 0; i < 50; i++) expect(await c.call(`PUT k${i} before`)).toBe('OK');
    const away = nodes[2]!;
    await away.proc.stop('SIGKILL');
    const want = new Map<string, string | null>();
    const later = Date.now() + 1;
    const p0 = peerClientOf(nodes[0]!);
    for (let i = 0; i < 10; i++) {
      await apply(p0, [[`k${i}`, record(`after-${i}`, later)]]);
      want.set(`k${i}`, `after-${i}`);
    }
    await restart(away, ['--peers', peersOf(nodes), ...args]);
    await waitAllUp(nodes);
    await converged(nodes.map(peerClientOf), want, 20_000);
    // Two copies were missing; the pass moved them (a copy may arrive from two members at once).
    const moved = await copiesMoved(nodes);
    expect(moved).toBeGreaterThanOrEqual(20);
    expect(await sumOf(nodes, 'kvstore_read_repairs_total')).toBe(0);
  }, 120_000);

  it('with RF 2 of 4 members, moves records only between the owners of each key', async () => {
    const nodes = await startStaticCluster(4, fastPasses(2));
    const peers = nodes.map(peerClientOf);
    const names = nodes.map((n) => n.name);
    const c = await openClient(nodes[0]!);
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    for (const k of keys) expect(await c.call(`PUT ${k} first`)).toBe('OK');
    // Each key's newer value on its first owner only.
    const ring = new Ring(names);
    const want = new Map<string, string | null>();
    const later = Date.now() + 1;
    for (const k of keys.slice(0, 60)) {
      const [first] = ring.owners(Buffer.from(k), 2);
      await apply(peers[names.indexOf(first!)]!, [[k, record(`second-${k}`, later)]]);
      want.set(k, `second-${k}`);
    }
    const ownerPeers = (k: string) =>
      ring.owners(Buffer.from(k), 2).map((n) => peers[names.indexOf(n)]!);
    for (const [k, v] of want) {
      const deadline = Date.now() + 20_000;
      while ((await stored(ownerPeers(k), k)).some((g) => g !== v)) {
        if (Date.now() > deadline) throw new Error(`${k} still apart`);
        await sleep(200);
      }
    }
    // No member that does not own a key was given a copy of it.
    for (const k of keys) {
      const owners = ring.owners(Buffer.from(k), 2);
      const strangers = peers.filter((_, i) => !owners.includes(names[i]!));
      expect(await stored(strangers, k)).toEqual(strangers.map(() => null));
    }
    for (const n of nodes) expect((await clusterInfo(n)).ring.moving).toBe(false);
  }, 120_000);

  it('cuts ranges by bytes: large values are compared and repaired a few at a time', async () => {
    // 1,024 values of 1 MiB in one range were 1 GiB to hash on both members: every digest
    // request outlasted the peer timeout and no pass ever completed (nor repaired anything).
    const args = ['--replication-factor', '3'];
    const nodes = await startStaticCluster(3, [...args, '--anti-entropy-interval-ms', '0']);
    let peers = nodes.map(peerClientOf);
    const c = await openClient(nodes[0]!);
    const big = (tag: string) => tag.padEnd(1_000_000, '.');
    const keys = Array.from({ length: 12 }, (_, i) => `big${String(i).padStart(2, '0')}`);
    for (const k of keys) expect(await c.call(`PUT ${k} ${big(k)}`)).toBe('OK');
    // The digest a member serves ends at the key that brings its records to DIGEST_BYTES.
    const ring = (await clusterInfo(nodes[0]!)).ring.target;
    const reply = await peers[0]!.request<{ end: Uint8Array | null }>(ANTI_ENTROPY_METHODS.digest, {
      r: ring,
      p: nodes[1]!.name,
      a: null,
      e: null,
      l: 1024,
    });
    let bytes = 0;
    let cut = '';
    for (const k of keys) {
      const { r } = await peers[0]!.request<{ r: Uint8Array }>(METHODS.get, { k: Buffer.from(k) });
      bytes += k.length + r.length;
      if (bytes >= DIGEST_BYTES) {
        cut = k;
        break;
      }
    }
    expect(cut).not.toBe('');
    expect(reply.end && Buffer.from(reply.end).toString()).toBe(cut);
    // Newer large values on one replica only, each on another: the walkers' ranges and the
    // served ones end at different keys, and every copy still moves.
    const want = new Map<string, string | null>();
    const later = Date.now() + 1;
    for (const [i, k] of keys.entries()) {
      await apply(peers[i % 3]!, [[k, record(big(`newer-${k}`), later)]]);
      want.set(k, big(`newer-${k}`));
    }
    for (let i = 0; i < 8; i++) {
      await apply(peers[i % 3]!, [[`only${i}`, record(big(`only-${i}`), later)]]);
      want.set(`only${i}`, big(`only-${i}`));
    }
    // Passes from now on: each member's first, as the cluster comes to rest, repairs it all.
    await Promise.all(nodes.map((n) => n.proc.stop('SIGTERM')));
    await Promise.all(nodes.map((n) => restart(n, ['--peers', peersOf(nodes), ...fastPasses(3)])));
    await waitAllUp(nodes);
    peers = nodes.map(peerClientOf);
    const apart = async () => {
      const out: string[] = [];
      for (const [k, v] of want) {
        const got = await stored(peers, k);
        if (got.some((g) => g !== v)) out.push(`${k}: ${got.map((g) => g?.slice(0, 12))}`);
      }
      return out;
    };
    const deadline = Date.now() + 60_000;
    while ((await apart()).length > 0 && Date.now() < deadline) await sleep(500);
    expect(await apart()).toEqual([]);
    expect(await copiesMoved(nodes)).toBeGreaterThanOrEqual(20 * 2);
  }, 180_000);

  it('refuses malformed requests and requests under other rings', async () => {
    const nodes = await startStaticCluster(1, ['--anti-entropy-interval-ms', '0']);
    const [peer] = nodes.map(peerClientOf);
    const ring = (await clusterInfo(nodes[0]!)).ring.target;
    const bad: [string, unknown, string][] = [
      [
        ANTI_ENTROPY_METHODS.digest,
        { r: ring, p: 'x', a: null, e: null, l: 0 },
        'INVALID_ARGUMENT',
      ],
      [ANTI_ENTROPY_METHODS.digest, { r: ring, p: 'x', l: 1e9 }, 'INVALID_ARGUMENT'],
      [ANTI_ENTROPY_METHODS.digest, { r: '', p: 'x', l: 1 }, 'INVALID_ARGUMENT'],
      [
        ANTI_ENTROPY_METHODS.digest,
        { r: ring, p: 'x', a: Buffer.alloc(0), l: 1 },
        'INVALID_ARGUMENT',
      ],
      [ANTI_ENTROPY_METHODS.digest, { r: 'another-ring', p: 'x', l: 1 }, 'UNAVAILABLE'],
      [ANTI_ENTROPY_METHODS.entries, { r: ring, p: 'x', b: Buffer.alloc(3) }, 'INVALID_ARGUMENT'],
      [ANTI_ENTROPY_METHODS.entries, [], 'INVALID_ARGUMENT'],
    ];
    for (const [method, body, code] of bad) {
      await expect(peer!.request(method, body), JSON.stringify(body)).rejects.toMatchObject({
        code: `KV_ERR_${code}`,
      });
    }
    // A well-formed digest of an empty store: every bucket sums to zero, to the end.
    const reply = await peer!.request<{ d: Uint8Array; end: unknown }>(
      ANTI_ENTROPY_METHODS.digest,
      { r: ring, p: 'x', a: null, e: null, l: 10 },
    );
    expect(Buffer.from(reply.d)).toEqual(Buffer.alloc(DIGEST_BUCKETS * 8));
    expect(reply.end).toBeNull();
    // The node still serves.
    const c = await openClient(nodes[0]!);
    expect(await c.call('PUT a 1')).toBe('OK');
  }, 60_000);
});
