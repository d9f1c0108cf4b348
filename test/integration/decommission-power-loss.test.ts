// An accepted decommission survives the member's power cut. POST /admin/decommission answered
// 202 while the node's new status was still on its way to disk; a power cut right after took it
// back and the node came back `active`, the decommission it had accepted forgotten (before the
// fix: status `active` after the restart, with syncs that take 3 s). Now the answer waits for
// the status to be on disk.

import { expect, it } from 'vitest';
import {
  type ClusterNode,
  loopbackBlock,
  openClient,
  restart,
  startMember,
  waitFormed,
} from '../helpers/cluster.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { until } from '../helpers/write-log.ts';

const binary = usePowerlossfs();

/** How long each sync of the leaving member's disk takes while it is asked to leave. */
const SLOW_SYNC_MS = 1500;

const admin = (n: ClusterNode) => `http://${n.host}:${n.proc.httpPort}/admin/decommission`;
const status = async (n: ClusterNode) =>
  ((await (await fetch(admin(n))).json()) as { status: string }).status;

it('a decommission answered 202 is still under way after the power cut that follows it', async () => {
  const block = loopbackBlock();
  const hosts = [1, 2].map((i) => `${block}.${i}`);
  const names = ['kv-a', 'kv-b'];
  const args = [
    ...['--peers', hosts.map((h, i) => `${names[i]}=${h}:7946`).join(',')],
    ...['--replication-factor', '2', '--write-quorum', '1', '--read-quorum', '1'],
    ...['--probe-interval-ms', '200', '--probe-failures', '3'],
    ...['--storage-stall-timeout-ms', '60000'],
  ];
  const { disk, dataDir } = await diskWithDataDir(binary());
  const [a, b] = await Promise.all(
    hosts.map((h, i) => startMember(names[i]!, h, args, i === 1 ? dataDir : undefined)),
  );
  await waitFormed([a!, b!], 20_000);
  const cb = await openClient(b!);
  for (let i = 0; i < 50; i++) expect(await cb.call(`PUT k${i} v${i}`)).toBe('OK');
  cb.close();
  await disk.sync();

  await disk.slow(SLOW_SYNC_MS);
  const res = await fetch(admin(b!), { method: 'POST' });
  expect(res.status).toBe(202);
  // The power goes the moment the answer is in.
  await disk.cut(11, 0);
  await b!.proc.stop('SIGKILL');
  await disk.unmount();
  await disk.mount();
  await restart(b!, args);
  const after = await status(b!);
  expect(['decommissioning', 'decommissioned']).toContain(after);
  // And the hand-off it accepted finishes: a holds every key.
  await until(async () => (await status(b!)) === 'decommissioned', 30_000, 'b decommissioned');
  const ca = await openClient(a!);
  for (let i = 0; i < 50; i++) expect(await ca.call(`GET k${i}`)).toBe(`v${i}`);
  ca.close();
}, 120_000);
