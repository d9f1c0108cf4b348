// Backup readers that stop reading must not keep every other backup out: each member holds at
// most 4 snapshot sessions, and a stalled reader's session gives way to a backup that waits.

import { get as httpGet, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterNode, openClient, startStaticCluster } from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup } from '../helpers/node-process.ts';

afterEach(cleanup);

/** One copy of each key, read and written on its one owner. */
const RF1 = ['--replication-factor', '1', '--read-quorum', '1', '--write-quorum', '1'];
const KEYS = 320;
const VALUE = 'x'.repeat(100 * 1024);

/** GET /admin/backup whose body is not read (its socket paused): a stalled reader. */
function stalledBackup(node: ClusterNode): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: node.host, port: 9090, path: '/admin/backup' }, (res) => {
      res.pause();
      resolve(res);
    });
    req.on('error', reject);
    defer(() => req.destroy());
  });
}

/** Reads the rest of `res`. */
async function rest(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  res.resume();
  for await (const chunk of res) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('backup readers', { timeout: 120_000 }, () => {
  it('4 stalled readers give way to a backup that waits', async () => {
    // RF 1: each member holds a third of the 32 MiB, the stream is all of it (more than the
    // socket buffers hold, so a reader that stops reading stops the backup's page requests).
    const nodes = await startStaticCluster(3, RF1);
    const via = nodes[0]!;
    const c = await openClient(via);
    for (let i = 0; i < KEYS; i++) expect(await c.call(`PUT big-${i} ${VALUE}`)).toBe('OK');
    const stalled = await Promise.all(Array.from({ length: 4 }, () => stalledBackup(via)));
    expect(stalled.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    // Every member has 4 sessions open: a fifth backup is refused while they were read lately,
    // then, once they asked for no page for 10 s, takes the slot of the one idle longest.
    // Before, it was refused (503) until the sessions' 60 s idle expiry.
    const started = Date.now();
    let res = await fetch(`http://${via.host}:9090/admin/backup`);
    const refusals: string[] = [];
    while (res.status === 503 && Date.now() - started < 30_000) {
      refusals.push(((await res.json()) as { error: string }).error);
      await new Promise((r) => setTimeout(r, 500));
      res = await fetch(`http://${via.host}:9090/admin/backup`);
    }
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals[0]).toMatch(/4 backups are reading this member already/);
    expect(res.status).toBe(200);
    const admitted = Date.now() - started;
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.includes(`"ok":true,"records":${KEYS}`)).toBe(true);
    // The stalled readers read again: those whose sessions were shed learn their backup failed,
    // and why (nothing that looks complete); the others finish.
    const late = await Promise.all(stalled.map(rest));
    const shed = late.filter((b) => b.includes('closed for another backup'));
    expect(shed.length).toBeGreaterThan(0);
    for (const b of shed) expect(b.includes('"ok":false')).toBe(true);
    for (const b of late.filter((x) => !shed.includes(x)))
      expect(b.includes(`"ok":true,"records":${KEYS}`)).toBe(true);
    console.log(
      `fifth backup admitted ${admitted} ms after it first asked (${refusals.length} refusals)`,
    );
  });
});
