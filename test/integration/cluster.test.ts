import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  metric,
  NO_ANTI_ENTROPY,
  openClient,
  peersOf,
  restart,
  startMember,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import type { LineClient } from '../helpers/line-client.ts';
import { cleanup, logged, ROOT } from '../helpers/node-process.ts';
import { closeResp, ioredis } from '../helpers/resp-tools.ts';
import { until } from '../helpers/write-log.ts';

afterEach(async () => {
  closeResp();
  await cleanup();
});

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** Bytes a node received in replies to its own peer requests. */
const RECEIVED = 'kvstore_peer_received_bytes_total{side="client"}';

async function send(c: LineClient, lines: string[]): Promise<string[]> {
  c.send(`${lines.join('\n')}\n`);
  return c.lines(lines.length);
}

describe('a 3-node cluster (RF=3, W=2, R=2)', () => {
  it('describes itself with CLUSTER, and answers the seed test plan from any node', async () => {
    const nodes = await startStaticCluster(3);
    const info = await clusterInfo(nodes[1]!);
    expect(info.node).toBe('kvstore-1');
    expect(info.ring.moving).toBe(false);
    expect(info.members.map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    const shares = info.members.map((m) => m.share);
    expect(shares.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 3);
    const [a, b, c] = await Promise.all(nodes.map(openClient));
    expect(
      await send(a!, [
        'PUT session:user1 {token:xyz123}',
        'PUT session:user2 {token:abc}',
        'PUT session:user3 v3',
      ]),
    ).toEqual(['OK', 'OK', 'OK']);
    expect(await b!.call('GET session:user1')).toBe('{token:xyz123}');
    expect(await c!.call('RANGE session:user1 session:user3')).toBe(
      'session:user1 session:user2 session:user3',
    );
    expect(await b!.call('PREFIX session:user')).toBe('session:user1 session:user2 session:user3');
    expect(await c!.call('REMOVE session:user2')).toBe('OK');
    expect(await a!.call('GET session:user2')).toBe('NOT_FOUND');
    expect(await b!.call('REMOVE session:user2')).toBe('NOT_FOUND');
    expect(await a!.call('PREFIX session:user')).toBe('session:user1 session:user3');
    // RF=3 on 3 nodes: every node stores every key.
    for (const n of nodes) expect(await metric(n, 'kvstore_storage_keys')).toBe(2);
  });

  it('pages a scan across nodes to the same keys as one node would return', async () => {
    const nodes = await startStaticCluster(3, ['--replication-factor', '2', '--write-quorum', '2']);
    const a = await openClient(nodes[0]!);
    const keys = Array.from({ length: 150 }, (_, i) => `page:${String(i).padStart(3, '0')}`);
    expect(
      new Set(
        await send(
          a,
          keys.map((k) => `PUT ${k} v`),
        ),
      ),
    ).toEqual(new Set(['OK']));
    expect(await send(a, ['REMOVE page:010', 'REMOVE page:077'])).toEqual(['OK', 'OK']);
    const expected = keys.filter((k) => k !== 'page:010' && k !== 'page:077');
    const b = await openClient(nodes[1]!);
    const got: string[] = [];
    let cursor = '';
    for (;;) {
      const [line, tail] = await send(b, [
        `PREFIX page: LIMIT 40${cursor ? ` CURSOR ${cursor}` : ''}`,
      ]).then(async (first) => [first[0]!, (await b.lines(1))[0]!]);
      got.push(...line!.split(' ').filter(Boolean));
      if (tail === 'END') break;
      cursor = tail!.slice('MORE '.length);
    }
    expect(got).toEqual(expected);
    expect((await b.call('RANGE page:000 page:999')).split(' ')).toEqual(expected);
  });

  it('keeps serving with one node down, refuses with two, and the returning node converges', async () => {
    const nodes = await startStaticCluster(3);
    const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    expect(await send(a, ['PUT before k0', 'PUT gone x'])).toEqual(['OK', 'OK']);
    await n2.proc.stop('SIGKILL');
    const writes = Array.from({ length: 50 }, (_, i) => `PUT during:${i} v${i}`);
    expect(new Set(await send(a, writes))).toEqual(new Set(['OK']));
    expect(await a.call('REMOVE gone')).toBe('OK');
    expect(await a.call('GET during:7')).toBe('v7');
    expect((await a.call('PREFIX during:')).split(' ')).toHaveLength(50);

    await n1.proc.stop('SIGKILL');
    expect(await a.call('PUT lonely x')).toMatch(/^ERR UNAVAILABLE replication: write quorum 1\/2/);
    expect(await a.call('GET before')).toMatch(/^ERR UNAVAILABLE replication: read quorum 1\/2/);
    expect(await a.call('PREFIX during:')).toMatch(/^ERR UNAVAILABLE /);

    // n2 comes back; hints bring it every write it missed (50 puts, the failed PUT, the delete).
    await restart(n2, ['--peers', peersOf(nodes)]);
    // Live: before, during:0..49, and lonely (it reached n0 before the quorum failed, and was
    // hinted to n2 too: a failed write may still be applied). Deleted: gone.
    await expect.poll(() => metric(n2, 'kvstore_storage_keys'), { timeout: 15_000 }).toBe(52);
    await expect.poll(() => metric(n2, 'kvstore_storage_tombstones'), { timeout: 15_000 }).toBe(1);
    // 52 hints, plus one for each of the first two writes (OK'd by n0 and n1) whose copy to n2
    // the kill cut off before n2 answered: 52, 53 or 54.
    await expect
      .poll(() => metric(n0, 'kvstore_hints_delivered_total'), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(52);
    expect([52, 53, 54]).toContain(await metric(n0, 'kvstore_hints_delivered_total'));
    // The hint for n1, still down, stays.
    expect(await metric(n0, 'kvstore_hints_stored')).toBe(1);
    const c = await openClient(n2);
    expect(await c.call('GET during:49')).toBe('v49');
    expect(await c.call('GET gone')).toBe('NOT_FOUND');
  });

  it('delivers hints of large values: more of them than fit in one peer frame', async () => {
    // 80 hints of 1 MiB: one delivery request of them all (up to 256 hints were sent in one)
    // would be an 80 MiB frame, over the 64 MiB limit, refused on every pass, never delivered.
    const nodes = await startStaticCluster(3, NO_ANTI_ENTROPY);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await n2.proc.stop('SIGKILL');
    const a = await openClient(n0);
    const value = 'h'.repeat(1024 * 1024);
    for (let i = 0; i < 80; i++) expect(await a.call(`PUT large:${i} ${value}`)).toBe('OK');
    // A write is acknowledged by two replicas; its hint for n2 is stored when the copy to n2
    // fails, which may be after the acknowledgement (the last one was, once in a loaded run).
    await expect
      .poll(() => metric(n0, 'kvstore_hints_stored'), { timeout: 10_000 })
      .toBeGreaterThanOrEqual(80);
    await restart(n2, ['--peers', peersOf(nodes), ...NO_ANTI_ENTROPY]);
    await expect.poll(() => metric(n0, 'kvstore_hints_stored'), { timeout: 30_000 }).toBe(0);
    expect(await metric(n0, 'kvstore_hints_delivered_total')).toBeGreaterThanOrEqual(80);
    expect(await metric(n2, 'kvstore_storage_keys')).toBe(80);
  });

  it('keeps at most --max-hint-bytes of hints, exactly counted across a restart', async () => {
    // --max-hints alone (100,000) let a down replica cost ~100 GiB of hints of 1 MiB values.
    const bound = 8 * 1024 * 1024;
    const args = ['--max-hint-bytes', String(bound), ...NO_ANTI_ENTROPY];
    const nodes = await startStaticCluster(3, args);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await n2.proc.stop('SIGKILL');
    const a = await openClient(n0);
    const value = 'b'.repeat(1024 * 1024);
    for (let i = 0; i < 12; i++) expect(await a.call(`PUT big:${i} ${value}`)).toBe('OK');
    // Seven hints of 1 MiB and a little fit in 8 MiB; the other five are dropped as full.
    const full = 'kvstore_hints_dropped_total{reason="full"}';
    await expect.poll(() => metric(n0, full), { timeout: 10_000 }).toBe(5);
    expect(await metric(n0, 'kvstore_hints_stored')).toBe(7);
    const bytes = await metric(n0, 'kvstore_hints_stored_bytes');
    expect(bytes).toBeGreaterThan(7 * 1024 * 1024);
    expect(bytes).toBeLessThanOrEqual(bound);
    // A small write still fits beside them.
    expect(await a.call('PUT small:1 v')).toBe('OK');
    await expect.poll(() => metric(n0, 'kvstore_hints_stored'), { timeout: 10_000 }).toBe(8);
    const withSmall = await metric(n0, 'kvstore_hints_stored_bytes');
    expect(withSmall).toBeGreaterThan(bytes);
    // The total is the stored hints' after a restart, not 0 or what the count implies.
    await n0.proc.stop('SIGKILL');
    await restart(n0, ['--peers', peersOf(nodes), ...args]);
    expect(await metric(n0, 'kvstore_hints_stored')).toBe(8);
    expect(await metric(n0, 'kvstore_hints_stored_bytes')).toBe(withSmall);
    await restart(n2, ['--peers', peersOf(nodes), ...args]);
    await expect.poll(() => metric(n0, 'kvstore_hints_stored'), { timeout: 30_000 }).toBe(0);
    expect(await metric(n0, 'kvstore_hints_stored_bytes')).toBe(0);
  });

  it('scans keys of large values: more of them than fit in one peer frame, without their values', async () => {
    // 80 values of 1 MiB: a member's scan reply with the records whole (as it was) is an 80 MiB
    // frame, over the 64 MiB peer limit: PREFIX answered ERR UNAVAILABLE, whatever the LIMIT.
    const nodes = await startStaticCluster(3, NO_ANTI_ENTROPY);
    const [n0, n1] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const value = 's'.repeat(1024 * 1024);
    const keys = Array.from({ length: 80 }, (_, i) => `large:${String(i).padStart(2, '0')}`);
    for (const k of keys) expect(await a.call(`PUT ${k} ${value}`)).toBe('OK');
    expect(await a.call('REMOVE large:40')).toBe('OK');
    const live = keys.filter((k) => k !== 'large:40');
    const b = await openClient(n1);
    const received = 'kvstore_peer_received_bytes_total{side="client"}';
    const before = await metric(n1, received);
    expect((await b.call('PREFIX large:')).split(' ')).toEqual(live);
    expect((await b.call('RANGE large:00 large:99')).split(' ')).toEqual(live);
    expect(await send(b, ['RANGE large:00 large:99 LIMIT 75'])).toEqual([
      live.slice(0, 75).join(' '),
    ]);
    expect(await b.lines(1)).toEqual([`MORE ${live[74]}`]);
    // The coordinator merges versions, not values: the other members send each record's header
    // alone (two members, three scans, 80 records each: well under 1 MiB, not 480 MiB).
    expect((await metric(n1, received)) - before).toBeLessThan(1024 * 1024);
  });

  it('repairs a stale replica when a read finds it', async () => {
    const alone = ['--max-hints', '0', ...NO_ANTI_ENTROPY];
    const nodes = await startStaticCluster(3, alone);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const large = 'r'.repeat(MiB);
    const synced = 'kvstore_wal_group_commit_records_sum';
    const logged = await metric(n2, synced);
    expect(logged).toBeGreaterThanOrEqual(0);
    expect(await send(a, ['PUT r:3 old'])).toEqual(['OK']);
    // OK needs two of the three replicas: n2 may still be writing its copy. It is the stale
    // replica only once that copy is in its log (under load, killed before, it had no key).
    await until(async () => (await metric(n2, synced)) > logged, 10_000, 'n2 to log r:3', 20);
    await n2.proc.stop('SIGKILL');
    expect(await send(a, ['PUT r:1 one', 'PUT r:2 two', `PUT r:3 ${large}`])).toEqual([
      'OK',
      'OK',
      'OK',
    ]);
    await restart(n2, ['--peers', peersOf(nodes), ...alone]);
    expect(await metric(n2, 'kvstore_storage_keys')).toBe(1);
    const c = await openClient(n2);
    expect(await c.call('GET r:1')).toBe('one');
    await expect.poll(() => metric(n2, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(2);
    expect(await metric(n2, 'kvstore_read_repairs_total')).toBeGreaterThanOrEqual(1);
    // n2 reads its own record whole, stale, and another replica's digest, newer: it reads that
    // replica's record whole (one more request), answers it and repairs itself with it. The
    // value crosses once.
    const fetches = await metric(n2, 'kvstore_read_fetches_total');
    const before = await metric(n2, RECEIVED);
    expect(await c.call('GET r:3')).toBe(large);
    expect((await metric(n2, RECEIVED)) - before).toBeLessThan(MiB + 64 * 1024);
    expect(await metric(n2, 'kvstore_read_fetches_total')).toBe(fetches + 1);
    // Repaired: n2's own record is the newest now, so the next GET needs no second request.
    await expect
      .poll(async () => {
        const f = await metric(n2, 'kvstore_read_fetches_total');
        expect(await c.call('GET r:3')).toBe(large);
        return (await metric(n2, 'kvstore_read_fetches_total')) - f;
      })
      .toBe(0);
  });

  it('moves a value once per GET: the replicas not read whole send a digest (the header)', async () => {
    // RF 2 of 3: n1 reads a key it holds from itself and the other owner's digest (no value
    // crosses), and a key it does not hold from one owner whole and the other's digest (once).
    // Both owners' records whole, as before, were 1 and 2 values.
    // Speculation (a late quorum on a loaded machine) would ask a third replica: not here.
    const args = [
      '--replication-factor',
      '2',
      '--read-repair-chance',
      '0',
      '--read-speculate-ms',
      '10000',
      ...NO_ANTI_ENTROPY,
    ];
    const nodes = await startStaticCluster(3, args);
    const [n0, n1] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const value = 'g'.repeat(MiB);
    const keys = Array.from({ length: 9 }, (_, i) => `once:${i}`);
    for (const k of keys) expect(await a.call(`PUT ${k} ${value}`)).toBe('OK');
    const b = await openClient(n1);
    const moved: number[] = [];
    for (const k of keys) {
      const before = await metric(n1, RECEIVED);
      expect(await b.call(`GET ${k}`)).toBe(value);
      moved.push((await metric(n1, RECEIVED)) - before);
    }
    const held = await metric(n1, 'kvstore_storage_keys');
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(keys.length);
    expect(moved.filter((m) => m < 64 * 1024)).toHaveLength(held);
    expect(moved.filter((m) => m >= MiB && m < MiB + 64 * 1024)).toHaveLength(keys.length - held);
    expect(await metric(n1, 'kvstore_read_fetches_total')).toBe(0);
    // EXISTS and REMOVE read versions only: no value crosses.
    const before = await metric(n1, RECEIVED);
    expect(await (await ioredis(n1.host, n1.proc.port)).exists(...keys)).toBe(keys.length);
    expect(await b.call(`REMOVE ${keys[0]}`)).toBe('OK');
    expect((await metric(n1, RECEIVED)) - before).toBeLessThan(64 * 1024);
  });

  it('reads from a read quorum of replicas, and from the others when one of them is paused', async () => {
    // The failure detector is slowed down so that a paused node stays "up": only speculation
    // can route around it.
    const nodes = await startStaticCluster(3, [
      '--read-repair-chance',
      '0',
      '--probe-failures',
      '1000',
    ]);
    const [n0, n1] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const keys = Array.from({ length: 60 }, (_, i) => `rq:${i}`);
    expect(
      new Set(
        await send(
          a,
          keys.map((k) => `PUT ${k} v-${k}`),
        ),
      ),
    ).toEqual(new Set(['OK']));
    // A series appears with its first request: absent counts as 0.
    const gets = async () =>
      (await metric(n0, 'kvstore_replica_reads_total{replica="other"}')) || 0;
    const requests = async () =>
      ((await metric(n0, 'kvstore_peer_requests_sent_total{method="get"}')) || 0) +
      ((await metric(n0, 'kvstore_peer_requests_sent_total{method="getMany"}')) || 0);
    const speculations = () => metric(n0, 'kvstore_read_speculations_total');
    const reads = () => metric(n0, 'kvstore_quorum_reads_total{replicas="quorum"}');

    // Every replica answers: each read asks n0 itself and one other node, plus the third one
    // for each read whose quorum was late.
    const [g0, s0, r0, q0] = [await gets(), await speculations(), await reads(), await requests()];
    expect(
      await send(
        a,
        keys.map((k) => `GET ${k}`),
      ),
    ).toEqual(keys.map((k) => `v-${k}`));
    expect((await reads()) - r0).toBe(keys.length);
    expect((await gets()) - g0).toBe(keys.length + ((await speculations()) - s0));
    expect(await metric(n0, 'kvstore_replica_reads_total{replica="self"}')).toBeGreaterThanOrEqual(
      keys.length,
    );
    // The pipelined reads' asks of one turn to a member share a request (getMany).
    expect((await requests()) - q0).toBeLessThan(keys.length / 2);

    // The reads of one turn all ask the same other member (every node owns every key): twelve
    // GETs in one write, all started in the turn that reads them, make one request, not one to
    // each other member. A batch whose quorum was late on a loaded machine also asks the third
    // member (a speculation, one more request): such a batch says nothing here, so the batch is
    // sent again until one was answered in time.
    const few = keys.slice(0, 12);
    const asked: number[] = [];
    for (let batch = 0; batch < 5 && asked.length === 0; batch++) {
      const [q1, s1] = [await requests(), await speculations()];
      expect(
        await send(
          a,
          few.map((k) => `GET ${k}`),
        ),
      ).toEqual(few.map((k) => `v-${k}`));
      if ((await speculations()) === s1) asked.push((await requests()) - q1);
    }
    expect(asked).toEqual([1]);

    // n1 pauses: the reads that picked it ask n2 once their quorum is late, and all answer. A
    // turn's reads pick one member and the next turn's another, so a few batches are sent
    // until one of them picked n1.
    n1.proc.child.kill('SIGSTOP');
    const s1 = await speculations();
    for (let batch = 0; batch < 4 && (await speculations()) === s1; batch++) {
      expect(
        await send(
          a,
          keys.map((k) => `GET ${k}`),
        ),
      ).toEqual(keys.map((k) => `v-${k}`));
    }
    expect((await speculations()) - s1).toBeGreaterThan(0);
    n1.proc.child.kill('SIGCONT');
  });

  it('chooses the reads that ask every replica by turn: all of a turn, or none', async () => {
    const nodes = await startStaticCluster(3, ['--read-repair-chance', '0.5']);
    const n0 = nodes[0]!;
    const a = await openClient(n0);
    const keys = Array.from({ length: 12 }, (_, i) => `turn:${i}`);
    expect(
      new Set(
        await send(
          a,
          keys.map((k) => `PUT ${k} v`),
        ),
      ),
    ).toEqual(new Set(['OK']));
    // A series appears with its first request: absent counts as 0.
    const all = async () => (await metric(n0, 'kvstore_quorum_reads_total{replicas="all"}')) || 0;
    const counts: number[] = [];
    // Twelve GETs in one write start in the turn that reads them (see the test above). Chosen
    // read by read, a batch would be all or none one time in 2,048.
    for (let batch = 0; batch < 6; batch++) {
      const before = await all();
      expect(
        await send(
          a,
          keys.map((k) => `GET ${k}`),
        ),
      ).toEqual(keys.map(() => 'v'));
      counts.push((await all()) - before);
    }
    expect(counts.filter((n) => n !== 0 && n !== keys.length)).toEqual([]);
  });

  it('finds a stale replica by its quorum reads alone: by default no read asks every replica', async () => {
    // A quorum read (R=2) asks this node and the turn's preferred other owner, which moves on
    // every turn that reads: two reads of a key in a row ask both other owners between them.
    // So the stale replica is found and repaired without the reads that ask every replica,
    // which the default no longer makes (--read-repair-chance 0: 10% of the reads asking every
    // replica found nothing to repair in a steady cluster and cost about a tenth of a GET's CPU).
    const alone = ['--max-hints', '0', ...NO_ANTI_ENTROPY];
    const nodes = await startStaticCluster(3, alone);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const a = await openClient(n0);
    const synced = 'kvstore_wal_group_commit_records_sum';
    const logged = await metric(n2, synced);
    expect(await a.call('PUT s:0 zero')).toBe('OK');
    await until(async () => (await metric(n2, synced)) > logged, 10_000, 'n2 to log s:0', 20);
    await n2.proc.stop('SIGKILL');
    const keys = Array.from({ length: 10 }, (_, i) => `s:${i + 1}`);
    expect(
      await send(
        a,
        keys.map((k) => `PUT ${k} v-${k}`),
      ),
    ).toEqual(keys.map(() => 'OK'));
    await restart(n2, ['--peers', peersOf(nodes), ...alone]);
    await waitAllUp(nodes);
    expect(await metric(n2, 'kvstore_storage_keys')).toBe(1);
    // Each GET waits for its answer: one turn each on n0.
    for (const k of keys) {
      for (let twice = 0; twice < 2; twice++) expect(await a.call(`GET ${k}`)).toBe(`v-${k}`);
    }
    await expect.poll(() => metric(n2, 'kvstore_storage_keys'), { timeout: 20_000 }).toBe(11);
    // (A speculated ask, on a loaded machine, may send a key's copy twice.)
    expect(await metric(n0, 'kvstore_read_repairs_total')).toBeGreaterThanOrEqual(keys.length);
    // And in step, reads keep to their quorum (main's default asked every replica in 10% of turns).
    for (let i = 0; i < 100; i++) expect(await a.call('GET s:0')).toBe('zero');
    expect((await metric(n0, 'kvstore_quorum_reads_total{replicas="all"}')) || 0).toBe(0);
    expect(await metric(n0, 'kvstore_quorum_reads_total{replicas="quorum"}')).toBe(120);
  });
});

describe('a member restarted with another --replication-factor', () => {
  it('is reported by every node, and keeps the records it does not own by its own factor', async () => {
    const nodes = await startStaticCluster(3, ['--gc-interval-ms', '300']);
    const odd = nodes[2]!;
    const a = await openClient(nodes[0]!);
    const keys = Array.from({ length: 60 }, (_, i) => `rf-${i}`);
    expect(
      await send(
        a,
        keys.map((k) => `PUT ${k} v`),
      ),
    ).toEqual(keys.map(() => 'OK'));
    await odd.proc.stop();
    await restart(odd, [
      '--peers',
      peersOf(nodes),
      '--replication-factor',
      '2',
      '--gc-interval-ms',
      '300',
    ]);
    for (const n of nodes) {
      await expect
        .poll(() => metric(n, 'kvstore_replication_settings_mismatch'), { timeout: 10_000 })
        .toBe(1);
    }
    const said = await logged(odd.proc, (l) =>
      String(l.msg).startsWith('members disagree on --replication-factor'),
    );
    expect(said).toMatchObject({ self: { rf: 2, w: 2, r: 2 }, keepingUnowned: true });
    // Before: it dropped the records it was the third owner of at its next collection, about a
    // third of them, which the others still counted as one of three copies.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await metric(odd, 'kvstore_storage_keys')).toBe(keys.length);
    expect(await metric(odd, 'kvstore_rebalance_keys_removed_total')).toBe(0);

    await odd.proc.stop();
    await restart(odd, ['--peers', peersOf(nodes)]);
    for (const n of nodes) {
      await expect
        .poll(() => metric(n, 'kvstore_replication_settings_mismatch'), { timeout: 10_000 })
        .toBe(0);
    }
  });
});

describe('members started with different --peers', () => {
  // The bound, as the node derives it (MembershipCheck): 2 x (--resolve-interval-ms + 5 probe
  // intervals + --peer-timeout-ms), with FAST_PROBES (200 ms) and the default 2,000 ms timeout.
  const boundMs = (resolveMs: number) => 2 * (resolveMs + 5 * 200 + 2000);
  const reported = (n: ClusterNode) =>
    n.proc.logs.filter((l) => String(l.msg).startsWith('member lists differ'));

  it('is reported by the members once it lasts longer than a join takes, and clears when fixed', async () => {
    const fast = ['--resolve-interval-ms', '300'];
    const nodes = await startStaticCluster(3, fast);
    const [n0, n1, odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await odd.proc.stop();
    const restarted = Date.now();
    // Before: kvstore-2 stayed moving for good, the others never came to rest, and nothing said why.
    await restart(odd, ['--peers', peersOf([n0, odd]), ...fast]);
    for (const n of nodes) {
      await expect
        .poll(() => metric(n, 'kvstore_membership_mismatch'), { timeout: 30_000 })
        .toBe(1);
      // The line comes on stdout, which may reach the test after the metric's answer.
      await logged(n.proc, (l) => String(l.msg).startsWith('member lists differ'));
    }
    const [said] = reported(n0);
    expect(said?.msg).toContain(
      'kvstore-2 lists kvstore-0,kvstore-2; this node lists kvstore-0,kvstore-1,kvstore-2',
    );
    expect(said?.msg).toContain('--peers');
    expect(said).toMatchObject({ members: { 'kvstore-2': ['kvstore-0', 'kvstore-2'] } });
    expect(Date.parse(String(said?.time)) - restarted).toBeGreaterThanOrEqual(boundMs(300) - 500);
    expect(reported(n1)).toHaveLength(1);
    expect(reported(odd)[0]?.msg).toContain(
      'kvstore-0 lists kvstore-0,kvstore-1,kvstore-2; this node lists kvstore-0,kvstore-2',
    );
    expect((await clusterInfo(n1)).memberListsDiffer).toEqual({
      'kvstore-2': ['kvstore-0', 'kvstore-2'],
    });

    await odd.proc.stop();
    await restart(odd, ['--peers', peersOf(nodes), ...fast]);
    for (const n of nodes) {
      await expect
        .poll(() => metric(n, 'kvstore_membership_mismatch'), { timeout: 15_000 })
        .toBe(0);
    }
    await waitSettled(
      nodes,
      nodes.map((n) => n.name),
    );
    expect((await clusterInfo(n0)).memberListsDiffer).toEqual({});
    await logged(n0.proc, 'member lists agree again');
  });

  it('is not reported while a fourth member joins by a rolling restart', async () => {
    // A bound of 126 s (60 s resolves): the rolling restart must end within it, and four node
    // starts took 27.5 s at load 40 (the default 5 s gave a bound of 16 s, 12 s one of 30 s:
    // both close enough to be overrun on a loaded machine, a failure of no code).
    const slow = ['--resolve-interval-ms', '60000'];
    const nodes = await startStaticCluster(3, slow);
    const host = nodes[0]!.host.replace(/\.\d+$/, '.4');
    const all = `${peersOf(nodes)},kvstore-3=${host}:7946`;
    const started = Date.now();
    const joiner = await startMember('kvstore-3', host, ['--peers', all, ...slow]);
    const four = [...nodes, joiner];
    // The lists differ now: the joiner routes by a ring the others do not report.
    const info = await clusterInfo(joiner);
    expect(info.members.filter((m) => m.ringId !== info.ring.target).length).toBeGreaterThan(0);
    for (const n of nodes) {
      await n.proc.stop();
      await restart(n, ['--peers', all, ...slow]);
    }
    await waitSettled(
      four,
      four.map((n) => n.name),
    );
    // The joiner saw lists other than its own for the whole rolling restart, within the bound
    // (the scenario's premise, not a speed: only a restart four times slower than the slowest
    // seen breaks it).
    expect(Date.now() - started).toBeLessThan(boundMs(60_000));
    // Nothing reported, and nothing left to report: every member's lists agree, so no report
    // can come at the bound (the test above shows one comes only while lists differ, and
    // clears once they agree).
    for (const n of four) {
      expect(await metric(n, 'kvstore_membership_mismatch')).toBe(0);
      expect((await clusterInfo(n)).memberListsDiffer).toEqual({});
      expect(reported(n)).toEqual([]);
    }
  });
});

describe('a decommissioned member still listed in --peers', () => {
  it('is reported by the members that list it and heard it, once it lasts longer than a leave takes', async () => {
    const fast = ['--resolve-interval-ms', '300', '--replication-factor', '2'];
    const nodes = await startStaticCluster(3, fast);
    const [n0, n1, gone] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const admin = `http://${gone.host}:${gone.proc.httpPort}/admin/decommission`;
    expect((await fetch(admin, { method: 'POST' })).status).toBe(202);
    await expect
      .poll(async () => ((await (await fetch(admin)).json()) as { status: string }).status, {
        timeout: 20_000,
      })
      .toBe('decommissioned');
    const handedOff = Date.now();
    // Stopped once the others heard it (a node that never heard it cannot tell it from a node down).
    for (const n of [n0, n1]) {
      await expect
        .poll(
          async () => (await clusterInfo(n)).members.find((m) => m.name === 'kvstore-2')?.status,
        )
        .toBe('decommissioned');
    }
    await gone.proc.stop();
    // Before: both kept it `down` for good and never came to rest, and nothing said why.
    const said = (n: ClusterNode) =>
      n.proc.logs.filter((l) => String(l.msg).startsWith('decommissioned members still listed'));
    for (const n of [n0, n1]) {
      await expect
        .poll(() => metric(n, 'kvstore_decommissioned_members_listed'), { timeout: 30_000 })
        .toBe(1);
      expect((await clusterInfo(n)).decommissionedListed).toEqual(['kvstore-2']);
      await logged(n.proc, (l) => String(l.msg).startsWith('decommissioned members still listed'));
      expect(said(n)).toHaveLength(1);
      expect(said(n)[0]!.msg).toContain('--peers');
    }
    const { stdout } = await run(process.execPath, [
      join(ROOT, 'src/cli/main.ts'),
      '--host',
      n1.host,
      '--http-port',
      String(n1.proc.httpPort),
      'status',
    ]);
    expect(stdout.trim().split('\n').at(-1)).toMatch(
      /^decommissioned members still listed: kvstore-2 handed their data off: take them out/,
    );
    // Not before the bound: 2 x (300 + 5 x 200 + 2000) ms, as for lists that differ.
    expect(Date.parse(String(said(n0)[0]!.time)) - handedOff).toBeGreaterThanOrEqual(6600 - 1500);
    // Taken out of n0's --peers: n0 reports nothing; n1, still listing it, goes on.
    await n0.proc.stop();
    await restart(n0, ['--peers', peersOf([n0, n1]), ...fast]);
    await expect
      .poll(async () => (await clusterInfo(n0)).members.find((m) => m.name === 'kvstore-1')?.state)
      .toBe('up');
    expect(await metric(n0, 'kvstore_decommissioned_members_listed')).toBe(0);
    expect((await clusterInfo(n0)).decommissionedListed).toEqual([]);
    expect(await metric(n1, 'kvstore_decommissioned_members_listed')).toBe(1);
  });
});
