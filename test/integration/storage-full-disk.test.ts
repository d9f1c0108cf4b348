// A full disk is an error, not a crash: a real node on a small tmpfs refuses writes with
// ERR STORAGE, keeps serving reads, says "degraded" on /readyz, and takes writes again once space
// is freed, also when the disk is full while it replays its log at start-up.

import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterInfo, clusterInfoSchema } from '../../src/admin/index.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, logged, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(async () => {
  await cleanup();
  unmountAll();
});

const SEGMENT = ['--wal-segment-bytes', String(1 << 20)];
/** Writes are refused below 2 MiB free: the disk never fills under LMDB or the log. */
const GUARD = [...SEGMENT, '--min-free-disk-bytes', String(2 << 20)];
/**
 * No guard: LMDB's own writes hit the full disk. lmdb-js then overflows a heap buffer (mdb.c
 * formats its ENOSPC message into malloc(100)), which may abort the process later: only the
 * writer that fills the disk for the replay test runs like this, and it is killed.
 */
const NO_GUARD = [...SEGMENT, '--min-free-disk-bytes', '0'];
const VALUE = 'v'.repeat(4000);

async function client(node: NodeProcess): Promise<LineClient> {
  const c = await LineClient.connect(node.port);
  defer(() => c.socket.destroy());
  return c;
}

async function ask(c: LineClient, line: string): Promise<string> {
  c.send(`${line}\r\n`);
  const [reply] = await c.lines(1);
  return reply!;
}

