// A node whose disk is full keeps running while it delivers hints it cannot remove afterwards.

import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  openClient,
  peersOf,
  restart,
  startStaticCluster,
} from '../helpers/cluster.ts';
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

describe('hints on a node whose disk fills', { timeout: 120_000 }, () => {
  it('are delivered without ending the process, and removed once there is room again', async () => {
    const fs = mountTmpfs(48 << 20);
    const nodes = await startStaticCluster(3, ARGS, [join(fs, 'data'), tempDir(), tempDir()]);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await c.proc.stop('SIGKILL');
    const ca = await openClient(a);
    for (let i = 0; i < 20; i++) expect(await ca.call(`PUT k${i} v${i}`)).toBe('OK');
    expect((await clusterInfo(a)).hints).toBe(20);

    // Something else fills a's disk: a refuses writes (hint removals too), serves the rest.
    const filler = fill(fs);
    // (a's own copy refused, c down: one of two. The guard looks at most every 100 ms: a write
    // just after the fill may still be taken, and hinted for c.)
    await until(
      async () => (await ca.call('PUT refused x')) !== 'OK',
      WAIT_MS,
      'a refuses writes',
      100,
    );
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
});
