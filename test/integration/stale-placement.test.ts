// A write placed by a coordinator that has not learned of a ring change yet: real node processes,
// a real DNS server (two names, so one member learns of a join later than the others).

import { afterEach, describe, expect, it } from 'vitest';
import type { GetReply } from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import { decodeRecord } from '../../src/storage/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  loopbackBlock,
  metric,
  NO_ANTI_ENTROPY,
  openClient,
  peerClientOf,
  startDnsMember,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { cleanup } from '../helpers/node-process.ts';

const SERVICE = 'kvstore-headless.test.svc.cluster.local';
/** The name the late member resolves: it lists the new member only when the test says so. */
const LATE_SERVICE = 'kvstore-late.test.svc.cluster.local';
let dns: TestDnsServer | null = null;

afterEach(async () => {
  await cleanup();
  await dns?.close();
  dns = null;
});

/** The value of `key` stored on `node` itself (no quorum), or null. */
async function storedOn(node: ClusterNode, key: string): Promise<string | null> {
  const { r } = await peerClientOf(node).request<GetReply>('get', { k: Buffer.from(key) });
  if (r === null) return null;
  const rec = decodeRecord(Buffer.from(r));
  return rec.tombstone ? null : rec.value.toString();
}

/** Waits until `node` sees every one of `names` route by `ringId` and report its transfer done. */
async function waitStreamed(node: ClusterNode, names: readonly string[], ringId: string) {
  await expect
    .poll(
      async () => {
        const info = await clusterInfo(node);
        return names.filter((n) => {
          const m = info.members.find((x) => x.name === n) as
            | { ringId: string | null; rebalanced: string | null }
            | undefined;
          return m?.ringId === ringId && m.rebalanced?.endsWith(`:${ringId}`);
        });
      },
      { timeout: 20_000, interval: 100 },
    )
    .toEqual(names);
}

describe('a write placed under a ring its replicas have moved past', () => {
  it('reaches the new owners: a read quorum of the new ring finds it once the ring settles', async () => {
    dns = await startDnsServer();
    const block = loopbackBlock();
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3', 'kvstore-4'];
    const hosts = names.map((_, i) => `${block}.${i + 1}`);
    dns.setA(SERVICE, hosts.slice(0, 4));
    dns.setA(LATE_SERVICE, hosts.slice(0, 4));
    // No read repair, and hints are delivered only after the checks: nothing but the write path
    // itself may put the new values where they belong.
    const quiet = ['--read-repair-chance', '0', '--hint-interval-ms', '600000', ...NO_ANTI_ENTROPY];
    const [a, b, c] = await Promise.all(
      [0, 1, 2].map((i) => startDnsMember(dns!.port, SERVICE, names[i]!, hosts[i]!, quiet)),
    );
    // d, the coordinator of every write, resolves a name of its own: it learns of the join late.
    const d = await startDnsMember(dns.port, LATE_SERVICE, names[3]!, hosts[3]!, quiet);
    const first = [a!, b!, c!, d];
    await waitAllUp(first);
    await waitSettled(first, names.slice(0, 4));

    // Keys whose owners are a, b and c before the join, and c, e and one of a or b after it:
    // the write below (c stopped) reaches only a and b, and of the new owners only whichever of
    // a or b stays one, unless the write path passes it on to e.
    const before = new Ring(names.slice(0, 4));
    const after = new Ring(names);
    const keys: string[] = [];
    for (let i = 0; keys.length < 12 && i < 100_000; i++) {
      const k = `key-${i}`;
      const s = before.owners(Buffer.from(k), 3).sort();
      const t = after.owners(Buffer.from(k), 3);
      if (s.join() === names.slice(0, 3).join() && t.includes(names[2]!) && t.includes(names[4]!))
        keys.push(k);
    }
    expect(keys).toHaveLength(12);
    const cd = await openClient(d);
    for (const k of keys) expect(await cd.call(`PUT ${k} v1`)).toBe('OK');

    // e joins; a, b, c and e route by the new ring and finish streaming v1 to e. d does not know.
    dns.setA(SERVICE, hosts);
    const e = await startDnsMember(dns.port, SERVICE, names[4]!, hosts[4]!, quiet);
    const newRing = (await clusterInfo(e)).ring.target;
    await waitStreamed(a!, [names[0]!, names[1]!, names[2]!, names[4]!], newRing);
    expect((await clusterInfo(d)).ring.moving).toBe(false);

    // d writes v2 with the old ring while c is stopped: a and b acknowledge.
    c!.proc.child.kill('SIGSTOP');
    try {
      for (const k of keys) expect(await cd.call(`PUT ${k} v2`)).toBe('OK');
      // Past the copies' deadline (peer timeout 2 s + clock offset 0.5 s): c refuses them late.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      c!.proc.child.kill('SIGCONT');
    }

    // d learns of e; the ring settles and each node drops what it no longer owns.
    dns.setA(LATE_SERVICE, hosts);
    const all = [a!, b!, c!, d, e];
    await waitAllUp(all);
    await waitSettled(all, names);

    // Every acknowledged write must be on a write quorum (2) of its owners in the new ring, or a
    // read quorum (2) of them can miss it.
    const missing: string[] = [];
    for (const k of keys) {
      const owners = after.owners(Buffer.from(k), 3);
      const held = await Promise.all(owners.map((o) => storedOn(all[names.indexOf(o)]!, k)));
      if (held.filter((v) => v === 'v2').length < 2) missing.push(`${k}: ${owners} hold ${held}`);
    }
    expect(missing).toEqual([]);
    // a and b passed d's writes on: they route by the ring with e, d had placed them without it.
    const rerouted = await Promise.all(
      [a!, b!].map((n) => metric(n, 'kvstore_writes_rerouted_total')),
    );
    expect(rerouted[0]! + rerouted[1]!).toBeGreaterThanOrEqual(keys.length);
    for (const n of all) {
      const cn = await openClient(n);
      for (const k of keys) expect(await cn.call(`GET ${k}`), `${k} via ${n.name}`).toBe('v2');
    }
  }, 90_000);
});
