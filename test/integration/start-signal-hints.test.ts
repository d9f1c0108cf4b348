// A stop signal after the storage open and before the node serves ends the start at once: a node
// holding many hints counts them at start (it reads every one), which on a slow disk (powerlossfs
// with every uncached read delayed, a cold network volume) takes long; SIGTERM then must not wait
// for the count.

import { expect, it } from 'vitest';
import {
  clusterInfo,
  openClient,
  peersOf,
  spawnMember,
  startStaticCluster,
} from '../helpers/cluster.ts';
import { tempDir } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

/** Hints the node holds: every one is read at start to count its bytes. */
const HINTS = 6000;
const VALUE = 'h'.repeat(4000);
/** Every read the page cache does not answer waits this long. */
const SLOW_READ_MS = 150;
const SHUTDOWN_MS = 2000;
/** One copy acknowledges: the writes succeed while the other member is down, and are hinted. */
const ARGS = ['--write-quorum', '1', '--read-quorum', '1', '--shutdown-timeout-ms', '2000'];

it('a node counting many hints on a slow disk at start exits 0 at once on SIGTERM', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const nodes = await startStaticCluster(2, ARGS, [dataDir, tempDir()]);
  const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  await b.proc.stop('SIGKILL');
  const c = await openClient(a);
  c.send(Array.from({ length: HINTS }, (_, i) => `PUT k${i} ${VALUE}\r\n`).join(''));
  expect(new Set(await c.lines(HINTS, 120_000))).toEqual(new Set(['OK']));
  // (A hint is stored after the write's reply.)
  await until(async () => (await clusterInfo(a)).hints === HINTS, 60_000, `${HINTS} hints`, 100);
  c.close();
  await a.proc.stop('SIGTERM');

  // Cold and slow: the count reads the hints from the disk.
  await disk.unmount();
  await disk.mount();
  await disk.slowReads(SLOW_READ_MS);
  const node = spawnMember(a.name, a.host, ['--peers', peersOf(nodes), ...ARGS], dataDir).spawned;
  const said = (msg: string) => node.logs.find((l) => l.msg === msg);
  await until(
    () => said('storage: opened') !== undefined || node.child.exitCode !== null,
    120_000,
    'the node opened its store',
  );
  // The count reads the hints (cold, slow): the signal comes once it has read some.
  const { reads } = await disk.stats();
  await until(async () => (await disk.stats()).reads >= reads + 5, 60_000, 'the count reading');
  node.child.kill('SIGTERM');
  const exited = await Promise.race([
    node.exited,
    new Promise((r) => setTimeout(() => r('still running'), SHUTDOWN_MS + 5000).unref()),
  ]);
  // Before, the signal waited for the whole count (17 s), and the node listened first.
  // Together: an exit other than 0 shows what the node said about it.
  expect({ exited, stderr: node.stderr() }).toEqual({
    exited: 0,
    stderr: 'kvstore: SIGTERM while starting: stopped\n',
  });
  expect(said('stopped while starting')).toBeDefined();
  expect(said('node listening')).toBeUndefined();
}, 300_000);
