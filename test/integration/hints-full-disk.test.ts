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

/** Polls `check` until it returns true, for at most `ms` (ring changes take seconds under load). */
async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

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
    await until('a refuses writes', async () => (await ca.call('PUT refused x')) !== 'OK');
    expect(await ca.call('PUT refused x')).toMatch(/^ERR UNAVAILABLE .*kvstore-0: storage/);
    const held = (await clusterInfo(a)).hints;

    // c comes back: a delivers its hints, and cannot remove them. Before, the failed removal
    // rejected the delivery pass, which nothing handled: a exited (code 1) within a second.
    await restart(c, ['--peers', peersOf(nodes), ...ARGS]);
    const notRemoved = () => a.proc.logs.some((l) => l.msg === 'delivered hints not removed');
    await until(
      'a delivered its hints or exited',
      () => notRemoved() || a.proc.child.exitCode !== null,
    );
    expect(a.proc.child.exitCode).toBeNull();
    expect((await clusterInfo(a)).hints).toBe(held);
    const cc = await openClient(c);
    for (let i = 0; i < 20; i++) expect(await cc.call(`GET k${i}`)).toBe(`v${i}`);

    // Room again: the next passes deliver them again and remove them.
    unlinkSync(filler);
    await until('a holds no hints', async () => (await clusterInfo(a)).hints === 0);
    expect(a.proc.child.exitCode).toBeNull();
    expect(await ca.call('PUT after y')).toBe('OK');
  });
});
