// A node whose disk is full keeps running while it delivers hints it cannot remove afterwards,
// and delivers each of them once, all of them, however many batches they take.

import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ScanReply } from '../../src/replica/index.ts';
import {
  type ClusterNode,
  clusterInfo,
  metric,
  openClient,
  peerClientOf,
  peersOf,
  restart,
  startStaticCluster,
} from '../helpers/cluster.ts';
import type { LineClient } from '../helpers/line-client.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(async () => {
  await cleanup();
  unmountAll();
});

/** Writes are refused below 8 MiB free; log segments of 1 MiB; hints offered every 200 ms. */
const ARGS = [
  ...['--min-free-disk-bytes', String(8 << 20), '--wal-segment-bytes', String(1 << 20)],
  ...['--hint-interval-ms', '200'],
];

/** Fills the file system of `dir` until 4 MiB are free (below ARGS' guard); returns the file. */
function fill(dir: string): string {
  const s = statfsSync(dir);
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (4 << 20)));
  return filler;
}

/** How long a condition is polled for (ring changes take seconds under load). */
const WAIT_MS = 60_000;

/**
 * Fills `fs` (see fill) and waits until the node whose client `c` is refuses a write: its own
 * copy refused, the third member down, one of two. The guard looks at most every 100 ms: a write
 * just after the fill may still be taken, and hinted for the member down.
 */
async function fillUntilRefused(fs: string, c: LineClient): Promise<string> {
  const filler = fill(fs);
  await until(
    async () => (await c.call('PUT refused x')) !== 'OK',
    WAIT_MS,
    'a refuses writes',
    100,
  );
  return filler;
}

describe('hints on a node whose disk fills', { timeout: 120_000 }, () => {
  it('are delivered without ending the process, and removed once there is room again', async () => {
    const fs = mountTmpfs(48 << 20);
    const nodes = await startStaticCluster(3, ARGS, [join(fs, 'data'), tempDir(), tempDir()]);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await c.proc.stop('SIGKILL');
    const ca = await openClient(a);
    for (let i = 0; i < 20; i++) expect(await ca.call(`PUT k${i} v${i}`)).toBe('OK');
    // A hint is stored once c's copy failed, which may be after the write's OK (its quorum was
    // a and b): all 20, soon.
    await until(async () => (await clusterInfo(a)).hints === 20, WAIT_MS, 'a holds 20 hints');

    // Something else fills a's disk: a refuses writes (hint removals too), serves the rest.
    const filler = await fillUntilRefused(fs, ca);
    expect(await ca.call('PUT refused x')).toMatch(/^ERR UNAVAILABLE .*kvstore-0: storage/);
    const held = (await clusterInfo(a)).hints;

    // c comes back: a delivers its hints, and cannot remove them. Before, the failed removal
    // rejected the delivery pass, which nothing handled: a exited (code 1) within a second.
    await restart(c, ['--peers', peersOf(nodes), ...ARGS]);
    const notRemoved = () => a.proc.logs.some((l) => l.msg === 'delivered hints not removed');
    await until(
      () => notRemoved() || a.proc.child.exitCode !== null,
      WAIT_MS,
      'a delivered its hints or exited',
      100,
    );
    expect(a.proc.child.exitCode).toBeNull();
    expect((await clusterInfo(a)).hints).toBe(held);
    const cc = await openClient(c);
    for (let i = 0; i < 20; i++) expect(await cc.call(`GET k${i}`)).toBe(`v${i}`);

    // Room again: the next passes deliver them again and remove them.
    unlinkSync(filler);
    await until(async () => (await clusterInfo(a)).hints === 0, WAIT_MS, 'a holds no hints', 100);
    expect(a.proc.child.exitCode).toBeNull();
    expect(await ca.call('PUT after y')).toBe('OK');
  });

  it('reach a replica back while the disk is full: every one of them, each sent once', async () => {
    const fs = mountTmpfs(48 << 20);
    const nodes = await startStaticCluster(3, ARGS, [join(fs, 'data'), tempDir(), tempDir()]);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await c.proc.stop('SIGKILL');
    // More hints than one delivery request takes (256).
    const n = 600;
    const ca = await openClient(a);
    for (let i = 0; i < n; i++) expect(await ca.call(`PUT h${i} v${i}`)).toBe('OK');
    await until(async () => (await clusterInfo(a)).hints === n, WAIT_MS, 'a holds the hints', 100);
    const filler = await fillUntilRefused(fs, ca);
    const hinted = (await clusterInfo(a)).hints; // n, or one more: a PUT just before the guard saw

    // c comes back. a can remove no hint, and still gets every one to c. Before, each pass sent
    // the first request's 256 again (and stopped at its refused removal): c never held the rest.
    await restart(c, ['--peers', peersOf(nodes), ...ARGS]);
    let held = 0;
    await until(
      async () => {
        held = await heldOn(c, 'h');
        return held === n;
      },
      WAIT_MS,
      () => `c to hold the ${n} hinted keys (holds ${held})`,
      200,
    );
    expect((await clusterInfo(a)).hints).toBe(hinted);

    // Ten delivery passes (200 ms apart) with the disk still full and no client writes: nothing
    // is sent again (before, 256 hints every pass), and the refusal is logged at most once.
    const applies = 'kvstore_peer_requests_sent_total{method="apply"}';
    const sent = await metric(a, applies);
    const logged = a.proc.logs.filter((l) => l.msg === 'delivered hints not removed').length;
    await new Promise((r) => setTimeout(r, 2000)); // a window to observe, not a wait for a state
    expect(await metric(a, applies)).toBe(sent);
    const loggedAfter = a.proc.logs.filter((l) => l.msg === 'delivered hints not removed').length;
    expect(loggedAfter - logged).toBeLessThanOrEqual(1);
    expect(a.proc.child.exitCode).toBeNull();

    // Room again: a removes them (without sending them again) and takes writes.
    unlinkSync(filler);
    await until(async () => (await clusterInfo(a)).hints === 0, WAIT_MS, 'a holds no hints', 100);
    expect(await metric(a, applies)).toBe(sent);
    expect(await ca.call('PUT after y')).toBe('OK');
  });
});

/** How many live keys starting with `prefix` `node` holds itself (over the peer port). */
async function heldOn(node: ClusterNode, prefix: string): Promise<number> {
  const peer = peerClientOf(node);
  const reply = await peer.request<ScanReply>('scan', {
    s: Buffer.from(prefix),
    e: Buffer.from(`${prefix}\xff`, 'latin1'),
    ie: true,
    xs: false,
    l: 10_000,
    h: true,
  });
  return reply.e.length;
}