async function readyz(node: NodeProcess): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function metric(node: NodeProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** GET /admin/cluster: what CLUSTER, kvctl status, the console and the operator read. */
async function adminCluster(node: NodeProcess): Promise<ClusterInfo> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/admin/cluster`);
  return clusterInfoSchema.parse(await res.json());
}

/** Its `notWritable`, and its own member row's `storageNotWritable` (what its hellos say). */
async function notWritable(node: NodeProcess) {
  const view = await adminCluster(node);
  const self = view.members.find((m) => m.name === view.node);
  return { notWritable: view.notWritable, storageNotWritable: self?.storageNotWritable };
}

/** Fills the file system of `dir` up to `leave` free bytes with one file; returns its path. */
function fill(dir: string, leave: number): string {
  const s = statfsSync(dir);
  const path = join(dir, 'filler');
  writeFileSync(path, Buffer.alloc(Math.max(0, s.bavail * s.bsize - leave)));
  return path;
}

/** PUTs distinct keys until one is refused; returns the acknowledged keys and the refusal. */
async function writeUntilRefused(c: LineClient, prefix: string) {
  const acked: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const key = `${prefix}${i}`;
    // Without the guard lmdb-js may abort the node (see NO_GUARD): that ends the writes too.
    const reply = await ask(c, `PUT ${key} ${VALUE}`).catch((err: Error) => err.message);
    if (reply !== 'OK') return { acked, refusal: reply };
    acked.push(key);
  }
  throw new Error('the disk never filled');
}

describe('full disk', () => {
  it('refuses writes with ERR STORAGE, keeps reads, says degraded, and recovers without a restart', async () => {
    const ARGS = GUARD;
    const fs = mountTmpfs(24 << 20);
    const dataDir = join(fs, 'data');
    const node = await startNodeProcess({ dataDir, args: ARGS });
    const c = await client(node);
    expect(await ask(c, 'PUT before 1')).toBe('OK');
    const filler = fill(fs, 3 << 20);
    const { acked, refusal } = await writeUntilRefused(c, 'k');
    expect(acked.length).toBeGreaterThan(10);
    expect(refusal).toMatch(/^ERR STORAGE storage: .*disk full/);
    // The node is up: the connection still answers, reads work, and later writes are refused
    // with the reason (over RESP as well).
    expect(node.child.exitCode).toBeNull();
    expect(await ask(c, 'GET before')).toBe('1');
    expect(await ask(c, `GET ${acked.at(-1)}`)).toBe(VALUE);
    expect(await ask(c, 'PUT again 2')).toMatch(/^ERR STORAGE storage: not writable: .*disk full/);
    const resp = await client(node);
    resp.send('*3\r\n$3\r\nSET\r\n$4\r\nresp\r\n$1\r\nx\r\n');
    expect((await resp.lines(1))[0]).toMatch(/^-(ERR )?STORAGE .*disk full/);
    // A client hammering the full disk does not flood the log: the refusals are logged at most
    // once a second, each line with the count of those it stands for (since).
    const failed = () => node.logs.filter((l) => l.msg === 'command failed');
    const [loggedBefore, started] = [failed().length, performance.now()];
    for (let i = 0; i < 300; i++) expect(await ask(c, `PUT flood${i} x`)).toMatch(/^ERR STORAGE /);
    const seconds = (performance.now() - started) / 1000;
    expect(failed().length - loggedBefore).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    expect(await readyz(node)).toEqual({
      status: 200,
      body: expect.stringMatching(/^degraded: storage not writable: .*disk full/),
    });
    expect(await metric(node, 'kvstore_storage_writable')).toBe(0);
    // The admin view says so too (the operator's rollout gate and the console read it): before,
    // nothing in it told a full disk from a healthy one.
    expect(await notWritable(node)).toEqual({
      notWritable: expect.stringMatching(/disk full/),
      storageNotWritable: true,
    });
    // Space comes back: writes resume on their own.
    unlinkSync(filler);
    await expect.poll(() => ask(c, 'PUT after 3'), { timeout: 20_000 }).toBe('OK');
    expect(await readyz(node)).toEqual({ status: 200, body: 'ready\n' });
    expect(await notWritable(node)).toEqual({ notWritable: null, storageNotWritable: false });
    expect(await metric(node, 'kvstore_storage_writable')).toBe(1);
    for (const key of acked) expect(await ask(c, `GET ${key}`)).toBe(VALUE);
    expect(await node.stop()).toBe(0);
    // Nothing acknowledged was lost across the restart.
    const again = await startNodeProcess({ dataDir, args: ARGS });
    const c2 = await client(again);
    for (const key of [...acked, 'after'])
      expect(await ask(c2, `GET ${key}`)).not.toBe('NOT_FOUND');
    expect(await ask(c2, 'GET before')).toBe('1');
  }, 120_000);

  it('starts refusing writes when the disk is full while it replays its log, then recovers', async () => {
    const fs = mountTmpfs(24 << 20);
    const dataDir = join(fs, 'data');
    // Without the guard LMDB's commits fail on the full disk: the log holds writes LMDB lacks.
    const node = await startNodeProcess({ dataDir, args: NO_GUARD });
    const c = await client(node);
    const filler = fill(fs, 3 << 20);
    const { acked } = await writeUntilRefused(c, 'k');
    // Killed while LMDB is behind the log (its commits failed): the log holds those writes.
    await node.stop('SIGKILL');
    c.socket.destroy();
    const restarted = await startNodeProcess({ dataDir, args: GUARD });
    const c2 = await client(restarted);
    expect(await ask(c2, `GET ${acked.at(-1)}`)).toBe(VALUE);
    await expect
      .poll(() => readyz(restarted), { timeout: 15_000 })
      .toEqual({
        status: 200,
        body: expect.stringMatching(/^degraded: storage not writable: .*disk full/),
      });
    expect(await ask(c2, 'PUT during 1')).toMatch(/^ERR STORAGE /);
    // It replayed writes LMDB did not have, into memory only: the disk is too full for them.
    const opened = restarted.logs.find((l) => l.msg === 'storage: opened');
    expect(opened?.replayed).toBeGreaterThan(0);
    // Waited for: the line comes on stdout, which may reach the test after /readyz's answer.
    const refusing = await logged(restarted, 'storage: refusing writes');
    expect(refusing.failure).toMatch(/disk full/);
    expect(restarted.child.exitCode).toBeNull();
    unlinkSync(filler);
    await expect.poll(() => ask(c2, 'PUT after 2'), { timeout: 20_000 }).toBe('OK');
    // The log line travels on stdout, the reply on the socket: either may arrive first.
    await expect
      .poll(() => restarted.logs.some((l) => l.msg === 'storage: writes accepted again'))
      .toBe(true);
    for (const key of acked) expect(await ask(c2, `GET ${key}`)).toBe(VALUE);
    const code = await restarted.stop();
    expect({ code, stderr: restarted.stderr().slice(-3000) }).toEqual({
      code: 0,
      stderr: expect.anything(),
    });
  }, 120_000);
});
