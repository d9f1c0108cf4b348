// A node whose disk stays full says so once per task, not once per try, and works again by itself
// once there is room: tombstone collection here, which fails every interval while it lasts.

import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { type ClusterNode, metric, openClient, startStaticCluster } from '../helpers/cluster.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(async () => {
  await cleanup();
  unmountAll();
});

const GRACE_MS = 3000;
/** Writes refused below 8 MiB free; a collection pass every 200 ms; tombstones old after 3 s. */
const ARGS = [
  ...['--min-free-disk-bytes', String(8 << 20), '--wal-segment-bytes', String(1 << 20)],
  ...['--tombstone-grace-ms', String(GRACE_MS), '--gc-interval-ms', '200'],
  ...['--max-clock-offset-ms', '100'],
];
const WAIT_MS = 60_000;

it('a full disk is said once per task while it lasts, and its end once', {
  timeout: 120_000,
}, async () => {
  const fs = mountTmpfs(48 << 20);
  const nodes = await startStaticCluster(3, ARGS, [join(fs, 'data'), tempDir(), tempDir()]);
  const a = nodes[0] as ClusterNode;
  const said = (msg: string) => a.proc.logs.filter((l) => l.msg === msg);
  const ca = await openClient(a);
  for (let i = 0; i < 10; i++) expect(await ca.call(`PUT k${i} v`)).toBe('OK');
  for (let i = 0; i < 10; i++) expect(await ca.call(`REMOVE k${i}`)).toBe('OK');

  // Something else fills a's disk before the tombstones are old enough: every collection pass
  // after that finds them due and the store refuses to remove them.
  const s = statfsSync(fs);
  const filler = join(fs, 'filler');
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (4 << 20)));
  const writable = 'kvstore_storage_writable';
  await until(
    async () => (await ca.call('PUT refused x')) === 'OK' && (await metric(a, writable)) === 0,
    WAIT_MS,
    'a refuses writes',
    100,
  );
  await until(() => said('tombstone collection failed').length > 0, WAIT_MS, 'a failed pass', 100);
  expect(said('tombstone collection failed')[0]!.diskFull).toBe(true);

  // Passes go on failing (counted), and none of them is said. Before: one error line a pass.
  const passes = 'kvstore_gc_passes_total';
  const before = await metric(a, passes);
  await until(async () => (await metric(a, passes)) >= before + 10, WAIT_MS, '10 more passes', 100);
  expect(said('tombstone collection failed')).toHaveLength(1);
  expect(await metric(a, writable)).toBe(0);

  // Room again: the next pass works, said once, with the failures it ended; writes resume.
  unlinkSync(filler);
  await until(
    () => said('tombstone collection works again').length > 0,
    WAIT_MS,
    'a pass works',
    100,
  );
  const worked = said('tombstone collection works again');
  expect(worked).toHaveLength(1);
  expect(worked[0]!.failures).toBeGreaterThanOrEqual(11);
  expect(await metric(a, 'kvstore_tombstones_collected_total')).toBeGreaterThanOrEqual(10);
  expect(await metric(a, writable)).toBe(1);
  expect(await ca.call('PUT after y')).toBe('OK');
  expect(said('tombstone collection failed')).toHaveLength(1);
});
